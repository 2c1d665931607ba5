"""Background jobs through the API on a real worker: batches, generation, export files."""
import json
import time

import pytest
from rest_framework.test import APIClient

from feedback.models import Checkpoint, Comparison, Job
from tests.feedback.test_api import _vote_everything
from tests.helpers import make_project

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
                             "device": {"device": "cpu", "dtype": "float32", "gpu_name": None}}  # where it sampled
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
