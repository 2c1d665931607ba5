"""Background jobs through the API on a real worker: batches, generation, export files."""
import json
import time

import pytest
from rest_framework.test import APIClient

from feedback.models import Checkpoint, CheckpointEvent, Comparison, Job
from tests.feedback.test_api import _vote_everything
from tests.helpers import make_project, this_cpu

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _staff(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def _wait(client, job_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}/").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']}")


def test_batch_job_generates_comparisons_from_the_active_policy(tiny_models, admin_user, celery_worker):
    project = make_project(tiny_models, first_batch=0)
    client = _staff(admin_user)
    bad = client.post(f"/api/v1/projects/{project.pk}/batches/", {"samples_per_prompt": 9}, format="json")
    assert bad.status_code == 400 and "samples_per_prompt" in bad.json()
    response = client.post(f"/api/v1/projects/{project.pk}/batches/", {"prompts": 3, "samples_per_prompt": 3}, format="json")
    assert response.status_code == 202
    job = _wait(client, response.json()["id"])
    assert job["status"] == "done", job["error"]
    assert job["result"] == {"comparisons": 9, "prompts": 3,
                             "device": this_cpu()}  # where it sampled
    active = Checkpoint.objects.get(project=project, is_active=True)
    comparisons = Comparison.objects.filter(project=project)
    assert comparisons.count() == 9
    assert all(c.sample_a.checkpoint_id == active.pk and c.sample_b.checkpoint_id == active.pk for c in comparisons)


def test_generate_small_inline_and_large_as_job(tiny_models, admin_user, celery_worker):
    project = make_project(tiny_models, first_batch=0)
    checkpoint = Checkpoint.objects.get(project=project, is_active=True)
    client = _staff(admin_user)
    url = f"/api/v1/checkpoints/{checkpoint.pk}/generate/"
    small = client.post(url, {"prompts": ["hello cat", [{"role": "user", "content": "why"}]], "max_new_tokens": 5, "seed": 1}, format="json")
    assert small.status_code == 200
    assert [r["prompt"][0]["content"] for r in small.json()["responses"]] == ["hello cat", "why"]
    assert all(0 < r["token_count"] <= 5 for r in small.json()["responses"])
    large = client.post(url, {"prompts": ["tell me about the cat"] * 6, "max_new_tokens": 5}, format="json")
    assert large.status_code == 202
    job = _wait(client, large.json()["id"])
    assert job["status"] == "done" and len(job["result"]["responses"]) == 6
    too_many = client.post(url, {"prompts": ["x"] * 65}, format="json")
    assert too_many.status_code == 400 and "prompts" in too_many.json()
    bad_prompt = client.post(url, {"prompts": ["fine", ""]}, format="json")
    assert bad_prompt.status_code == 400 and "prompts[1]" in bad_prompt.json()


def test_export_job_writes_a_downloadable_file(tiny_models, admin_user, alice, celery_worker):
    project = make_project(tiny_models, first_batch=3)
    _vote_everything(project, [(alice, ["a", "b", "tie"])])
    client = _staff(admin_user)
    assert client.post(f"/api/v1/projects/{project.pk}/exports/", {"format": "nope"}, format="json").status_code == 400
    response = client.post(f"/api/v1/projects/{project.pk}/exports/", {"format": "raw"}, format="json")
    assert response.status_code == 202
    job = _wait(client, response.json()["id"])
    assert job["status"] == "done" and job["result"]["rows"] == 3 and job["download"]
    download = client.get(job["download"])
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert [r["choice"] for r in rows] == ["a", "b", "tie"]
    assert Job.objects.get(pk=job["id"]).file_path.endswith("-raw.jsonl")


def _wait_round(client, project_id: int, number: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get(f"/api/v1/projects/{project_id}/rounds/{number}/").json()
        if found["status"] in ("done", "failed", "cancelled"):
            return found
        time.sleep(0.3)
    raise AssertionError(f"round {number} still {found['status']}")


def test_the_new_admin_path_through_the_api(tiny_models, admin_user, alice, celery_worker):
    """Issue 11's walk by script: create, upload (a bad file first), add an annotator,
    sample, vote only where a member, launch a round to done, compare two checkpoints,
    roll back and promote. (The bundled model's set-up job: test_api_projects.py.)"""
    staff = _staff(admin_user)
    created = staff.post("/api/v1/projects/", {
        "name": "Scripted", "policy_base_model": tiny_models["policy"], "reward_base_model": tiny_models["reward"],
        "generation_settings": {"max_new_tokens": 6}, "guard_settings": {"enforce": False},
    }, format="json")
    assert created.status_code == 201, created.content
    project_id = created.json()["id"]
    other = make_project(tiny_models, name="Private", members=[], first_batch=2)

    bad = staff.post(f"/api/v1/projects/{project_id}/prompts/import/", '{"prompt": "fine"}\n{"prompt": ""}\n',
                     content_type="application/x-ndjson")
    assert bad.status_code == 400 and "2" in json.dumps(bad.json()), bad.content
    good = "\n".join(json.dumps({"prompt": f"tell me about the cat {i}"}) for i in range(50))
    imported = staff.post(f"/api/v1/projects/{project_id}/prompts/import/", good, content_type="application/x-ndjson")
    assert imported.json() == {"imported": 50}
    assert staff.post(f"/api/v1/projects/{project_id}/members/", {"username": "alice"}, format="json").status_code == 201

    batch = staff.post(f"/api/v1/projects/{project_id}/batches/", {"prompts": 6}, format="json")
    assert batch.status_code == 202, batch.content
    assert _wait(staff, batch.json()["id"])["result"]["comparisons"] == 6

    annotator = APIClient()
    annotator.force_authenticate(alice)
    listed = annotator.get("/api/v1/projects/").json()
    assert [p["name"] for p in listed["results"]] == ["Scripted"]
    assert annotator.get(f"/api/v1/projects/{other.pk}/").status_code == 404
    assert annotator.get(f"/api/v1/projects/{other.pk}/comparisons/next/").status_code == 404
    private = Comparison.objects.filter(project=other).first()
    assert annotator.post(f"/api/v1/comparisons/{private.pk}/votes/", {"choice": "a"}, format="json").status_code == 404
    for i in range(6):
        shown = annotator.get(f"/api/v1/projects/{project_id}/comparisons/next/").json()
        vote = annotator.post(f"/api/v1/comparisons/{shown['comparison_id']}/votes/",
                              {"choice": "a" if i % 3 else "b", "strength": 2}, format="json")
        assert vote.status_code == 201, vote.content

    config = {"ppo": {"steps": 2, "batch_size": 4, "mini_batch_size": 2, "max_new_tokens": 6},
              "reward": {"epochs": 1, "min_steps": 10, "batch_size": 4}, "min_pairs": 4, "next_batch_prompts": 2}
    launched = staff.post(f"/api/v1/projects/{project_id}/rounds/", {"config": config}, format="json")
    assert launched.status_code == 201, launched.content
    finished = _wait_round(staff, project_id, launched.json()["number"])
    assert finished["status"] == "done", finished

    policies = {c["name"]: c for c in staff.get(f"/api/v1/projects/{project_id}/checkpoints/").json()
                if c["kind"] == "policy"}
    new, parent = policies["round 1"], policies["round 0"]
    assert new["is_active"] and new["parent"] == parent["id"]
    for checkpoint in (new, parent):
        answer = staff.post(f"/api/v1/checkpoints/{checkpoint['id']}/generate/",
                            {"prompts": ["tell me about the cat"], "max_new_tokens": 5, "seed": 1}, format="json")
        assert answer.status_code == 200 and answer.json()["responses"][0]["token_count"] > 0

    back = staff.post(f"/api/v1/projects/{project_id}/checkpoints/rollback/", {"reason": "round 1 rambles"},
                      format="json")
    assert back.status_code == 200 and back.json()["id"] == parent["id"] and back.json()["is_active"] is True
    again = staff.post(f"/api/v1/projects/{project_id}/checkpoints/{new['id']}/promote/",
                       {"reason": "fine after all"}, format="json")
    assert again.json()["is_active"] is True
    events = CheckpointEvent.objects.filter(project_id=project_id).order_by("id")
    assert [(e.action, e.reason) for e in events] == [("rollback", "round 1 rambles"), ("promote", "fine after all")]
    bad = staff.post(f"/api/v1/projects/{project_id}/checkpoints/rollback/", {"reason": 3}, format="json")
    assert bad.status_code == 400 and "reason" in bad.json()
    assert Checkpoint.objects.get(project_id=project_id, kind="policy", is_active=True).pk == new["id"]
