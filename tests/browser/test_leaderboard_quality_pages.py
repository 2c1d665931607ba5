"""In real Chromium: the leaderboard fills itself in when its job finishes, a round shows its
win-rate with an interval, and the quality page flags an annotator who always clicks left."""
import pytest

from tests.browser.conftest import screenshot
from tests.feedback.leaderboard_data import add_comparison, build_project, vote

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_leaderboard_round_win_rate_and_flagged_annotator(page, live_server, login, admin_user, alice, bob,
                                                          django_user_model, celery_worker):
    lefty = django_user_model.objects.create_user(username="lefty", password="x")
    project, r0, r1, rnd = build_project([alice, bob, lefty])
    for i in range(24):
        c = add_comparison(project, a=r1, b=r0, batch=1, training_round=rnd, gold="a" if i < 6 else "")
        vote(c, alice, "a", left_is_a=bool(i % 2))
        vote(c, bob, "a" if i % 6 else "tie", left_is_a=not i % 2)
        vote(c, lefty, "a" if i % 2 else "b", left_is_a=bool(i % 2))
    vote(add_comparison(project, a="gpt-x", b=r0), alice, "a")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None)
    login(page, "root", "root-pw-123")

    page.goto(f"{live_server.url}/studio/projects/{project.pk}/")
    page.click("#round-history >> text=Leaderboard")
    # first visit: nothing computed yet; the page reloads itself when the worker's job is done
    page.wait_for_selector("#leaderboard-table", timeout=30_000)
    rows = page.locator("#leaderboard-table tbody tr")
    assert rows.count() == 3
    r1_row = page.locator(f'#leaderboard-table tr[data-model="checkpoint:{r1.pk}"]')
    assert "round 1" in r1_row.inner_text()
    anchor = page.locator("#leaderboard-table tr.active").inner_text()
    assert "round 0" in anchor and "1000" in anchor
    assert "–" in r1_row.locator(".interval").inner_text()
    # one vote for an external model: a rating, but an interval that says how little it means
    low, high = page.locator('#leaderboard-table tr[data-model="gpt-x"] .interval').inner_text().split(" – ")
    assert int(high) - int(low) > 500
    assert page.locator("#winrate-matrix tbody tr").count() == 3
    screenshot(page, "studio-leaderboard.png")

    page.goto(f"{live_server.url}/studio/rounds/{rnd.pk}/")
    assert "(95%" in page.inner_text("#round-win-rate")
    screenshot(page, "studio-round-win-rate.png")

    page.goto(f"{live_server.url}/studio/projects/{project.pk}/annotators/quality/")
    flagged = page.locator('#annotator-table tr.flagged')
    assert flagged.count() == 1
    assert "lefty" in flagged.inner_text() and "picks the left response" in flagged.inner_text()
    assert "flagged" not in page.locator('#annotator-table tr[data-annotator="alice"]').inner_text()
    screenshot(page, "studio-annotator-quality.png")
    assert not errors, errors  # no CSP violations or script errors
