"""A round's human win-rate with its Wilson interval, on the round page and across rounds on the project page."""
import pytest

from tests.feedback.leaderboard_data import add_comparison, build_project, vote

pytestmark = pytest.mark.django_db


def test_round_page_shows_the_win_rate_with_its_interval(alice, bob, admin_user, client, django_user_model):
    project, r0, r1, rnd = build_project([alice, bob])
    carol = django_user_model.objects.create_user(username="carol", password="x")
    for choice_by in (("a", "a", "a"), ("a", "b", "tie"), ("a", "a", "both_bad")):
        c = add_comparison(project, a=r1, b=r0, batch=1, training_round=rnd)
        for user, choice in zip((alice, bob, carol), choice_by):
            vote(c, user, choice)
    client.force_login(admin_user)
    html = client.get(f"/studio/rounds/{rnd.pk}/").content.decode()
    # 6 new, 1 old, 1 tie → 6.5 / 8 = 81%; Wilson 95% for 6.5 of 8 is 46.7%–95.5%
    assert "81%" in html and "(95% 47–96%)" in html and "1 both bad" in html


def test_project_page_lists_rounds_with_intervals_and_chart_data(alice, admin_user, client):
    project, r0, r1, rnd = build_project([alice])
    c = add_comparison(project, a=r1, b=r0, batch=1, training_round=rnd)
    vote(c, alice, "a")
    client.force_login(admin_user)
    response = client.get(f"/studio/projects/{project.pk}/")
    html = response.content.decode()
    assert 'id="round-history-data"' in html and "round_history.js" in html
    assert response.context["history_chart"]["win_rate"] == [1.0]
    assert response.context["history_chart"]["rm_accuracy"] == [0.71]
    assert "<script>" not in html  # data travels in json_script, code in static files (CSP)
