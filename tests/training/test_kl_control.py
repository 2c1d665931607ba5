"""The adaptive KL controller follows Ziegler et al. (2019), and PPO stops at the KL ceiling."""
import json

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import TINY_PROMPTS
from training.config import ConfigError, PPOConfig, RewardConfig, config_from_dict
from training.kl import AdaptiveKLController, FixedKLController
from training.ppo import train_ppo
from training.reward import train_reward_model


def _paper(beta: float, kl: float, target: float, n: int, horizon: float) -> float:
    # written out from section 2.2 of the paper, independently of training/kl.py
    error = kl / target - 1
    if error > 0.2:
        error = 0.2
    if error < -0.2:
        error = -0.2
    return beta * (1 + error * n / horizon)


@pytest.mark.parametrize("kl", [0.0, 3.0, 5.5, 6.0, 6.6, 7.0, 40.0])
def test_adaptive_controller_update_is_the_papers_formula(kl):
    ctl = AdaptiveKLController(0.05, target=6.0, horizon=32)
    assert ctl.update(kl, 16) == pytest.approx(_paper(0.05, kl, 6.0, 16, 32))


def test_adaptive_controller_moves_at_most_the_clip_per_step_and_compounds():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(1000.0, 512)
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 512 / 10_000))  # far over target: only +20 % of K
    ctl.update(0.0, 512)
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 512 / 10_000) * (1 - 0.2 * 512 / 10_000))
    assert ctl.update(6.0, 512) == pytest.approx(ctl.value)  # on target: unchanged
    assert FixedKLController(0.05).update(1000.0, 16) == 0.05
    with pytest.raises(ValueError, match="kl_target"):
        AdaptiveKLController(0.05, target=0.0, horizon=32)


def test_ppo_config_names_bad_kl_settings():
    for field, value in (("kl_target", 0), ("kl_horizon", -1), ("kl_max", 0)):
        with pytest.raises(ConfigError) as err:
            config_from_dict(PPOConfig, {field: value})
        assert err.value.field == field
    assert config_from_dict(PPOConfig, {"kl_max": None}).kl_max is None


@pytest.fixture
def reward_dir(tiny_models, tmp_path):
    records = [{"prompt": p, "chosen": "good cat", "rejected": "bad dog"} for p in TINY_PROMPTS]
    train_reward_model(records, tiny_models["reward"], tmp_path / "rm", RewardConfig(epochs=1, min_steps=1))
    return tmp_path / "rm"


# The seeded figures below (KL per step, steps kept) were measured with the missing-EOS penalty
# on, so the configs name it: its default is now 0, and the penalty changes every trajectory.


def test_ppo_steers_the_kl_coefficient_every_step(tiny_models, reward_dir, tmp_path):
    config = PPOConfig(steps=3, batch_size=4, mini_batch_size=2, missing_eos_penalty=1.0, ppo_epochs=1, max_new_tokens=6,
                       kl_coef=0.1, kl_target=5.0, kl_horizon=8.0, kl_max=None)
    result = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "p", config)
    steps = result["steps"]
    # three updates, then a rollout that only measures the trained policy
    assert len(steps) == 4 and steps[-1]["check"] is True and "pg_loss" not in steps[-1]
    assert steps[0]["kl_coef"] == 0.1
    for before, after in zip(steps, steps[1:]):
        assert after["kl_coef"] == pytest.approx(_paper(before["kl_coef"], before["kl"], 5.0, 4, 8.0))
    assert steps[1]["kl_coef"] != 0.1  # K = 4/8: the coefficient visibly moves
    summary = result["summary"]
    assert summary["final_kl_coef"] == pytest.approx(_paper(steps[-2]["kl_coef"], steps[-2]["kl"], 5.0, 4, 8.0))
    assert summary["early_stopped"] is False and summary["stop_reason"] is None and summary["updates"] == 3
    # the trained policy measured under the target: it is the one saved, with its own figures
    assert steps[-1]["kl"] <= 5.0 and summary["kept_step"] == 4 and summary["kept_reason"] is None
    assert summary["final_kl"] == steps[-1]["kl"] and summary["steps"] == 3

    fixed = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "f",
                      PPOConfig(steps=2, batch_size=4, mini_batch_size=2, missing_eos_penalty=1.0, ppo_epochs=1, max_new_tokens=6,
                                kl_coef=0.1, adaptive_kl=False))
    assert [s["kl_coef"] for s in fixed["steps"]] == [0.1, 0.1, 0.1]


def test_ppo_saves_the_last_policy_measured_under_the_target(tiny_models, reward_dir, tmp_path):
    # no KL penalty pulls the policy back; these seeds measure KL 0, 0.163, 0.179 and (the
    # check) 0.170, so under a target of 0.165 the policy after one update is the last kept
    target = 0.165
    config = PPOConfig(steps=3, batch_size=4, mini_batch_size=2, missing_eos_penalty=1.0, ppo_epochs=4, max_new_tokens=6,
                       learning_rate=2e-2, kl_coef=0.0, kl_target=target, kl_max=None)
    result = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "p", config)
    steps, summary = result["steps"], result["summary"]
    assert steps[0]["kl"] == 0.0 and steps[-1]["check"] is True and steps[-1]["kl"] > target
    under = [s["step"] for s in steps if s["kl"] <= target]
    assert 1 < under[-1] < 4  # a trained policy in between, not the parent and not the last
    assert summary["kept_step"] == under[-1] and summary["updates"] == under[-1] - 1
    assert summary["final_kl"] == steps[under[-1] - 1]["kl"] <= target
    assert "over kl_target" in summary["kept_reason"] and f"step {under[-1]}" in summary["kept_reason"]
    assert summary["early_stopped"] is False and summary["steps"] == 3
    manifest = json.loads((tmp_path / "p" / "rlhf_checkpoint.json").read_text())
    assert manifest["metrics"]["kept_reason"] == summary["kept_reason"]
    # the same seeds stopped after that many updates save the same adapters and value head
    train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "same",
              PPOConfig(**{**config.__dict__, "steps": summary["updates"], "keep_under_target": False}))
    for name in ("adapter_model.safetensors", "value_head.safetensors"):
        kept, expected = load_file(str(tmp_path / "p" / name)), load_file(str(tmp_path / "same" / name))
        assert kept.keys() == expected.keys() and all(torch.equal(kept[k], expected[k]) for k in kept), name
    # off, the target only steers: the same seeds save the trained policy, whose weights differ
    trained = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "t",
                        PPOConfig(**{**config.__dict__, "keep_under_target": False}))
    assert trained["summary"]["updates"] == 3 and trained["summary"]["kept_reason"] is None
    assert trained["summary"]["final_kl"] == trained["steps"][-1]["kl"] > target
    assert trained["summary"]["final_entropy"] == trained["steps"][-1]["entropy"] > 0  # the check's own rollout
    kept, last = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in ("p", "t"))
    assert any(not torch.equal(kept[k], last[k]) for k in kept)


def test_a_check_over_kl_max_keeps_an_earlier_policy_without_stopping_early(tiny_models, reward_dir, tmp_path):
    # one update, then the check measures the trained policy over the ceiling
    config = PPOConfig(steps=1, batch_size=4, mini_batch_size=2, missing_eos_penalty=1.0, ppo_epochs=4, max_new_tokens=6,
                       learning_rate=2e-2, kl_coef=0.0, kl_max=0.1)
    result = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "p", config)
    steps, summary = result["steps"], result["summary"]
    assert [s.get("check", False) for s in steps] == [False, True] and steps[-1]["kl"] > 0.1
    assert summary["early_stopped"] is False and summary["stop_reason"] is None  # every update ran
    assert summary["kept_step"] == 1 and summary["updates"] == 0
    assert "over kl_max 0.1" in summary["kept_reason"] and "step 1" in summary["kept_reason"]
    adapters = load_file(str(tmp_path / "p" / "adapter_model.safetensors"))
    assert all(not v.any() for k, v in adapters.items() if "lora_B" in k)  # the untrained start


def test_ppo_stops_at_the_kl_ceiling_and_keeps_the_last_policy_under_it(tiny_models, reward_dir, tmp_path):
    # these seeds measure KL 0, 0.023, 0.081, 0.130, ...: a ceiling of 0.1 stops PPO at step 4
    config = PPOConfig(steps=6, batch_size=4, mini_batch_size=2, missing_eos_penalty=1.0, ppo_epochs=2, max_new_tokens=6,
                       learning_rate=2e-3, kl_max=0.1)
    result = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "p", config)
    steps, summary = result["steps"], result["summary"]
    # step 1 samples the untrained adapters: the policy is the reference, KL exactly 0
    assert steps[0]["kl"] == 0.0 and not steps[0].get("stopped")
    assert summary["early_stopped"] is True and len(steps) < 6 + 1
    assert steps[-1]["stopped"] is True and steps[-1]["kl"] > 0.1
    assert "kl_max" in summary["stop_reason"] and f"step {len(steps)}" in summary["stop_reason"]
    # the policy saved is the one sampled at the step before the stop, with one update fewer
    assert summary["updates"] == len(steps) - 2
    assert summary["final_kl"] == steps[-2]["kl"] <= 0.1
    manifest = json.loads((tmp_path / "p" / "rlhf_checkpoint.json").read_text())
    assert manifest["metrics"]["early_stopped"] is True
    # the same seeds without a ceiling, stopped after that many updates, save the same weights
    assert summary["updates"] >= 1
    same = PPOConfig(**{**config.__dict__, "steps": summary["updates"], "kl_max": None})
    train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "same", same)
    for name in ("adapter_model.safetensors", "value_head.safetensors"):
        kept, expected = load_file(str(tmp_path / "p" / name)), load_file(str(tmp_path / "same" / name))
        assert kept.keys() == expected.keys()
        assert all(torch.equal(kept[k], expected[k]) for k in kept), name
    # the update made at the last step under the ceiling was undone: the weights are not the crossing policy's
    crossing = PPOConfig(**{**config.__dict__, "steps": summary["updates"] + 1, "kl_max": None})
    train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "over", crossing)
    over = load_file(str(tmp_path / "over" / "adapter_model.safetensors"))
    kept = load_file(str(tmp_path / "p" / "adapter_model.safetensors"))
    assert any(not torch.equal(kept[k], over[k]) for k in kept)


def test_ppo_over_the_ceiling_from_the_start_saves_the_parent_unchanged(tiny_models, reward_dir, tmp_path):
    first = PPOConfig(steps=2, batch_size=4, mini_batch_size=2, missing_eos_penalty=1.0, ppo_epochs=2, max_new_tokens=6, learning_rate=2e-2,
                      kl_max=None)
    train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "r1", first)
    result = train_ppo(tmp_path / "r1", tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "r2",
                       PPOConfig(**{**first.__dict__, "kl_max": 1e-6, "seed": 3}))
    steps = result["steps"]
    assert len(steps) == 1 and steps[0]["stopped"] and result["summary"]["updates"] == 0
    assert "kept the parent unchanged" in result["summary"]["stop_reason"]
    parent, saved = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in ("r1", "r2"))
    assert all(torch.equal(parent[k], saved[k]) for k in parent)
