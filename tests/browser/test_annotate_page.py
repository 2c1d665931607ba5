"""The annotate page in real Chromium: mouse, keyboard, skip, progress, guidelines, layout."""
import pytest
from playwright.sync_api import expect

from feedback.models import Assignment, Vote
from tests.browser.conftest import screenshot
from tests.helpers import make_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _progress(page) -> str:
    return page.inner_text("#progress")


def test_vote_by_mouse_and_keyboard_skip_and_progress(page, live_server, login, alice, tiny_models):
    make_project(tiny_models, first_batch=4)
    login(page, "alice", "alice-pw-123")
    page.goto(f"{live_server.url}/annotate/")
    assert page.locator("#response-left .response-text").is_visible()
    assert page.locator("#response-right .response-text").is_visible()
    assert "total: 0" in _progress(page)
    screenshot(page, "annotate.png")

    # mouse: "A is better", strength "much"
    first = Assignment.objects.get(annotator=alice)
    page.check('input[name="strength"][value="3"]')
    page.fill("#rationale", "A answers the question.")
    page.click('button[value="left"]')
    # the next page shows the new count once the vote is stored (a load state can come before it)
    expect(page.locator("#progress")).to_contain_text("total: 1")
    vote = Vote.objects.get(annotator=alice)
    assert vote.comparison_id == first.comparison_id
    assert vote.choice == ("a" if first.left_is_a else "b")
    assert vote.strength == 3 and vote.rationale == "A answers the question."
    assert vote.time_spent_ms is not None and vote.time_spent_ms > 0
    assert "total: 1" in _progress(page)

    # keyboard: E (much) then 2 (B better); focus is on the page, no click needed
    second = Assignment.objects.filter(annotator=alice, status="reserved").get()
    page.keyboard.press("e")
    page.keyboard.press("2")
    page.wait_for_url("**/annotate/**")
    # waits without evaluating a string in the page: the Content-Security-Policy forbids eval
    expect(page.locator("#progress")).to_contain_text("total: 2")
    vote2 = Vote.objects.get(comparison=second.comparison, annotator=alice)
    assert vote2.choice == ("b" if second.left_is_a else "a") and vote2.strength == 3

    # typing a rationale does not trigger shortcuts
    third = Assignment.objects.filter(annotator=alice, status="reserved").get()
    page.keyboard.press("r")
    page.keyboard.type("1234 tie")
    assert Vote.objects.filter(annotator=alice).count() == 2
    page.keyboard.press("Escape")
    page.keyboard.press("3")
    expect(page.locator("#progress")).to_contain_text("total: 3")
    assert Vote.objects.get(comparison=third.comparison).rationale == "1234 tie"

    # skip with a reason
    fourth = Assignment.objects.filter(annotator=alice, status="reserved").get()
    page.select_option('select[name="reason"]', "expertise")
    page.keyboard.press("s")
    page.wait_for_selector("text=No comparisons waiting")
    fourth.refresh_from_db()
    assert fourth.status == "skipped" and fourth.skip_reason == "expertise"
    assert page.dialogs == []


def test_guidelines_open_with_a_key(page, live_server, login, alice, tiny_models):
    make_project(tiny_models, first_batch=1)
    login(page, "alice", "alice-pw-123")
    page.goto(f"{live_server.url}/annotate/")
    assert not page.locator(".guidelines-text").is_visible()
    page.keyboard.press("g")
    assert page.locator(".guidelines-text").is_visible()
    assert page.locator(".guidelines-text strong").inner_text() == "helpful"  # markdown rendered


def test_double_click_stores_one_vote(page, live_server, login, alice, tiny_models):
    make_project(tiny_models, first_batch=2)
    login(page, "alice", "alice-pw-123")
    page.goto(f"{live_server.url}/annotate/")
    page.dblclick('button[value="tie"]')
    expect(page.locator("#progress")).to_contain_text("total: 1")
    assert Vote.objects.filter(annotator=alice).count() == 1


def test_side_by_side_on_wide_and_stacked_on_narrow(page, live_server, login, alice, tiny_models):
    make_project(tiny_models, first_batch=1)
    login(page, "alice", "alice-pw-123")
    page.goto(f"{live_server.url}/annotate/")
    left, right = page.locator("#response-left").bounding_box(), page.locator("#response-right").bounding_box()
    assert abs(left["y"] - right["y"]) < 2 and right["x"] > left["x"] + left["width"] - 1
    assert abs(left["height"] - right["height"]) < 2  # equal height
    page.set_viewport_size({"width": 400, "height": 800})
    left, right = page.locator("#response-left").bounding_box(), page.locator("#response-right").bounding_box()
    assert right["y"] >= left["y"] + left["height"] - 1 and abs(left["x"] - right["x"]) < 2
    screenshot(page, "annotate-narrow.png")
