"""Projects and members through /api/v1/: create (round 0 registered or a set-up job), change, members."""
import pytest
from rest_framework.test import APIClient

from feedback.models import Job, Project, ProjectMembership
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_post_project_with_a_local_folder_can_sample_at_once(admin_user, tiny_models,
                                                             django_capture_on_commit_callbacks):
    client = _api(admin_user)
    response = client.post("/api/v1/projects/", {
        "name": "Scripted", "policy_base_model": tiny_models["policy"], "reward_base_model": tiny_models["reward"],
        "generation_settings": {"max_new_tokens": 4},
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["ready"] is True and body["setup_job"] is None
    client.post(f"/api/v1/projects/{body['id']}/prompts/import/?holdout_percent=50&tags=a,b",
                ["one", "two"], format="json")
    project = Project.objects.get(pk=body["id"])
    assert sorted(project.prompts.values_list("split", flat=True)) == ["held_out", "train"]
    assert project.prompts.first().tags == ["a", "b"]
    with django_capture_on_commit_callbacks(execute=False):
        batch = client.post(f"/api/v1/projects/{project.pk}/batches/", {"prompts": 1}, format="json")
    assert batch.status_code == 202, batch.content


def test_post_project_with_the_bundled_model_returns_its_setup_job(admin_user, tiny_models):
    response = _api(admin_user).post("/api/v1/projects/", {"name": "Bundled"}, format="json")
    assert response.status_code == 201
    body = response.json()
    job = Job.objects.get(pk=body["setup_job"])
    assert job.kind == Job.Kind.SETUP and body["ready"] is False
    assert _api(admin_user).get(f"/api/v1/jobs/{job.pk}/").json()["kind"] == "setup"


@pytest.mark.parametrize("body, field", [
    ({"policy_base_model": "/no/such/folder"}, "policy_base_model"),
    ({"guidelines": "x" * 100_001}, "guidelines"),
    ({"generation_settings": {"top_p": 2}}, "generation_settings.top_p"),
    ({"name": ""}, "name"),
    ({"reveal_models": "sometimes"}, "reveal_models"),
])
def test_patch_with_bad_settings_is_a_400_naming_the_field_and_changes_nothing(admin_user, tiny_models, body, field):
    project = make_project(tiny_models, first_batch=0)
    response = _api(admin_user).patch(f"/api/v1/projects/{project.pk}/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    before = project.guidelines
    project.refresh_from_db()
    assert project.guidelines == before and project.name == "Tiny"


def test_members_api_adds_lists_and_removes(admin_user, alice, tiny_models):
    project = make_project(tiny_models, first_batch=1, members=[])
    client = _api(admin_user)
    assert _api(alice).get(f"/api/v1/projects/{project.pk}/comparisons/next/").status_code == 404
    added = client.post(f"/api/v1/projects/{project.pk}/members/", {"username": "alice"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "annotator"
    assert _api(alice).get(f"/api/v1/projects/{project.pk}/comparisons/next/").status_code == 200
    assert [m["username"] for m in client.get(f"/api/v1/projects/{project.pk}/members/").json()] == ["alice"]
    reviewer = client.post(f"/api/v1/projects/{project.pk}/members/", {"user": alice.pk, "role": "reviewer"},
                           format="json")
    assert reviewer.status_code == 200 and ProjectMembership.objects.get(user=alice).role == "reviewer"
    nobody = client.post(f"/api/v1/projects/{project.pk}/members/", {"username": "zed"}, format="json")
    assert nobody.status_code == 400 and "username" in nobody.json()
    assert client.delete(f"/api/v1/projects/{project.pk}/members/{alice.pk}/").status_code == 204
    assert _api(alice).get(f"/api/v1/projects/{project.pk}/").status_code == 404
    assert client.delete(f"/api/v1/projects/{project.pk}/members/{alice.pk}/").status_code == 404


def test_archived_project_refuses_batches_and_rounds_over_the_api(admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    client = _api(admin_user)
    assert client.post(f"/api/v1/projects/{project.pk}/archive/").status_code == 200
    batch = client.post(f"/api/v1/projects/{project.pk}/batches/", {"prompts": 1}, format="json")
    assert batch.status_code == 400 and "archived" in batch.json()["project"]
    assert client.post(f"/api/v1/projects/{project.pk}/rounds/", {}, format="json").status_code == 400
