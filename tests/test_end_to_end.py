"""The whole loop on tiny models: vote in the browser views → round on a real Celery worker → new batch."""
import time

import pytest
import torch
from django.urls import reverse
from safetensors.torch import load_file

from feedback.models import Checkpoint, Comparison, TrainingRound
from feedback.services.assignment import assignment_next
from tests.helpers import make_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _wait_for_round(pk: int, timeout: float = 240) -> TrainingRound:
    deadline = time.monotonic() + timeout
    seen = set()
    while time.monotonic() < deadline:
        r = TrainingRound.objects.get(pk=pk)
        seen.add(r.status)
        if r.status in TrainingRound.FINAL_STATUSES:
            r.seen_statuses = seen
            return r
        time.sleep(0.2)
    raise AssertionError(f"round {pk} still {r.status} after {timeout} s (saw {seen})")


def test_votes_train_a_new_active_policy_that_generates_the_next_batch(client, alice, admin_user, tiny_models, celery_worker):
    project = make_project(tiny_models, first_batch=8)
    parent = Checkpoint.objects.get(project=project, kind="policy", is_active=True)

    client.force_login(alice)
    voted = 0
    while True:
        page = client.get("/annotate/")
        if "assignment" not in page.context:
            break
        a = page.context["assignment"]
        side = "left" if voted % 3 else "right"
        assert client.post(reverse("feedback:annotate_vote", args=[a.pk]), {"side": side, "strength": "2"}).status_code == 302
        voted += 1
    assert voted == 8

    client.force_login(admin_user)
    prefix = f"p{project.pk}"
    response = client.post(reverse("feedback:round_launch", args=[project.pk]), {
        f"{prefix}-ppo_steps": 2, f"{prefix}-ppo_batch_size": 4, f"{prefix}-reward_epochs": 2,
        f"{prefix}-min_pairs": 4, f"{prefix}-next_batch_prompts": 4,
    })
    assert response.status_code == 302
    r = _wait_for_round(TrainingRound.objects.get(project=project).pk)
    assert r.status == "done", r.error
    assert {"reward", "ppo", "generating"} & r.seen_statuses or r.timings.keys() >= {"reward", "ppo", "generating"}
    assert r.snapshot["votes"] == 8 and r.snapshot["pairs"] == 8
    # two PPO steps, then the rollout that measures the trained policy before it is kept
    assert len(r.metrics["reward"]) >= 2 and len(r.metrics["ppo"]) == 3 and r.metrics["ppo"][-1]["check"] is True
    assert all("kl" in s and "score" in s for s in r.metrics["ppo"])

    new = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    assert new.pk != parent.pk and new.parent_id == parent.pk and new.produced_by_id == r.pk
    assert len(new.sha256) == 64
    adapters = load_file(f"{new.path}/adapter_model.safetensors")
    assert all(torch.count_nonzero(v) > 0 for k, v in adapters.items() if "lora_B" in k)  # weights moved off init

    batch = Comparison.objects.filter(project=project, round=r)
    assert batch.count() == 4
    assert all(c.sample_a.checkpoint_id == new.pk and c.sample_b.checkpoint_id == parent.pk for c in batch)

    # the annotator now gets the new batch
    client.force_login(alice)
    page = client.get("/annotate/")
    assert page.context["comparison"].round_id == r.pk
    # and the studio shows the round with its checkpoint
    client.force_login(admin_user)
    assert b"round 1" in client.get("/studio/").content


def test_cancel_stops_a_running_round(client, admin_user, alice, tiny_models, celery_worker):
    project = make_project(tiny_models, first_batch=4)
    for _ in range(4):
        a = assignment_next(annotator=alice, project=project)
        from feedback.services.votes import vote_submit

        vote_submit(annotator=alice, assignment_id=a.pk, choice="a")
    client.force_login(admin_user)
    prefix = f"p{project.pk}"
    client.post(reverse("feedback:round_launch", args=[project.pk]), {
        f"{prefix}-ppo_steps": 500, f"{prefix}-ppo_batch_size": 4, f"{prefix}-reward_epochs": 1,
        f"{prefix}-min_pairs": 1, f"{prefix}-next_batch_prompts": 2,
    })
    r = TrainingRound.objects.get(project=project)
    deadline = time.monotonic() + 120
    while TrainingRound.objects.get(pk=r.pk).status != "ppo" and time.monotonic() < deadline:
        time.sleep(0.1)
    client.post(reverse("feedback:round_cancel", args=[r.pk]))
    r = _wait_for_round(r.pk, timeout=120)
    assert r.status == "cancelled"
    assert len(r.metrics.get("ppo", [])) < 500
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).parent_id is None
