"""Input that used to answer 500 is refused with a 4xx naming the field (and row), changing nothing.

Run on PostgreSQL too: it rejects NUL in text and JSONB where SQLite stores it.
"""
import json

import pytest

from feedback.models import Comparison, Job, Project, Prompt, Sample, TrainingRound
from tests.feedback.test_api import _client
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(tiny_models):
    return make_project(tiny_models, first_batch=2)


@pytest.fixture
def staff(admin_user):
    return _client(admin_user, token=True)


def _counts():
    return (Prompt.objects.count(), Sample.objects.count(), Comparison.objects.count(), Job.objects.count(),
            TrainingRound.objects.count(), Project.objects.count())


def _error_text(response) -> str:
    return json.dumps(response.json())


@pytest.mark.parametrize("body, content_type, row, field", [
    (json.dumps(["fine", "bad\u0000text"]), "application/json", 2, "prompt"),  # a string row is the prompt
    (json.dumps([{"prompt": "fine"}, {"prompt": "bad \ud800 text"}]), "application/json", 2, "prompt"),
    (json.dumps([{"prompt": "fine", "tags": ["ok", "t\u0000"]}]), "application/json", 1, "tags[1]"),
    (json.dumps([{"messages": [{"role": "user", "content": "x\udfff"}]}]), "application/json", 1,
     "messages[0].content"),
    ('{"prompt": "fine"}\n{"prompt": "nul \\u0000 escaped"}\n', "application/x-ndjson", 2, "prompt"),
    ("prompt,tags\nfine,a\nraw \x00 byte,b\n", "text/csv", 2, "prompt"),
    ("prompt,tags\nfine,\"a,b\x00\"\n", "text/csv", 1, "tags[1]"),
])
def test_prompt_import_refuses_nul_and_lone_surrogates(project, staff, body, content_type, row, field):
    before = _counts()
    response = staff.generic("POST", f"/api/v1/projects/{project.pk}/prompts/import/",
                             body.encode("utf-8", "surrogatepass"), content_type=content_type)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["row"] == row
    assert response.json()["field"].endswith(field)
    assert "NUL" in response.json()["detail"] or "surrogate" in response.json()["detail"]
    assert _counts() == before


@pytest.mark.parametrize("bad, field", [
    ({"response_a": "a\u0000"}, "response_a"),
    ({"response_b": "b\ud83d"}, "response_b"),
    ({"model_a": "gpt\u0000"}, "model_a"),
    ({"prompt": "p\u0000"}, "prompt"),
])
def test_comparison_import_refuses_bad_text(project, staff, bad, field):
    rows = [{"prompt": "fine", "response_a": "yes", "response_b": "no"},
            {"prompt": "fine", "response_a": "yes", "response_b": "no", **bad}]
    before = _counts()
    response = staff.generic("POST", f"/api/v1/projects/{project.pk}/comparisons/import/",
                             json.dumps(rows).encode("utf-8", "surrogatepass"), content_type="application/json")
    assert response.status_code == 400
    assert (response.json()["row"], response.json()["field"]) == (2, field)
    assert _counts() == before


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


@pytest.mark.parametrize("method, path", [
    ("post", "/api/v1/projects/"),
    ("patch", "/api/v1/projects/{p}/"),
    ("post", "/api/v1/projects/{p}/prompts/import/"),
    ("post", "/api/v1/projects/{p}/comparisons/import/"),
    ("post", "/api/v1/projects/{p}/rounds/"),
    ("post", "/api/v1/projects/{p}/batches/"),
    ("post", "/api/v1/projects/{p}/exports/"),
    ("post", "/api/v1/checkpoints/{c}/generate/"),
    ("post", "/api/v1/comparisons/{cmp}/votes/"),
])
def test_json_nested_100000_deep_is_a_400_everywhere(project, staff, method, path):
    url = path.format(p=project.pk, c=project.checkpoints.first().pk, cmp=project.comparisons.first().pk)
    before = _counts()
    response = staff.generic(method.upper(), url, _deep(100_000), content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nested" in _error_text(response)
    assert _counts() == before


def test_nesting_within_the_parser_limit_but_too_deep_to_store_is_refused(project, staff):
    body = {"name": "Deep", "guidelines": "", "generation_settings": {"x": json.loads(_deep(200))}}
    response = staff.post("/api/v1/projects/", body, format="json")
    assert response.status_code == 400 and "nested deeper" in _error_text(response)
    assert "generation_settings.x" in _error_text(response)


def test_nul_and_surrogates_in_any_json_body_name_the_field(project, staff):
    before = _counts()
    body = '{"name": "New", "guidelines": "ok \\ud800 broken"}'
    response = staff.generic("POST", "/api/v1/projects/", body, content_type="application/json")
    assert response.status_code == 400 and "guidelines" in response.json()
    response = staff.generic("POST", "/api/v1/projects/", '{"name": "N\\u0000"}', content_type="application/json")
    assert response.status_code == 400 and "name" in response.json()
    assert _counts() == before


def test_impossible_since_is_a_400_naming_since(project, staff):
    response = staff.get(f"/api/v1/projects/{project.pk}/export/?format=trl&since=2020-13-45T00:00:00")
    assert response.status_code == 400 and "since" in response.json()
    before = _counts()
    response = staff.post(f"/api/v1/projects/{project.pk}/exports/", {"since": "2020-13-45T00:00:00"}, format="json")
    assert response.status_code == 400 and "since" in response.json()
    response = staff.get(f"/api/v1/projects/{project.pk}/export/?round=99999999999999999999")
    assert response.status_code == 400 and "round" in response.json()
    assert _counts() == before


@pytest.mark.parametrize("body", [[1, 2], "a string", 42, None])
@pytest.mark.parametrize("path", ["/api/v1/projects/{p}/exports/", "/api/v1/projects/{p}/batches/",
                                  "/api/v1/checkpoints/{c}/generate/", "/api/v1/projects/{p}/rounds/"])
def test_non_object_bodies_are_a_400(project, staff, path, body):
    url = path.format(p=project.pk, c=project.checkpoints.first().pk)
    before = _counts()
    response = staff.generic("POST", url, json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "must be a JSON object" in response.json()["body"][0]
    assert _counts() == before


@pytest.mark.parametrize("config, field", [
    ({"ppo": "x"}, "ppo"),
    ({"reward": [1]}, "reward"),
    ({"generation": "hot"}, "generation"),
    ({"generation": {"seed": "abc"}}, "generation.seed"),
    ({"generation": {"seed": 2**70}}, "generation.seed"),
    ({"generation": {"seed": -1}}, "generation.seed"),
    ({"generation": {"temperature": "warm"}}, "generation.temperature"),
    ({"generation": {"max_new_tokens": 1.5}}, "generation.max_new_tokens"),
    ({"ppo": {"steps": "6"}}, "ppo.steps"),
    ({"ppo": {"steps": True}}, "ppo.steps"),
    ({"ppo": {"use_lora": "yes"}}, "ppo.use_lora"),
    ({"ppo": {"kl_coef": 1e300}}, "ppo.kl_coef"),
    ({"ppo": {"seed": 2**64}}, "ppo.seed"),
    ({"ppo": {"lora_alpha": 0}}, "ppo.lora_alpha"),
    ({"ppo": {"max_grad_norm": 0}}, "ppo.max_grad_norm"),
    ({"ppo": {"reward_max_length": 10**9}}, "ppo.reward_max_length"),
    ({"reward": {"weight_decay": -1}}, "reward.weight_decay"),
    ({"reward": {"use_margin": 1}}, "reward.use_margin"),
    ({"reward": {"seed": None}}, "reward.seed"),
])
def test_round_settings_are_checked_before_the_round_is_accepted(project, staff, config, field):
    before = _counts()
    response = staff.generic("POST", f"/api/v1/projects/{project.pk}/rounds/", json.dumps({"config": config}),
                             content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json(), response.json()
    assert _counts() == before


@pytest.mark.parametrize("body, field", [
    ({"prompts": ["hi"], "seed": 2**70}, "seed"),
    ({"prompts": ["hi"], "seed": -3}, "seed"),
    ({"prompts": ["hi"], "temperature": True}, "temperature"),
])
def test_generate_settings_are_checked(project, staff, body, field):
    response = staff.post(f"/api/v1/checkpoints/{project.checkpoints.first().pk}/generate/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content[:300]


@pytest.mark.parametrize("body, field", [
    ({"generation": {"seed": "abc"}}, "generation.seed"),
    ({"generation": {"top_p": "1"}}, "generation.top_p"),
    ({"prompt_ids": [2**70]}, "prompt_ids"),
])
def test_batch_settings_are_checked(project, staff, body, field):
    before = _counts()
    response = staff.post(f"/api/v1/projects/{project.pk}/batches/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content[:300]
    assert _counts() == before


def test_a_conversation_obeys_the_prompt_length_limit(project, staff):
    url = f"/api/v1/projects/{project.pk}/prompts/import/"
    turns = [{"role": "user", "content": "x" * 15_000}, {"role": "assistant", "content": "y" * 15_000},
             {"role": "user", "content": "z"}]
    before = _counts()
    response = staff.post(url, [{"messages": turns}], format="json")
    assert response.status_code == 400 and response.json()["field"] == "messages"
    assert "20000" in response.json()["detail"]
    response = staff.post(f"/api/v1/checkpoints/{project.checkpoints.first().pk}/generate/",
                          {"prompts": [turns]}, format="json")
    assert response.status_code == 400 and "prompts[0]" in response.json()
    assert _counts() == before


@pytest.mark.parametrize("row, field", [
    ({"prompt": "p", "tags": ["t" * 101]}, "tags[0]"),
    ({"prompt": "p", "tags": [f"t{i}" for i in range(51)]}, "tags"),
])
def test_tags_are_limited(project, staff, row, field):
    response = staff.post(f"/api/v1/projects/{project.pk}/prompts/import/", [row], format="json")
    assert response.status_code == 400 and response.json()["field"] == field


def test_guidelines_are_limited_in_the_api_and_the_admin(project, staff, admin_user, client):
    response = staff.patch(f"/api/v1/projects/{project.pk}/", {"guidelines": "g" * 100_001}, format="json")
    assert response.status_code == 400 and "guidelines" in response.json()
    client.force_login(admin_user)
    response = client.post(f"/admin/feedback/project/{project.pk}/change/", {
        "name": project.name, "guidelines": "g" * 100_001, "generation_settings": "{}", "votes_per_comparison": 1,
    })
    assert response.status_code == 200 and b"at most 100000 characters" in response.content
    project.refresh_from_db()
    assert project.guidelines == "Prefer **helpful** answers."
