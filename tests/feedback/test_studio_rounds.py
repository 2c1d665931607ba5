"""The live round page's status endpoint, retrying a round, and the launch form's plan."""
import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from feedback.models import TrainingRound
from feedback.selectors.studio import round_plan, round_status
from feedback.services.rounds import RoundError, round_retry
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def test_status_json_reports_stage_progress_eta_metrics_and_log(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    now = timezone.now()
    r = TrainingRound.objects.create(
        project=project, number=1, status="ppo", config={}, progress_step=2, progress_total=6,
        claimed_by="worker-host:7", heartbeat_at=now,  # a live worker: the reaper leaves it alone
        started_at=now - datetime.timedelta(seconds=30), timings={"snapshot": 2.0, "reward": 8.0},
        snapshot={"votes": 9, "pairs": 7, "sha256": "ab" * 32},
        metrics={"reward_summary": {"eval_accuracy": 0.75, "eval_pairs": 4, "epochs": 40},
                 "ppo": [{"step": 1, "score": 0.1, "kl": 0.01}, {"step": 2, "score": 0.3, "kl": None}]},
    )
    client.force_login(admin_user)
    response = client.get(reverse("feedback:round_status", args=[r.pk]))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    st = response.json()
    assert (st["status"], st["final"], st["step"], st["total"]) == ("ppo", False, 2, 6)
    assert 29 <= st["elapsed_s"] <= 40
    # the PPO stage began 10 s after the start (the stages before took 2 + 8 s): 2 steps in ~20 s
    assert 35 <= st["eta_s"] <= 50
    states = {s["name"]: s["state"] for s in st["stages"]}
    assert states == {"snapshot": "done", "reward": "done", "ppo": "current", "generating": "pending", "done": "pending"}
    latest = {m["label"]: m for m in st["latest"]}
    assert latest["RM held-out accuracy"]["value"] == 0.75 and "on 4 pairs" in latest["RM held-out accuracy"]["note"]
    assert latest["PPO mean score"]["value"] == 0.3
    assert latest["KL to reference"]["value"] is None  # not reported this step: null, not a crash
    assert any("7 preference pairs" in line for line in st["log"])
    assert any(line.startswith("ppo step 2: score 0.3") for line in st["log"])
    (score_chart,) = [c for c in st["charts"]["ppo"] if c["key"] == "score"]
    assert score_chart["x"] == [1, 2] and score_chart["y"] == [0.1, 0.3]


def test_status_of_a_failed_round_is_final_with_its_error(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    r = TrainingRound.objects.create(project=project, number=1, status="failed", config={},
                                     error="votes: only 0 preference pair(s)", timings={"snapshot": 0.1},
                                     started_at=timezone.now(), finished_at=timezone.now())
    st = round_status(r)
    assert st["final"] and st["eta_s"] is None and st["error"].startswith("votes:")
    assert st["log"][-1] == "error: votes: only 0 preference pair(s)"
    assert [s["state"] for s in st["stages"]][:2] == ["done", "skipped"]
    client.force_login(admin_user)
    page = client.get(reverse("feedback:round_detail", args=[r.pk])).content.decode()
    assert 'data-final="true"' in page and 'id="round-retry-form"' in page
    assert 'id="round-retry-form" hidden' not in page and "round_live.js" in page


def test_status_json_is_staff_only(client, alice, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    r = TrainingRound.objects.create(project=project, number=1, status="queued", config={})
    client.force_login(alice)
    response = client.get(reverse("feedback:round_status", args=[r.pk]))
    assert response.status_code == 403 and "for staff" in response.content.decode()


def test_retry_launches_a_new_round_with_the_same_settings(client, admin_user, tiny_models,
                                                           django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=0)
    config = {"ppo": {"steps": 3, "batch_size": 4, "mini_batch_size": 2}, "reward": {"epochs": 2}, "min_pairs": 5}
    from feedback.services.rounds import round_launch

    with django_capture_on_commit_callbacks(execute=False):
        first = round_launch(project=project, config=config)
    TrainingRound.objects.filter(pk=first.pk).update(status="failed", error="boom")
    first.refresh_from_db()
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("feedback:round_retry", args=[first.pk]))
    second = TrainingRound.objects.get(project=project, number=2)
    assert response.status_code == 302 and response["Location"] == reverse("feedback:round_detail", args=[second.pk])
    assert len(callbacks) == 1  # the worker is told once the row is committed
    assert second.config == first.config and second.config["ppo"]["steps"] == 3 and second.launched_by == admin_user
    assert second.status == "queued"


def test_retry_refuses_a_round_that_did_not_fail(client, admin_user, tiny_models, django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=0)
    done = TrainingRound.objects.create(project=project, number=1, status="done", config={})
    with pytest.raises(RoundError) as err:
        round_retry(training_round=done, launched_by=admin_user)
    assert err.value.field == "round" and "only a failed, cancelled or discarded" in err.value.message
    client.force_login(admin_user)
    response = client.post(reverse("feedback:round_retry", args=[done.pk]), follow=True)
    assert "Round not retried" in response.content.decode()
    assert TrainingRound.objects.count() == 1


def _vote_pairs(project, user, n):
    from feedback.services.assignment import assignment_next
    from feedback.services.votes import vote_submit

    for i in range(n):
        a = assignment_next(annotator=user, project=project)
        vote_submit(annotator=user, assignment_id=a.pk, choice="a" if i % 2 else "b")


def test_plan_says_how_many_epochs_the_minimum_steps_rule_makes(tiny_models, alice):
    project = make_project(tiny_models, first_batch=8)
    _vote_pairs(project, alice, 8)
    plan = round_plan(project, {"reward": {"epochs": 8, "batch_size": 16, "min_steps": 40}})
    # 8 pairs: 2 held out (20 %), 6 train = 1 step an epoch, so 8 epochs become 40
    assert plan["pairs"] == 8 and plan["votes"] == 8 and plan["enough_pairs"]
    assert (plan["reward"]["train_pairs"], plan["reward"]["eval_pairs"]) == (6, 2)
    assert (plan["reward"]["epochs"], plan["reward"]["steps"], plan["reward"]["raised_by_min_steps"]) == (40, 40, True)
    big = round_plan(project, {"reward": {"epochs": 3, "batch_size": 2, "min_steps": 4}}, pairs=100)
    assert (big["reward"]["train_pairs"], big["reward"]["steps_per_epoch"], big["reward"]["epochs"]) == (80, 40, 3)
    assert not big["reward"]["raised_by_min_steps"]
    ppo = round_plan(project, {"ppo": {"steps": 3, "batch_size": 8, "mini_batch_size": 2, "ppo_epochs": 2}}, pairs=0)
    assert ppo["ppo"]["episodes"] == 24 and ppo["ppo"]["gradient_steps"] == 3 * 2 * 4
    assert not ppo["enough_pairs"] and ppo["reward"]["steps"] == 0


def test_plan_warns_when_ppo_rollouts_are_shorter_than_the_projects_answers(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)  # generates up to 8 tokens
    client.force_login(admin_user)
    url = reverse("feedback:round_plan", args=[project.pk])
    short = client.get(url, {"ppo__max_new_tokens": "4", "generation__max_new_tokens": "8",
                             "ppo__missing_eos_penalty": "1.5"}).content.decode()
    assert 'id="plan-ppo-brevity"' in short and "up to 4 tokens, this project's batches up to 8" in short
    assert "missing-EOS penalty (1.5)" in short
    # the penalty is off by default, so shorter rollouts alone do not warn; nor does a penalty at equal lengths
    for same in ({"ppo__max_new_tokens": "4"}, {"ppo__max_new_tokens": "8", "ppo__missing_eos_penalty": "1.5"}):
        page = client.get(url, {"generation__max_new_tokens": "8", **same}).content.decode()
        assert "Fix the settings" not in page  # a plan, not a form error
        assert 'id="plan-ppo-brevity"' not in page
    assert round_plan(project, {"ppo": {"max_new_tokens": 4, "missing_eos_penalty": 1.0},
                                "generation": {"max_new_tokens": 8}})["ppo"]["brevity_pressure"]
    assert not round_plan(project, {"ppo": {"max_new_tokens": 4}, "generation": {"max_new_tokens": 8}})["ppo"]["brevity_pressure"]


def test_plan_warns_when_the_kl_target_is_above_the_guards_kl_limit(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    project.guard_settings = {}  # enforced, as in a real project (the tests' projects only report)
    project.save(update_fields=["guard_settings"])
    client.force_login(admin_user)
    url = reverse("feedback:round_plan", args=[project.pk])
    over = client.get(url, {"ppo__kl_target": "15"}).content.decode()
    assert 'id="plan-ppo-kl-guard"' in over and "KL target (15.0) is above the guards' KL limit (14.0)" in over
    # the defaults agree (12 under 14); a raised limit, a guard turned off or not enforced say nothing
    assert 'id="plan-ppo-kl-guard"' not in client.get(url).content.decode()
    project.guard_settings = {"kl_to_round0_max": 20}
    project.save(update_fields=["guard_settings"])
    assert 'id="plan-ppo-kl-guard"' not in client.get(url, {"ppo__kl_target": "15"}).content.decode()
    assert "kl_target_over_guard" not in round_plan(project, {"ppo": {"kl_target": 15}, "guards": {"enforce": False}})["ppo"]
    assert "kl_target_over_guard" not in round_plan(project, {"ppo": {"kl_target": 15},
                                                             "guards": {"kl_to_round0_max": None}})["ppo"]


def test_plan_matches_what_the_reward_trainer_runs(tiny_models):
    from training.config import RewardConfig
    from training.reward import train_reward_model

    project = make_project(tiny_models, first_batch=0)
    records = [{"prompt": "hello", "chosen": "good answer", "rejected": "bad"} for _ in range(7)]
    config = {"epochs": 1, "batch_size": 4, "min_steps": 5}
    plan = round_plan(project, {"reward": config}, pairs=len(records))
    import tempfile

    result = train_reward_model(records, tiny_models["reward"], tempfile.mkdtemp() + "/rm", RewardConfig(**config))
    assert len(result["steps"]) == plan["reward"]["steps"] and result["summary"]["epochs"] == plan["reward"]["epochs"]
    assert plan["reward"]["epochs"] == 3  # 6 train pairs, 2 steps an epoch: 1 epoch raised to reach 5 steps


def test_launch_page_shows_every_setting_with_help_and_the_plan(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    client.force_login(admin_user)
    page = client.get(reverse("feedback:round_launch_page", args=[project.pk])).content.decode()
    from dataclasses import fields

    from training.config import GenerationConfig, PPOConfig, RewardConfig

    for section, cls in (("reward", RewardConfig), ("ppo", PPOConfig), ("generation", GenerationConfig)):
        for f in fields(cls):
            assert f'name="{section}__{f.name}"' in page, f"{section}.{f.name} missing"
    assert 'name="min_pairs"' in page and 'name="next_batch_prompts"' in page
    assert "is raised until they are reached" in page and "Default: 40." in page  # min_steps's own docstring
    assert 'name="generation__max_new_tokens" value="8"' in page  # the project's generation settings
    assert 'id="plan"' in page and "0 preference pairs" in page and "htmx.min.js" in page

    partial = client.get(reverse("feedback:round_plan", args=[project.pk]), {"reward__epochs": "2", "ppo__steps": "0"})
    assert "ppo__steps: must be between 1 and 10000" in partial.content.decode()
    partial = client.get(reverse("feedback:round_plan", args=[project.pk]), {"reward__epochs": "2", "ppo__steps": "5"})
    assert "<b>40 epochs</b>" not in partial.content.decode() and "5 steps, <b>80 episodes</b>" in partial.content.decode()


def test_launch_errors_are_shown_beside_the_field_and_nothing_is_queued(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    client.force_login(admin_user)
    data = {"ppo__mini_batch_size": 5, "ppo__steps": 2}  # 5 does not divide batch_size 16; the rest: defaults
    response = client.post(reverse("feedback:round_launch_page", args=[project.pk]), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_ppo__mini_batch_size-errors"' in html and "must divide batch_size" in html
    assert not TrainingRound.objects.exists()
