"""The annotate page's second pass in real Chromium: undo, my votes, announcements, keys,
guidelines panel, phone bar, dark mode, cut-off marker, flags, reveal, expired reservations."""
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback.models import Assignment, ComparisonFlag, Project, Sample, TrainingRound, Vote
from tests.browser.conftest import screenshot
from tests.helpers import make_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _start(page, live_server, login, tiny_models, first_batch=3, **kwargs):
    project = make_project(tiny_models, first_batch=first_batch, **kwargs)
    login(page, "alice", "alice-pw-123")
    page.goto(f"{live_server.url}/annotate/")
    return project


def _vote_key(page, key, total):
    page.keyboard.press(key)
    page.wait_for_function(f"() => document.querySelector('#progress') && "
                           f"document.querySelector('#progress').innerText.includes('total: {total}')")


def test_undo_within_the_window_changes_the_vote_and_keeps_history(page, live_server, login, alice, tiny_models):
    _start(page, live_server, login, tiny_models)
    first = Assignment.objects.get(annotator=alice)
    _vote_key(page, "1", 1)  # A (left) better
    page.wait_for_function("() => document.querySelector('#announce').innerText.includes('Saved')")
    assert page.evaluate("document.activeElement.id") == "annotate"  # the announcement took no focus
    assert "A is better" in page.inner_text("#last-vote")
    page.keyboard.press("u")
    page.wait_for_selector("#editing")
    # the same comparison, sides as first shown, the earlier choice marked
    assert page.locator('button[value="left"][aria-current="true"]').count() == 1
    page.keyboard.press("3")
    page.wait_for_selector("#progress")
    vote = Vote.objects.get(annotator=alice)
    assert vote.comparison_id == first.comparison_id and vote.choice == "tie"
    assert [h["choice"] for h in vote.history] == ["a" if first.left_is_a else "b"]
    assert vote.history[0]["via"] == "undo"
    assert "Vote changed" in page.inner_text("#announce") or page.wait_for_function(
        "() => document.querySelector('#announce').innerText.includes('Vote changed')")
    assert Vote.objects.filter(annotator=alice).count() == 1


def test_no_undo_after_the_window(page, live_server, login, alice, tiny_models):
    _start(page, live_server, login, tiny_models)
    _vote_key(page, "2", 1)
    assert page.locator("#undo-link").is_visible()
    Vote.objects.filter(annotator=alice).update(created_at=timezone.now() - timedelta(minutes=3))
    page.reload()
    assert page.locator("#undo-link").count() == 0
    page.keyboard.press("u")  # nothing to undo: the page stays on the current item
    page.wait_for_timeout(300)
    assert page.locator("#editing").count() == 0
    vote = Vote.objects.get(annotator=alice)
    page.goto(f"{live_server.url}/annotate/votes/{vote.pk}/edit/?undo=1")  # a stale link says why
    assert "undo window has passed" in page.inner_text(".flash")
    vote.refresh_from_db()
    assert vote.history == []


def test_back_after_a_vote_offers_it_for_undo(page, live_server, login, alice, tiny_models):
    _start(page, live_server, login, tiny_models)
    _vote_key(page, "4", 1)
    page.go_back()
    page.wait_for_selector("#editing")
    assert "both bad" in page.inner_text("#editing")


def test_my_votes_lists_filters_and_counts_and_stops_at_a_snapshot(page, live_server, login, alice, tiny_models):
    project = _start(page, live_server, login, tiny_models)
    _vote_key(page, "1", 1)
    _vote_key(page, "3", 2)
    Vote.objects.filter(annotator=alice).update(time_spent_ms=4000)
    first, second = Vote.objects.filter(annotator=alice).order_by("id")
    TrainingRound.objects.create(project=project, number=1, status="done", snapshot={"max_vote_id": first.pk})
    page.goto(f"{live_server.url}/annotate/history/")
    assert page.inner_text("#stat-today") == "2" and page.inner_text("#stat-total") == "2"
    assert page.inner_text("#stat-median") == "4.0 s"
    row1, row2 = page.locator(f"#vote-{first.pk}"), page.locator(f"#vote-{second.pk}")
    assert "A is better" in row1.inner_text() and first.comparison.prompt.text[:20] in row1.inner_text()
    assert "used for training" in row1.inner_text() and row1.locator("a.change").count() == 0
    assert "tie" in row2.inner_text()
    page.select_option('select[name="choice"]', "tie")
    page.click("#history-filters button")
    page.wait_for_load_state()
    assert page.locator("#history tbody tr").count() == 1 and page.locator(f"#vote-{second.pk}").count() == 1
    screenshot(page, "annotate-history.png")
    # change the unused one long after the undo window, from my votes
    Vote.objects.filter(pk=second.pk).update(created_at=timezone.now() - timedelta(hours=1))
    page.click(f"#vote-{second.pk} a.change")
    page.wait_for_selector("#editing")
    page.keyboard.press("4")
    page.wait_for_selector("#history")
    second.refresh_from_db()
    assert second.choice == "both_bad" and second.history[0]["choice"] == "tie"
    assert "changed 1×" in page.inner_text(f"#vote-{second.pk}")


def test_help_overlay_and_keys_on_a_non_us_layout(page, live_server, login, alice, tiny_models):
    _start(page, live_server, login, tiny_models)
    assert not page.locator("#help").is_visible()
    page.keyboard.press("Shift+Slash")  # "?"
    assert page.locator("#help").is_visible()
    help_text = page.inner_text("#help")
    for key in ("1", "2", "3", "4", "Q", "W", "E", "R", "S", "F", "G", "U", "?"):
        assert key in help_text
    screenshot(page, "annotate-help.png")
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    # AZERTY: the "1" key types "&" and the key in Q's place types "a"
    first = Assignment.objects.get(annotator=alice)
    page.evaluate("""() => {
        for (const [code, key] of [["KeyQ", "a"], ["Digit1", "&"]])
            document.dispatchEvent(new KeyboardEvent("keydown", {code, key, bubbles: true}));
    }""")
    page.wait_for_function("() => document.querySelector('#progress').innerText.includes('total: 1')")
    vote = Vote.objects.get(annotator=alice)
    assert vote.comparison_id == first.comparison_id and vote.strength == 1
    assert vote.choice == ("a" if first.left_is_a else "b")


def test_guidelines_open_beside_the_task_on_wide_screens_and_as_a_dialog_on_narrow(
        page, live_server, login, alice, tiny_models):
    _start(page, live_server, login, tiny_models)
    before = page.locator(".prompt").bounding_box()
    page.keyboard.press("g")
    panel = page.locator(".guidelines-text").bounding_box()
    after = page.locator(".prompt").bounding_box()
    assert abs(after["y"] - before["y"]) < 2  # the task is not pushed down
    assert panel["x"] >= after["x"] + after["width"] - 1  # beside it, not on top
    screenshot(page, "annotate-guidelines-panel.png")
    page.keyboard.press("Escape")
    assert not page.locator(".guidelines-text").is_visible()
    page.set_viewport_size({"width": 390, "height": 800})
    page.keyboard.press("g")
    panel = page.locator(".guidelines-text").bounding_box()
    assert page.evaluate("getComputedStyle(document.querySelector('.guidelines-text')).position") == "fixed"
    assert panel["y"] < 800 and panel["width"] > 300
    assert abs(page.locator(".prompt").bounding_box()["y"] - before["y"]) < 200  # still not pushed down


def test_vote_bar_sticks_to_the_bottom_on_a_phone(page, live_server, login, alice, tiny_models):
    page.set_viewport_size({"width": 390, "height": 700})
    _start(page, live_server, login, tiny_models)
    for y in (0, 100000):
        page.evaluate(f"window.scrollTo(0, {y})")
        bar = page.locator("#choices").bounding_box()
        assert bar["y"] + bar["height"] <= 700 + 1 and bar["y"] > 500  # in view, at the bottom
    screenshot(page, "annotate-phone-bar.png")
    page.click('button[value="tie"]')
    page.wait_for_function("() => document.querySelector('#progress').innerText.includes('total: 1')")


def test_dark_mode_follows_the_system(browser, live_server, alice, tiny_models):
    make_project(tiny_models, first_batch=1)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', "alice-pw-123")
    page.click('button[type="submit"]')
    page.goto(f"{live_server.url}/annotate/")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    panel = page.evaluate("getComputedStyle(document.querySelector('.response')).backgroundColor")
    text = page.evaluate("getComputedStyle(document.querySelector('.response')).color")
    darkness = lambda rgb: sum(int(x) for x in rgb[rgb.index("(") + 1:-1].split(",")[:3])  # noqa: E731
    assert darkness(background) < 150 and darkness(panel) < 200 and darkness(text) > 500
    screenshot(page, "annotate-dark.png")
    context.close()


def test_a_cut_off_response_is_marked(page, live_server, login, alice, tiny_models):
    project = make_project(tiny_models, first_batch=1)
    comparison = project.comparisons.get()
    Sample.objects.filter(pk=comparison.sample_a_id).update(finished=False, token_count=96)
    Sample.objects.filter(pk=comparison.sample_b_id).update(finished=True)
    login(page, "alice", "alice-pw-123")
    page.goto(f"{live_server.url}/annotate/")
    left_is_a = Assignment.objects.get(annotator=alice).left_is_a
    cut, whole = ("#response-left", "#response-right") if left_is_a else ("#response-right", "#response-left")
    assert "Cut off at 96 tokens" in page.inner_text(cut)
    assert "Cut off" not in page.inner_text(whole)


def test_flag_a_comparison_and_staff_see_it(page, live_server, login, alice, admin_user, tiny_models):
    project = _start(page, live_server, login, tiny_models)
    assignment = Assignment.objects.get(annotator=alice)
    page.keyboard.press("f")
    page.check('input[name="reason"][value="broken"]')
    page.fill('input[name="note"]', "<b>garbled</b> reply")
    page.click("#flag-submit")
    page.wait_for_function("() => document.querySelector('#announce').innerText.includes('Flag saved')")
    flag = ComparisonFlag.objects.get()
    assert flag.comparison_id == assignment.comparison_id and flag.reason == "broken"
    assert Vote.objects.count() == 0 and Assignment.objects.get(pk=assignment.pk).status == "reserved"
    # staff see it on the queue page (the note escaped)
    page.context.clear_cookies()
    login(page, "root", "root-pw-123")
    page.goto(f"{live_server.url}/studio/projects/{project.pk}/queue/?only=flagged")
    row = page.locator(f"#comparison-{assignment.comparison_id}")
    assert "broken" in row.inner_text() and "<b>garbled</b> reply" in row.inner_text()
    assert page.locator("tbody tr").count() == 1
    page.goto(f"{live_server.url}/admin/feedback/comparisonflag/")
    assert "garbled" in page.content()


def test_reveal_models_after_the_vote_never_before(page, live_server, login, alice, tiny_models):
    project = make_project(tiny_models, first_batch=2)
    Project.objects.filter(pk=project.pk).update(reveal_models=True)
    checkpoint_name = project.checkpoints.get(kind="policy").name
    login(page, "alice", "alice-pw-123")
    page.goto(f"{live_server.url}/annotate/")
    assert checkpoint_name not in page.content() and page.locator("#reveal").count() == 0
    _vote_key(page, "1", 1)
    assert f"{checkpoint_name} (round 0)" in page.inner_text("#reveal")
    # the next item is still anonymous: only the previous vote is revealed
    assert page.locator("#response-left").inner_text().count(checkpoint_name) == 0


def test_one_annotator_gets_an_expired_reservation_again(page, live_server, login, alice, tiny_models):
    _start(page, live_server, login, tiny_models, first_batch=1)
    assignment = Assignment.objects.get(annotator=alice)
    text = page.inner_text("#response-left")
    Assignment.objects.filter(pk=assignment.pk).update(reserved_until=timezone.now() - timedelta(minutes=1))
    page.reload()
    assert page.locator("#response-left").inner_text() == text  # offered again, same sides
    page.keyboard.press("3")
    page.wait_for_selector("text=No comparisons waiting")
    assert Vote.objects.get().comparison_id == assignment.comparison_id
