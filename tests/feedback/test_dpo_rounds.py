"""DPO rounds: the same votes, lineage, next batch and guards as PPO rounds, DPO's own figures on the page."""
import json
from pathlib import Path

import pytest
from django.urls import reverse

import training.dpo
from feedback.models import Checkpoint, Comparison, TrainingRound
from feedback.services.rounds import RoundError, round_config_resolve, round_execute, round_launch
from tests.feedback.test_api import _client, _vote_everything
from tests.helpers import make_project

pytestmark = pytest.mark.django_db

TINY_DPO = {"epochs": 2, "batch_size": 2, "learning_rate": 1e-3, "kl_prompts": 2, "kl_max_new_tokens": 4}


def _dpo_round(tiny_models, alice, **dpo):
    """A project with 6 votes (6 pairs) and a queued DPO round on it, its task not sent."""
    project = make_project(tiny_models, first_batch=6)
    _vote_everything(project, [(alice, ["a", "b", "a", "b", "a", "b"])])
    config = {"method": "dpo", "min_pairs": 4, "next_batch_prompts": 2, "dpo": {**TINY_DPO, **dpo},
              "guards": {"prompts": 2, "max_new_tokens": 4}}
    resolved = round_config_resolve(project, config)
    return project, TrainingRound.objects.create(project=project, number=1, config=resolved)


def test_dpo_settings_are_checked_like_the_others_and_a_bad_one_changes_nothing(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    for config, field in (({"method": "sft"}, "method"), ({"method": ["dpo"]}, "method"), ({"method": "dpo", "dpo": {"beta": 0}}, "dpo.beta"),
                          ({"method": "dpo", "dpo": {"epochs": "2"}}, "dpo.epochs"),
                          ({"method": "dpo", "dpo": {"betta": 1}}, "dpo.betta"),
                          # the other method's section is still checked, though not used
                          ({"method": "ppo", "dpo": {"max_length": 10}}, "dpo.max_length")):
        with pytest.raises(RoundError) as err:
            round_launch(project=project, config=config)
        assert err.value.field == field, config
    assert not TrainingRound.objects.exists()
    dpo = round_config_resolve(project, {"method": "dpo", "dpo": {"beta": 0.3}})
    assert dpo["method"] == "dpo" and dpo["dpo"]["beta"] == 0.3 and "reward" not in dpo and "ppo" not in dpo
    ppo = round_config_resolve(project, None)
    assert ppo["method"] == "ppo" and "dpo" not in ppo and ppo["ppo"]["steps"] > 0


def test_a_dpo_round_trains_activates_generates_and_its_page_shows_dpo_figures(tiny_models, alice, admin_user,
                                                                               client):
    project, r = _dpo_round(tiny_models, alice)
    parent = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    done = round_execute(r.pk)

    assert done.status == "done", done.error
    assert set(done.timings) == {"snapshot", "dpo", "generating"}  # (jsonb keeps no key order)
    policy = done.policy_checkpoint
    assert policy.is_active and policy.parent_id == parent.pk and done.parent_policy_id == parent.pk
    assert done.reward_checkpoint is None and not Checkpoint.objects.filter(project=project, kind="reward").exists()
    manifest = json.loads((Path(policy.path) / "rlhf_checkpoint.json").read_text())
    assert manifest["method"] == "dpo" and manifest["format"] == "lora" and manifest["round"] == 1
    assert manifest["reference"] == parent.path  # round 0 is the parent here, and always the reference
    # the next batch pits the new policy against its parent, as after PPO
    batch = Comparison.objects.filter(round=done)
    assert batch.count() == 2
    assert all({c.sample_a.checkpoint_id, c.sample_b.checkpoint_id} == {policy.pk, parent.pk} for c in batch)
    summary = done.metrics["dpo_summary"]
    assert summary["train_pairs"] + summary["eval_pairs"] == 6 and summary["eval_pairs"] == 1
    for key in ("train_loss", "train_accuracy", "train_chosen_reward", "train_rejected_reward", "train_margin",
                "eval_loss", "eval_accuracy", "eval_margin", "eval_accuracy_before", "kl_to_round0"):
        assert isinstance(summary[key], float), key
    assert len(done.metrics["dpo"]) == summary["steps"] == 6  # 5 train pairs in batches of 2, two epochs
    assert "reward_summary" not in done.metrics and "ppo_summary" not in done.metrics
    assert done.metrics["guards"]["figures"]["new"]  # the same degeneration guards ran
    assert policy.metrics["eval_accuracy"] == summary["eval_accuracy"]

    # the round page: DPO's own figures instead of the reward model's and PPO's
    client.force_login(admin_user)
    page = client.get(reverse("feedback:round_detail", args=[done.pk])).content.decode()
    assert 'id="round-dpo"' in page and 'id="round-charts-dpo"' in page and "DPO steps" in page
    assert f'<b id="dpo-kl">{summary["kl_to_round0"]:.2f}</b>' in page
    # and the guards' KL on their held-out prompts, the figure that compares with PPO's rounds
    held_out_kl = done.metrics["guards"]["figures"]["new"]["kl_to_round0"]
    assert held_out_kl >= 0 and f'<b id="guards-kl">{held_out_kl:.2f}</b>' in page
    assert f'{summary["train_accuracy"]:.3f}' in page
    assert "Reward model steps" not in page and "PPO steps" not in page and "KL control" not in page
    status = client.get(reverse("feedback:round_status", args=[done.pk])).json()
    assert [s["name"] for s in status["stages"]] == ["snapshot", "dpo", "generating", "done"]
    assert all(s["state"] == "done" for s in status["stages"])
    assert status["method"] == "dpo" and status["charts"]["dpo"] and not status["charts"]["ppo"]
    assert "DPO held-out accuracy" in [m["label"] for m in status["latest"]]


def test_cancel_during_dpo_stops_it_and_leaves_the_parent_active(tiny_models, alice, monkeypatch):
    project, r = _dpo_round(tiny_models, alice)
    parent = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    real_loss = training.dpo.dpo_loss
    calls = []

    def loss_then_cancel(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # an admin presses Cancel during the second step
            TrainingRound.objects.filter(pk=r.pk).update(cancel_requested=True)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(training.dpo, "dpo_loss", loss_then_cancel)
    done = round_execute(r.pk)

    assert done.status == "cancelled"
    assert done.policy_checkpoint is None and not Comparison.objects.filter(round=done).exists()
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == parent.pk
    # the parent's held-out figures: 1 call; step 1, during which Cancel is pressed; step 2 never starts
    assert len(calls) == 2
    assert [p.name for p in Path(parent.path).parent.iterdir() if p.name.startswith(("round-001", ".tmp"))] == []


def test_api_and_studio_form_launch_dpo_rounds(tiny_models, alice, admin_user, client,
                                               django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=6)
    _vote_everything(project, [(alice, ["a", "b", "a", "b", "a", "b"])])
    api = _client(admin_user)
    bad = api.post(f"/api/v1/projects/{project.pk}/rounds/", {"config": {"method": "dpo", "dpo": {"beta": -1}}},
                   format="json")
    assert bad.status_code == 400 and "dpo.beta" in json.dumps(bad.json())
    assert not TrainingRound.objects.exists()

    client.force_login(admin_user)
    plan = client.get(reverse("feedback:round_plan", args=[project.pk]), {"method": "dpo", "dpo__epochs": "2"})
    assert 'id="plan-dpo"' in plan.content.decode() and "6 preference pairs" in plan.content.decode()
    refused = client.post(reverse("feedback:round_launch_page", args=[project.pk]), {"method": "dpo", "dpo__beta": "0"})
    assert refused.status_code == 400 and not TrainingRound.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        launched = client.post(reverse("feedback:round_launch_page", args=[project.pk]),
                               {"method": "dpo", "dpo__beta": "0.2"})
    assert launched.status_code == 302
    r = TrainingRound.objects.get()
    assert r.config["method"] == "dpo" and r.config["dpo"]["beta"] == 0.2 and "ppo" not in r.config
    r.delete()
    with django_capture_on_commit_callbacks(execute=False):
        created = api.post(f"/api/v1/projects/{project.pk}/rounds/", {"config": {"method": "dpo"}}, format="json")
    assert created.status_code == 201 and created.json()["config"]["method"] == "dpo"


@pytest.mark.slow
def test_simulate_runs_dpo_rounds(tiny_models, capsys, tmp_path):
    from django.core.management import call_command

    project = make_project(tiny_models, first_batch=0, prompts=[
        "tell me about the cat", "why is the sky blue", "say something nice", "what is a dog",
        {"prompt": "say yes", "split": "held_out"}, {"prompt": "say no", "split": "held_out"},
    ])
    report = tmp_path / "sim.json"
    call_command("simulate", project=project.name, rule="shorter", rounds=2, votes=8, eval_prompts=2,
                 report=str(report), round_config=json.dumps({
                     "method": "dpo", "min_pairs": 1, "next_batch_prompts": 2,
                     "dpo": {"epochs": 1, "batch_size": 4, "kl_prompts": 2, "kl_max_new_tokens": 4}}))
    out = capsys.readouterr().out
    assert "round 2 (2, DPO): win-rate vs round 0 =" in out and "DPO held-out accuracy" in out
    rounds = json.loads(report.read_text())["rounds"]
    assert [r["method"] for r in rounds] == ["dpo", "dpo"]
    assert all(r["kl_to_round0"] is not None and r["dpo_train_accuracy"] is not None for r in rounds)
    assert TrainingRound.objects.filter(project=project, status="done").count() == 2
