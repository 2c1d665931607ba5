"""The REST API under /api/v1/: roles, imports, the queue, votes, rounds, checkpoints, exports."""
import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback.models import Checkpoint, Comparison, Prompt, TrainingRound, Vote
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def _client(user=None, token=False) -> APIClient:
    client = APIClient()
    if user is not None:
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        else:
            client.force_authenticate(user)
    return client


@pytest.fixture
def project(tiny_models, alice, bob):
    """A project alice and bob annotate."""
    return make_project(tiny_models, first_batch=3)


def _endpoints(project):
    p = project.pk
    c = Comparison.objects.filter(project=project).first().pk
    ckpt = Checkpoint.objects.filter(project=project).first().pk
    return [
        # (method, path, body, anonymous, annotator, staff)
        ("get", "/api/v1/projects/", None, 401, 200, 200),
        ("get", f"/api/v1/projects/{p}/", None, 401, 200, 200),
        ("post", "/api/v1/projects/", {"name": "New"}, 401, 403, 201),
        ("patch", f"/api/v1/projects/{p}/", {"guidelines": "Be kind."}, 401, 403, 200),
        ("post", f"/api/v1/projects/{p}/prompts/import/", ["hello cat"], 401, 403, 201),
        ("post", f"/api/v1/projects/{p}/comparisons/import/",
         [{"prompt": "hi", "response_a": "yes", "response_b": "no"}], 401, 403, 201),
        ("get", f"/api/v1/projects/{p}/comparisons/next/", None, 401, 200, 200),
        # alice fetched comparison c with next just above; staff was given another one
        ("post", f"/api/v1/comparisons/{c}/votes/", {"choice": "tie"}, 401, 201, 400),
        ("get", "/api/v1/votes/", None, 401, 200, 200),
        ("get", f"/api/v1/projects/{p}/rounds/", None, 401, 403, 200),
        ("post", f"/api/v1/projects/{p}/rounds/", {"config": {"ppo": {"steps": 0}}}, 401, 403, 400),
        ("get", f"/api/v1/projects/{p}/rounds/1/", None, 401, 403, 404),
        ("post", f"/api/v1/projects/{p}/rounds/1/cancel/", None, 401, 403, 404),
        ("get", f"/api/v1/projects/{p}/checkpoints/", None, 401, 403, 200),
        ("post", f"/api/v1/projects/{p}/checkpoints/{ckpt}/promote/", None, 401, 403, 200),
        ("get", f"/api/v1/projects/{p}/export/?format=trl", None, 401, 403, 200),
        ("post", f"/api/v1/projects/{p}/batches/", {"prompts": 2}, 401, 403, 202),
        ("post", f"/api/v1/projects/{p}/exports/", {"format": "trl"}, 401, 403, 202),
        ("get", f"/api/v1/projects/{p}/members/", None, 401, 403, 200),
        ("post", f"/api/v1/projects/{p}/members/", {"username": "alice"}, 401, 403, 200),
        ("delete", f"/api/v1/projects/{p}/members/999999/", None, 401, 403, 404),
        ("post", f"/api/v1/projects/{p}/archive/", None, 401, 403, 200),
        ("post", f"/api/v1/projects/{p}/unarchive/", None, 401, 403, 200),
        ("get", "/api/v1/jobs/", None, 401, 403, 200),
        ("get", "/api/v1/jobs/999999/", None, 401, 403, 404),
        ("post", "/api/v1/jobs/999999/cancel/", None, 401, 403, 404),
        ("get", "/api/v1/jobs/999999/download/", None, 401, 403, 404),
        ("post", f"/api/v1/checkpoints/{ckpt}/generate/", {"prompts": ["hello"], "max_new_tokens": 3}, 401, 403, 200),
        ("get", "/api/v1/schema/", None, 401, 200, 200),
        ("get", "/api/v1/docs/", None, 401, 200, 200),
    ]


def test_every_endpoint_for_every_role(project, alice, admin_user):
    for method, path, body, *expected in _endpoints(project):
        for who, status in zip((None, alice, admin_user), expected):
            response = getattr(_client(who, token=who is not None), method)(path, body, format="json")
            assert response.status_code == status, (method, path, who and who.username, response.content[:300])


def test_token_command_creates_and_rotates(alice, capsys):
    from django.core.management import call_command

    call_command("api_token", "alice")
    first = capsys.readouterr().out.strip()
    call_command("api_token", "alice", "--rotate")
    second = capsys.readouterr().out.strip()
    assert first != second and Token.objects.get(user=alice).key == second
    assert _client().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {first}").status_code == 401


def test_prompt_import_formats_and_atomic_errors(project, admin_user):
    client = _client(admin_user)
    url = f"/api/v1/projects/{project.pk}/prompts/import/"
    before = Prompt.objects.count()
    jsonl = '{"prompt": "one"}\n{"messages": [{"role": "user", "content": "two"}], "split": "held_out"}\n'
    assert client.post(url, jsonl, content_type="application/x-ndjson").status_code == 201
    csv_body = "prompt,tags\nthree,\"a,b\"\nfour,\n"
    assert client.post(url, csv_body, content_type="text/csv").status_code == 201
    assert Prompt.objects.count() == before + 4
    assert Prompt.objects.get(messages__0__content="three").tags == ["a", "b"]

    bad = [{"prompt": "fine"}, {"messages": [{"role": "robot", "content": "x"}]}]
    response = client.post(url, bad, format="json")
    assert response.status_code == 400
    assert response.json()["row"] == 2 and response.json()["field"] == "messages[0]"
    assert Prompt.objects.count() == before + 4  # nothing from the bad import


def test_comparison_import_then_rate_through_the_api(project, admin_user, alice):
    staff = _client(admin_user)
    rows = [{"prompt": "what is blue", "response_a": "the sky", "response_b": "a cat", "model_a": "gpt-x", "model_b": "ours"}]
    assert staff.post(f"/api/v1/projects/{project.pk}/comparisons/import/", rows, format="json").status_code == 201
    bad = [{"prompt": "x", "response_a": "", "response_b": "y"}]
    response = staff.post(f"/api/v1/projects/{project.pk}/comparisons/import/", bad, format="json")
    assert response.status_code == 400 and response.json()["field"] == "response_a"

    annotator = _client(alice, token=True)
    seen = 0
    while True:
        response = annotator.get(f"/api/v1/projects/{project.pk}/comparisons/next/")
        if response.status_code == 204:
            break
        item = response.json()
        a, b = item["responses"]
        vote = {"choice": "a", "a": a["id"], "b": b["id"], "strength": 2, "idempotency_key": f"k{item['comparison_id']}"}
        first = annotator.post(f"/api/v1/comparisons/{item['comparison_id']}/votes/", vote, format="json")
        again = annotator.post(f"/api/v1/comparisons/{item['comparison_id']}/votes/", vote, format="json")
        assert first.status_code == 201 and again.status_code == 200 and first.json()["id"] == again.json()["id"]
        stored = Vote.objects.get(pk=first.json()["id"])
        c = stored.comparison
        assert stored.choice == ("a" if a["id"] == c.sample_a_id else "b")  # 'a' means the response shown as a
        seen += 1
    assert seen == 4
    assert annotator.get("/api/v1/votes/").json()["count"] == 4


def test_vote_with_a_wrong_response_id_is_refused(project, alice):
    client = _client(alice)
    item = client.get(f"/api/v1/projects/{project.pk}/comparisons/next/").json()
    response = client.post(f"/api/v1/comparisons/{item['comparison_id']}/votes/",
                           {"choice": "a", "a": item["responses"][1]["id"]}, format="json")
    assert response.status_code == 400 and "a" in response.json()
    assert not Vote.objects.exists()


def test_round_launch_list_detail_cancel(project, admin_user, django_capture_on_commit_callbacks):
    client = _client(admin_user)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/api/v1/projects/{project.pk}/rounds/", {"config": {"ppo": {"steps": 3}}}, format="json")
    assert response.status_code == 201 and response.json()["config"]["ppo"]["steps"] == 3
    assert client.get(f"/api/v1/projects/{project.pk}/rounds/").json()[0]["number"] == 1
    assert client.get(f"/api/v1/projects/{project.pk}/rounds/1/").json()["status"] == "queued"
    assert client.post(f"/api/v1/projects/{project.pk}/rounds/1/cancel/").json()["status"] == "cancelled"
    assert TrainingRound.objects.get().status == "cancelled"


def test_promote_switches_the_active_policy(project, admin_user):
    root = Checkpoint.objects.get(project=project, is_active=True)
    other = Checkpoint.objects.create(project=project, kind="policy", path=root.path, name="alt", sha256=root.sha256, parent=root)
    response = _client(admin_user).post(f"/api/v1/projects/{project.pk}/checkpoints/{other.pk}/promote/")
    assert response.status_code == 200 and response.json()["is_active"]
    assert list(Checkpoint.objects.filter(project=project, is_active=True)) == [other]


def _vote_everything(project, users_choices):
    from feedback.services.assignment import assignment_next
    from feedback.services.votes import vote_submit

    for user, choices in users_choices:
        for choice in choices:
            a = assignment_next(annotator=user, project=project)
            vote_submit(annotator=user, assignment_id=a.pk, choice=choice, rationale="<b>why</b>")


def _export(client, project, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = client.get(f"/api/v1/projects/{project.pk}/export/?{query}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_exports_in_every_format(project, admin_user, alice, tmp_path):
    _vote_everything(project, [(alice, ["a", "b", "tie"])])
    client = _client(admin_user)
    trl = _export(client, project, format="trl")
    assert len(trl) == 2 and set(trl[0]) == {"prompt", "chosen", "rejected"}
    conv = _export(client, project, format="trl-conversational")
    assert conv[0]["prompt"][0]["role"] == "user" and conv[0]["chosen"][0]["role"] == "assistant"
    hh = _export(client, project, format="hh-rlhf")
    assert hh[0]["chosen"].startswith("\n\nHuman: ") and "\n\nAssistant: " in hh[0]["chosen"]
    openai = _export(client, project, format="openai")
    for row in openai:
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        assert row["input"]["messages"][-1]["role"] == "user"
        assert [m["role"] for m in row["preferred_output"]] == ["assistant"]
        assert [m["role"] for m in row["non_preferred_output"]] == ["assistant"]
    raw = _export(client, project, format="raw")
    assert len(raw) == 3 and raw[0]["annotator"] == "alice" and raw[0]["shown_left"] in ("a", "b")
    arena = _export(client, project, format="arena")
    assert sorted(r["winner"] for r in arena) == ["model_a", "model_b", "tie"]

    bad = client.get(f"/api/v1/projects/{project.pk}/export/?format=csv")
    assert bad.status_code == 400 and "format" in bad.json()


def test_trl_export_loads_in_datasets(project, admin_user, alice, tmp_path):
    datasets = pytest.importorskip("datasets")
    _vote_everything(project, [(alice, ["a", "b", "a"])])
    response = _client(admin_user).get(f"/api/v1/projects/{project.pk}/export/?format=trl")
    path = tmp_path / "trl.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds.num_rows == 3 and ds.column_names == ["prompt", "chosen", "rejected"]


def test_oversized_import_is_refused_with_a_clear_error(project, admin_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps(["x" * 100] * 20)
    response = _client(admin_user).post(f"/api/v1/projects/{project.pk}/prompts/import/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["field"] == "body" and "1024 bytes limit" in response.json()["detail"]


def test_export_scope_is_throttled(project, admin_user, settings):
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "exports": "2/min"}
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = rates
    try:
        client = _client(admin_user)
        codes = [client.get(f"/api/v1/projects/{project.pk}/export/?format=trl").status_code for _ in range(3)]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
    assert codes == [200, 200, 429]
