"""Promoting a policy and rolling back, with the reason kept: service, page and API."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from feedback.models import Checkpoint, CheckpointEvent
from feedback.services.checkpoints import checkpoint_promote, checkpoint_rollback, rollback_target
from feedback.services.errors import FieldError
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def lineage(tiny_models):
    """round 0 → round 1 → round 2 (active), as rounds leave them."""
    project = make_project(tiny_models, first_batch=0)
    root = Checkpoint.objects.get(project=project, kind="policy")
    r1 = Checkpoint.objects.create(project=project, kind="policy", name="round 1", path=root.path, sha256="1" * 64, parent=root)
    r2 = Checkpoint.objects.create(project=project, kind="policy", name="round 2", path=root.path, sha256="2" * 64, parent=r1)
    Checkpoint.objects.filter(project=project).update(is_active=False)
    Checkpoint.objects.filter(pk=r2.pk).update(is_active=True)
    return project, root, r1, r2


def _active(project):
    return Checkpoint.objects.get(project=project, kind="policy", is_active=True)


def test_rollback_undoes_a_promotion_then_walks_back_the_lineage(lineage, admin_user):
    project, root, r1, r2 = lineage
    event = checkpoint_promote(checkpoint=root, user=admin_user, reason="round 2 rambles")
    assert _active(project) == root and (event.previous, event.action, event.by) == (r2, "promote", admin_user)

    back = checkpoint_rollback(project=project, user=admin_user, reason="root is worse after all")
    assert _active(project) == r2 and back.previous == root and back.action == "rollback"
    # r2 was reached by a rollback, so the next one steps to its parent rather than toggling
    assert rollback_target(project) == r1
    checkpoint_rollback(project=project, user=admin_user, reason="r2 regressed")
    assert _active(project) == r1
    assert [e.reason for e in CheckpointEvent.objects.order_by("id")] == [
        "round 2 rambles", "root is worse after all", "r2 regressed"]


def test_bad_requests_change_nothing(lineage, admin_user):
    project, root, r1, r2 = lineage
    reward = Checkpoint.objects.create(project=project, kind="reward", name="rm", path=root.path, sha256="3" * 64)
    with pytest.raises(FieldError) as err:
        checkpoint_promote(checkpoint=reward, user=admin_user, reason="x")
    assert err.value.field == "checkpoint"
    with pytest.raises(FieldError) as err:
        checkpoint_promote(checkpoint=root, user=admin_user, reason="  ", reason_required=True)
    assert err.value.field == "reason"
    Checkpoint.objects.filter(project=project).update(is_active=False)
    Checkpoint.objects.filter(pk=root.pk).update(is_active=True)
    with pytest.raises(FieldError, match="no earlier policy"):
        checkpoint_rollback(project=project, user=admin_user, reason="x")
    assert _active(project) == root and not CheckpointEvent.objects.exists()


def test_checkpoints_page_shows_lineage_size_hash_and_promotes_with_a_reason(client, lineage, admin_user):
    project, root, r1, r2 = lineage
    client.force_login(admin_user)
    page = client.get(reverse("feedback:checkpoints", args=[project.pk])).content.decode()
    assert "parent: round 1" in page and root.sha256[:16] in page and "KB" in page  # the tiny model's size
    assert 'id="rollback-target">round 1<' in page and f'id="promote-{root.pk}"' in page
    assert f'id="promote-{r2.pk}"' not in page  # the active one has no promote button

    url = reverse("feedback:checkpoint_promote", args=[project.pk, root.pk])
    missing = client.post(url, {"reason": ""})
    assert missing.status_code == 400 and f'id="reason-promote-{root.pk}-errors"' in missing.content.decode()
    assert _active(project) == r2

    response = client.post(url, {"reason": "<b>r2</b> ignores the guidelines"}, follow=True)
    assert response.status_code == 200 and _active(project) == root
    html = response.content.decode()
    assert "&lt;b&gt;r2&lt;/b&gt; ignores the guidelines" in html and "<b>r2</b> ignores" not in html
    assert f"promoted <b>{root.name}</b> (was round 2)" in html

    response = client.post(reverse("feedback:checkpoint_rollback", args=[project.pk]), {"reason": "back"}, follow=True)
    assert _active(project) == r2 and "rolled back to <b>round 2</b> (was " in response.content.decode()


def test_api_promote_records_the_reason(lineage, admin_user):
    project, root, r1, r2 = lineage
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post(f"/api/v1/projects/{project.pk}/checkpoints/{r1.pk}/promote/", {"reason": "A/B test"}, format="json")
    assert response.status_code == 200 and response.json()["is_active"]
    event = CheckpointEvent.objects.get()
    assert (event.checkpoint, event.previous, event.reason, event.by) == (r1, r2, "A/B test", admin_user)
    bad = api.post(f"/api/v1/projects/{project.pk}/checkpoints/{root.pk}/promote/", {"reason": ["x"]}, format="json")
    assert bad.status_code == 400 and "reason" in bad.json() and _active(project) == r1
