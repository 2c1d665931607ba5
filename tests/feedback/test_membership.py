"""Project membership: an annotator sees, fetches and votes only in their projects.

Alice belongs to Alice's project; Charlie belongs to none of it. Charlie should have no
access to Alice's project: not in the list, not its settings, not its queue, not its votes.
"""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from feedback.models import Assignment, Comparison, ProjectMembership, Vote
from feedback.services.assignment import assignment_next
from feedback.services.projects import membership_remove, project_archive
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def charlie(django_user_model):
    """An annotator of another project."""
    return django_user_model.objects.create_user(username="charlie", password="charlie-pw-123")


@pytest.fixture
def projects(tiny_models, alice, charlie):
    """Alice's project and Charlie's project."""
    return (make_project(tiny_models, name="Alice's", first_batch=2, members=[alice]),
            make_project(tiny_models, name="Charlie's", first_batch=2, members=[charlie]))


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_project_list_shows_only_own_projects(projects, alice, charlie, admin_user):
    mine, theirs = projects
    assert [p["name"] for p in _api(alice).get("/api/v1/projects/").json()["results"]] == [mine.name]
    assert [p["name"] for p in _api(charlie).get("/api/v1/projects/").json()["results"]] == [theirs.name]
    assert len(_api(admin_user).get("/api/v1/projects/").json()["results"]) == 2


def test_charlie_should_have_no_access_to_alices_project(projects, charlie):
    mine, _ = projects
    client = _api(charlie)
    assert client.get(f"/api/v1/projects/{mine.pk}/").status_code == 404
    assert client.get(f"/api/v1/projects/{mine.pk}/comparisons/next/").status_code == 404
    comparison = Comparison.objects.filter(project=mine).first()
    assert client.post(f"/api/v1/comparisons/{comparison.pk}/votes/", {"choice": "tie"}, format="json").status_code == 404
    assert not Assignment.objects.filter(annotator=charlie, comparison__project=mine).exists()


def test_annotator_never_sees_model_paths_or_settings(projects, alice, admin_user):
    mine, _ = projects
    seen = _api(alice).get(f"/api/v1/projects/{mine.pk}/").json()
    assert seen["name"] == mine.name and "Prefer" in seen["guidelines"]
    for secret in ("policy_base_model", "reward_base_model", "generation_settings"):
        assert secret not in seen
    assert mine.policy_base_model not in str(_api(alice).get("/api/v1/projects/").content)
    assert _api(admin_user).get(f"/api/v1/projects/{mine.pk}/").json()["policy_base_model"] == mine.policy_base_model


def test_annotate_page_offers_only_own_projects(client, projects, charlie):
    mine, theirs = projects
    client.force_login(charlie)
    page = client.get("/annotate/")
    assert page.context["project"] == theirs
    assert mine.name.encode() not in page.content
    assert client.get(f"/annotate/?project={mine.pk}").status_code == 404


def test_votes_on_a_page_of_another_project_are_refused(client, projects, alice, charlie):
    mine, _ = projects
    assignment = assignment_next(annotator=alice, project=mine)
    client.force_login(charlie)
    response = client.post(reverse("feedback:annotate_vote", args=[assignment.pk]), {"side": "left"})
    assert response.status_code == 404
    assert not Vote.objects.exists()


def test_own_votes_list_is_scoped_to_own_projects(projects, alice):
    mine, theirs = projects
    client = _api(alice)
    item = client.get(f"/api/v1/projects/{mine.pk}/comparisons/next/").json()
    assert client.post(f"/api/v1/comparisons/{item['comparison_id']}/votes/", {"choice": "tie"},
                       format="json").status_code == 201
    assert client.get("/api/v1/votes/").json()["count"] == 1
    assert client.get(f"/api/v1/votes/?project={mine.pk}").json()["count"] == 1
    assert client.get(f"/api/v1/votes/?project={theirs.pk}").json()["count"] == 0
    # taken off the project, alice no longer reads its votes (they stay stored)
    membership_remove(project=mine, user=alice)
    assert client.get("/api/v1/votes/").json()["count"] == 0
    assert Vote.objects.filter(annotator=alice).count() == 1


def test_annotator_in_two_projects_picks_one_and_the_page_remembers(client, tiny_models, alice):
    first = make_project(tiny_models, name="First", first_batch=1, members=[alice])
    second = make_project(tiny_models, name="Second", first_batch=1, members=[alice])
    client.force_login(alice)
    page = client.get("/annotate/")
    assert b'name="project"' in page.content and b"Second" in page.content  # the picker
    client.get(f"/annotate/?project={second.pk}")
    assert client.get("/annotate/").context["project"] == second
    client.get(f"/annotate/?project={first.pk}")
    assert client.get("/annotate/").context["project"] == first


def test_archived_project_is_hidden_from_annotators(client, projects, alice, admin_user):
    mine, _ = projects
    project_archive(project=mine)
    assert _api(alice).get("/api/v1/projects/").json()["results"] == []
    assert _api(alice).get(f"/api/v1/projects/{mine.pk}/comparisons/next/").status_code == 404
    client.force_login(alice)
    assert client.get(f"/annotate/?project={mine.pk}").status_code == 404
    assert _api(admin_user).get(f"/api/v1/projects/{mine.pk}/").json()["archived_at"] is not None


def test_removing_a_member_returns_their_reservation_to_the_pool(projects, alice):
    mine, _ = projects
    assignment_next(annotator=alice, project=mine)
    assert membership_remove(project=mine, user=alice)
    assert not Assignment.objects.filter(annotator=alice).exists()
    assert not ProjectMembership.objects.filter(user=alice).exists()


def test_upgrade_makes_past_annotators_members(projects, alice, bob, admin_user):
    """The data migration: whoever voted or held an assignment in a project becomes its member."""
    import importlib

    from django.apps import apps

    mine, theirs = projects
    assignment = assignment_next(annotator=bob, project=theirs)
    assignment_next(annotator=admin_user, project=mine)
    ProjectMembership.objects.all().delete()
    migration = importlib.import_module("feedback.migrations.0006_projects_membership_archive_retired")
    migration.members_from_past_work(apps, None)
    assert list(ProjectMembership.objects.values_list("user__username", "project__name")) == [("bob", theirs.name)]
    assert assignment.comparison.project == theirs
