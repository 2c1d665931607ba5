"""The studio in real Chromium: a round watched live to "done" without a reload, the
playground streaming two answers, promote and roll back on the checkpoints page."""
import pytest

from feedback.models import Checkpoint, CheckpointEvent, Comparison, TrainingRound
from feedback.services.rounds import round_launch
from tests.browser.conftest import (is_same_page, mark_page, playground_compare, record_round_statuses,
                                    rollback_then_promote, screenshot)
from tests.helpers import make_project, votes_cast

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Sized to run for several seconds on the tiny models, so that the page polls a few times.
ROUND_CONFIG = {"ppo": {"steps": 8, "batch_size": 4, "mini_batch_size": 2, "max_new_tokens": 8},
                "reward": {"epochs": 1, "min_steps": 120, "batch_size": 4}, "min_pairs": 4, "next_batch_prompts": 4}


def test_round_goes_live_to_done_then_playground_and_rollback(page, live_server, login, admin_user, alice,
                                                               tiny_models, celery_worker,
                                                               django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=8)
    votes_cast(project, alice, 8)
    login(page, "root", "root-pw-123")

    # the launch page: every setting and the plan, which follows the form without a reload
    page.goto(f"{live_server.url}/studio/projects/{project.pk}/launch/")
    assert "8 preference pairs" in page.inner_text("#plan")
    page.fill("#id_reward__min_steps", "100")
    page.wait_for_function("() => document.querySelector('#plan-reward-epochs').textContent.includes('100 optimizer steps')")
    screenshot(page, "studio-launch.png")

    # the worker is told only once the page is open, so the page starts from "queued"
    with django_capture_on_commit_callbacks(execute=False) as enqueue:
        training_round = round_launch(project=project, launched_by=admin_user, config=ROUND_CONFIG)
    page.goto(f"{live_server.url}/studio/rounds/{training_round.pk}/")
    assert page.get_attribute("#round-live", "data-final") == "false"
    mark_page(page)
    seen = record_round_statuses(page)
    for send in enqueue:
        send()
    page.wait_for_selector('#round-status[data-status="done"]', timeout=240_000)
    assert is_same_page(page)
    training_round.refresh_from_db()
    assert training_round.status == "done", training_round.error
    assert len(seen) >= 2 and "done" in seen, (seen, training_round.timings)  # stages shown as they went by
    assert page.is_hidden("#round-cancel-form") and page.is_visible("#round-reload")
    assert "RM held-out accuracy" in page.inner_text("#round-latest")
    assert page.locator("#round-charts-ppo .uplot").count() >= 2  # live uPlot charts
    assert "next batch: 4 comparisons" in page.inner_text("#round-log")
    assert page.inner_text("#round-parent-policy") == "round 0"  # filled in after the page was loaded
    # polling stopped: no request for status.json once the round is final
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "status.json" in r.url else None)
    page.wait_for_timeout(4500)
    assert requests == []
    screenshot(page, "studio-round-done.png")

    # the playground: both answers stream in, then the pair goes to the annotators
    new = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    parent = new.parent
    pieces = playground_compare(page, live_server.url, project, new, parent, "tell me about the cat")
    assert pieces["a"] > 1 and pieces["b"] > 1, pieces  # the text grew piece by piece
    assert page.inner_text("#answer-a-text").strip() and page.inner_text("#answer-b-text").strip()
    assert "tokens" in page.inner_text("#answer-a-meta") and "tokens" in page.inner_text("#answer-b-meta")
    page.click("#playground-send")
    page.wait_for_selector("#playground-sent:has-text('annotators')")
    sent = Comparison.objects.filter(prompt__source="playground").get()
    assert (sent.sample_a.checkpoint, sent.sample_b.checkpoint) == (new, parent)
    screenshot(page, "studio-playground.png")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "studio-playground-narrow.png")
    page.set_viewport_size({"width": 1280, "height": 900})

    # checkpoints: roll back with a reason, then promote the round's policy again
    rollback_then_promote(page, live_server.url, project, new, parent)
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True) == new
    assert [e.action for e in CheckpointEvent.objects.order_by("id")] == ["rollback", "promote"]
    screenshot(page, "studio-checkpoints.png")
    assert TrainingRound.objects.filter(project=project).count() == 1
