"""Annotator quality and gold comparisons: who is flagged, what excluding them changes."""
import pytest

from feedback.models import Assignment, Vote
from feedback.services.assignment import assignment_next
from feedback.services.exports import preference_snapshot
from tests.feedback.leaderboard_data import add_comparison, build_project, vote

pytestmark = pytest.mark.django_db


@pytest.fixture
def crowd(alice, bob, django_user_model):
    """alice and bob vote well; lefty always picks the left response and misses gold."""
    lefty = django_user_model.objects.create_user(username="lefty", password="x")
    project, r0, r1, rnd = build_project([alice, bob, lefty])
    for i in range(24):
        c = add_comparison(project, a=r1, b=r0, batch=1, training_round=rnd, gold="a" if i < 6 else "")
        vote(c, alice, "a", left_is_a=bool(i % 2))
        vote(c, bob, "a", left_is_a=not i % 2)
        vote(c, lefty, "a" if i % 2 else "b", left_is_a=bool(i % 2))  # the left one, whichever it is
    return project, lefty


def test_quality_page_flags_the_left_clicker(crowd, client, admin_user):
    project, lefty = crowd
    client.force_login(admin_user)
    response = client.get(f"/studio/projects/{project.pk}/annotators/quality/")
    html = response.content.decode()
    rows = {r["username"]: r for r in response.context["quality"]["annotators"]}
    assert rows["lefty"]["flagged"] and not rows["alice"]["flagged"] and not rows["bob"]["flagged"]
    assert rows["lefty"]["left_share"] == 1.0 and rows["lefty"]["left_p"] < 1e-6
    assert rows["lefty"]["gold_accuracy"] == 0.5 and rows["alice"]["gold_accuracy"] == 1.0
    assert any("picks the left response" in f for f in rows["lefty"]["flags"])
    assert rows["alice"]["loo_agreement"] == pytest.approx(1.0)
    assert rows["lefty"]["loo_agreement"] == pytest.approx(0.5)
    assert 'data-annotator="lefty" class="flagged"' in html
    api = client.get(f"/api/v1/projects/{project.pk}/quality/").json()
    assert api["alpha"]["units"] == 24 and api["alpha"]["nominal"] < 0.5


def test_excluding_flagged_annotators_changes_the_snapshot_and_records_it(crowd, client, admin_user):
    project, lefty = crowd
    records, snapshot = preference_snapshot(project)
    assert snapshot["votes"] == 72 and snapshot["excluded_annotators"] == []
    client.force_login(admin_user)
    bad = client.patch(f"/api/v1/projects/{project.pk}/quality/settings/", {"min_gold_accuracy": 2},
                       content_type="application/json")
    assert bad.status_code == 400 and "min_gold_accuracy" in bad.content.decode()
    ok = client.patch(f"/api/v1/projects/{project.pk}/quality/settings/",
                      {"min_gold_accuracy": 0.8, "exclude_flagged": True}, content_type="application/json")
    assert ok.status_code == 200, ok.content
    project.refresh_from_db()
    records, snapshot = preference_snapshot(project)
    assert snapshot["votes"] == 48 and snapshot["excluded_annotators"] == [lefty.pk]
    assert all(r["agreement"] == 1.0 for r in records)  # only the two agreeing annotators count now


def test_gold_items_are_mixed_in_at_the_gold_rate(alice, bob, django_user_model, monkeypatch):
    project, r0, r1, rnd = build_project([alice, bob])
    gold = add_comparison(project, a=r1, b=r0, gold="b")
    gold.status = "complete"  # already has all its votes: only the gold draw offers it
    gold.save()
    plain = add_comparison(project, a=r1, b=r0)
    project.gold_rate = 0.5
    project.save()
    monkeypatch.setattr("feedback.services.gold.random.random", lambda: 0.1)  # the draw says gold
    first = assignment_next(annotator=alice, project=project)
    assert first.comparison_id == gold.pk
    Assignment.objects.filter(pk=first.pk).update(status="voted")
    # nothing gold left for alice: she gets the ordinary item
    assert assignment_next(annotator=alice, project=project).comparison_id == plain.pk


def test_gold_answer_set_on_the_queue_page_and_imported(alice, admin_user, client):
    project, r0, r1, rnd = build_project([alice])
    c = add_comparison(project, a=r1, b=r0)
    client.force_login(admin_user)
    assert "Gold answer of comparison" in client.get(f"/studio/projects/{project.pk}/queue/").content.decode()
    client.post(f"/studio/comparisons/{c.pk}/gold/", {"gold": "tie"})
    c.refresh_from_db()
    assert c.gold_choice == "tie"
    client.post(f"/studio/comparisons/{c.pk}/gold/", {"gold": "nonsense"})
    c.refresh_from_db()
    assert c.gold_choice == "tie"
    response = client.post(f"/api/v1/projects/{project.pk}/comparisons/import/",
                           [{"prompt": "p", "response_a": "x", "response_b": "y", "gold": "a"},
                            {"prompt": "q", "response_a": "x", "response_b": "y"}], content_type="application/json")
    assert response.status_code == 201
    assert sorted(project.comparisons.values_list("gold_choice", flat=True)) == ["", "a", "tie"]
    bad = client.post(f"/api/v1/projects/{project.pk}/comparisons/import/",
                      [{"prompt": "p", "response_a": "x", "response_b": "y", "gold": "left"}],
                      content_type="application/json")
    assert bad.status_code == 400 and "gold" in bad.content.decode()
