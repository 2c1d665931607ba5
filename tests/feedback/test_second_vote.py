"""A second vote on the same comparison: repeat, change within the undo window, 409 after it;
the vote echoed in the caller's terms; arena names models by checkpoint and round."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback.models import Comparison, TrainingRound, Vote
from feedback.services.assignment import assignment_next
from feedback.services.votes import VoteError, vote_change, vote_submit
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def project(tiny_models, alice):
    return make_project(tiny_models, first_batch=2)


def _fetch(client, project):
    item = client.get(f"/api/v1/projects/{project.pk}/comparisons/next/").json()
    return item, f"/api/v1/comparisons/{item['comparison_id']}/votes/"


def _age(vote_id, seconds):
    Vote.objects.filter(pk=vote_id).update(created_at=timezone.now() - timedelta(seconds=seconds))


def test_vote_is_echoed_as_sent_with_the_stored_choice_beside_it(project, alice):
    client = _client(alice)
    item, url = _fetch(client, project)
    shown_b = item["responses"][1]["id"]
    response = client.post(url, {"choice": "b"}, format="json")
    assert response.status_code == 201
    body = response.json()
    comparison = Comparison.objects.get(pk=item["comparison_id"])
    stored = "a" if shown_b == comparison.sample_a_id else "b"
    assert body["choice"] == "b" and body["stored_choice"] == stored
    assert Vote.objects.get(pk=body["id"]).choice == stored
    listed = client.get("/api/v1/votes/").json()["results"][0]
    assert listed["choice"] == "b" and listed["stored_choice"] == stored


def test_same_choice_again_is_a_repeat(project, alice):
    client = _client(alice)
    _, url = _fetch(client, project)
    first = client.post(url, {"choice": "tie"}, format="json")
    _age(first.json()["id"], 600)  # a repeat is fine at any time
    again = client.post(url, {"choice": "tie"}, format="json")
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert Vote.objects.count() == 1


def test_different_choice_within_the_window_changes_the_vote_and_keeps_history(project, alice):
    client = _client(alice)
    _, url = _fetch(client, project)
    first = client.post(url, {"choice": "a", "strength": 3}, format="json").json()
    changed = client.post(url, {"choice": "b", "strength": 1}, format="json")
    assert changed.status_code == 200 and changed.json()["choice"] == "b"
    vote = Vote.objects.get()
    assert vote.pk == first["id"] and vote.strength == 1 and vote.changed_at is not None
    assert [h["choice"] for h in vote.history] == [first["stored_choice"]]
    assert vote.history[0]["strength"] == 3 and vote.history[0]["via"] == "resubmit"


def test_different_choice_after_the_window_is_a_409_naming_the_vote(project, alice):
    client = _client(alice)
    _, url = _fetch(client, project)
    first = client.post(url, {"choice": "a"}, format="json").json()
    _age(first["id"], 121)
    response = client.post(url, {"choice": "both_bad"}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["vote"]["id"] == first["id"] and body["vote"]["choice"] == "a"
    assert f"vote {first['id']}" in body["detail"]
    vote = Vote.objects.get()
    assert vote.choice == first["stored_choice"] and vote.history == []


def test_a_vote_a_snapshot_used_never_changes(project, alice):
    assignment = assignment_next(annotator=alice, project=project)
    vote = vote_submit(annotator=alice, assignment_id=assignment.pk, choice="a").vote
    TrainingRound.objects.create(project=project, number=1, status="reward", snapshot={"max_vote_id": vote.pk})
    with pytest.raises(VoteError, match="round 1 already trained on it"):
        vote_change(annotator=alice, vote_id=vote.pk, choice="b")
    response = _client(alice).post(f"/api/v1/comparisons/{assignment.comparison_id}/votes/", {"choice": "tie"},
                                   format="json")
    assert response.status_code == 409 and "round 1" in response.json()["detail"]
    vote.refresh_from_db()
    assert vote.choice == "a"


def test_undo_needs_the_window_but_my_votes_does_not(project, alice):
    assignment = assignment_next(annotator=alice, project=project)
    vote = vote_submit(annotator=alice, assignment_id=assignment.pk, choice="a").vote
    _age(vote.pk, 121)
    with pytest.raises(VoteError, match="undo window has passed"):
        vote_change(annotator=alice, vote_id=vote.pk, choice="b", undo=True)
    changed = vote_change(annotator=alice, vote_id=vote.pk, choice="b")
    assert changed.choice == "b" and changed.history[0]["choice"] == "a"


def test_arena_export_names_checkpoints_by_name_and_round(project, alice, admin_user):
    assignment = assignment_next(annotator=alice, project=project)
    vote_submit(annotator=alice, assignment_id=assignment.pk, choice="a")
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.get(f"/api/v1/projects/{project.pk}/export/?format=arena")
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    checkpoint = assignment.comparison.sample_a.checkpoint
    assert rows[0]["model_a"] == f"{checkpoint.name} (round 0)"
    assert "checkpoint:" not in rows[0]["model_a"] + rows[0]["model_b"]
