"""DPO on tiny random models: the loss is the paper's, the policy learns the pairs, the
checkpoint is a policy like PPO's, and a cancel leaves nothing behind."""
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import TINY_PROMPTS, toy_preferences
from training.config import ConfigError, DPOConfig, config_from_dict
from training.dpo import dpo_loss, train_dpo
from training.generation import generate_responses
from training.config import GenerationConfig
from training.progress import Cancelled, Hooks

FAST = DPOConfig(epochs=4, batch_size=4, learning_rate=1e-2, beta=0.5, kl_prompts=2, kl_max_new_tokens=4)


def test_dpo_loss_matches_the_hand_computed_value():
    # pair 1: chosen gains 1 nat over the reference, rejected loses 1 -> rewards +0.5 / -0.5 at beta 0.5
    # pair 2: the other way round -> rewards -0.5 / +0.5
    policy_c, policy_r = torch.tensor([-3.0, -2.0]), torch.tensor([-5.0, -2.0])
    ref_c, ref_r = torch.tensor([-4.0, -1.0]), torch.tensor([-4.0, -3.0])
    loss, chosen, rejected = dpo_loss(policy_c, policy_r, ref_c, ref_r, beta=0.5)
    easy, hard = math.log(1 + math.exp(-1)), math.log(1 + math.exp(1))  # -log sigmoid(+1), -log sigmoid(-1)
    assert float(loss) == pytest.approx((easy + hard) / 2)
    assert chosen.tolist() == [0.5, -0.5] and rejected.tolist() == [-0.5, 0.5]
    weighted, _, _ = dpo_loss(policy_c, policy_r, ref_c, ref_r, beta=0.5, weight=torch.tensor([1.0, 0.5]))
    assert float(weighted) == pytest.approx((easy + 0.5 * hard) / 1.5)
    # the policy equal to the reference: log 2 whatever beta
    assert float(dpo_loss(ref_c, ref_r, ref_c, ref_r, beta=3.0)[0]) == pytest.approx(math.log(2))


def test_dpo_learns_the_pairs_and_writes_a_policy_checkpoint(tiny_models, tmp_path):
    records = toy_preferences(20)
    for r in records[:5]:
        r["chosen_finished"] = False  # cut at the token limit: no EOS taught after it
    steps = []
    result = train_dpo(tiny_models["policy"], tiny_models["policy"], records, tmp_path / "p1", FAST,
                       Hooks(report=lambda **kw: steps.append(kw)), kl_prompts=TINY_PROMPTS)
    summary = result["summary"]
    assert summary["train_pairs"] == 16 and summary["eval_pairs"] == 4 and summary["steps"] == 16
    assert [s["stage"] for s in steps] == ["dpo"] * 17 and steps[-1]["step"] == steps[-1]["total"] == 16
    for key in ("loss", "chosen_reward", "rejected_reward", "margin", "accuracy", "grad_norm"):
        assert all(isinstance(s[key], float) for s in result["steps"]), key
    # the parent is round 0 itself: no margin before, a learnt one after
    assert summary["eval_margin_before"] == 0.0 and summary["eval_accuracy_before"] == 0.0
    assert summary["train_accuracy"] == 1.0 and summary["train_loss"] < math.log(2)
    assert summary["eval_margin"] > 0 and summary["eval_accuracy"] >= 0.75
    assert summary["train_margin"] == pytest.approx(summary["train_chosen_reward"] - summary["train_rejected_reward"])
    # the exact KL, as PPO's: above 0 because the policy moved, and never below 0 as the sampled k1 may read
    assert summary["kl_prompts"] == 2 and math.isfinite(summary["kl_k1"]) and summary["kl_to_round0"] > 0

    manifest = json.loads((tmp_path / "p1" / "rlhf_checkpoint.json").read_text())
    assert manifest["kind"] == "policy" and manifest["method"] == "dpo" and manifest["format"] == "lora"
    assert manifest["base_model"] == str(Path(tiny_models["policy"]).resolve())
    adapters = load_file(str(tmp_path / "p1" / "adapter_model.safetensors"))
    assert [k for k, v in adapters.items() if "lora_B" in k and torch.count_nonzero(v) == 0] == []
    # generation reads it as it reads PPO's policies
    answers = generate_responses(tmp_path / "p1", TINY_PROMPTS[:2], GenerationConfig(max_new_tokens=4, seed=1))
    assert len(answers) == 2

    # a second round from it keeps round 0 as the reference: the parent's margin is already there
    second = train_dpo(tmp_path / "p1", tiny_models["policy"], records, tmp_path / "p2",
                       DPOConfig(epochs=1, batch_size=8, learning_rate=1e-3, beta=0.5, kl_prompts=0))
    assert second["summary"]["eval_margin_before"] == pytest.approx(summary["eval_margin"], rel=1e-3)
    assert "kl_to_round0" not in second["summary"]
    adapters2 = load_file(str(tmp_path / "p2" / "adapter_model.safetensors"))
    assert [k for k in adapters if torch.equal(adapters[k], adapters2[k])] == []


def test_dpo_cancel_stops_between_steps_and_writes_nothing(tiny_models, tmp_path):
    seen = []
    hooks = Hooks(report=lambda **kw: seen.append(kw["step"]), should_stop=lambda: len(seen) >= 3)
    with pytest.raises(Cancelled):
        train_dpo(tiny_models["policy"], tiny_models["policy"], toy_preferences(20), tmp_path / "p", FAST, hooks)
    assert seen == [0, 1, 2]  # two steps trained, the third never started
    assert list(tmp_path.iterdir()) == []  # no checkpoint and no half-written temporary folder


def test_dpo_config_errors_name_the_field():
    with pytest.raises(ConfigError) as err:
        config_from_dict(DPOConfig, {"beta": 0})
    assert err.value.path("dpo") == "dpo.beta"
    with pytest.raises(ConfigError) as err:
        config_from_dict(DPOConfig, {"max_prompt_length": 300, "max_length": 200})
    assert err.value.field == "max_length"
    with pytest.raises(ConfigError) as err:
        config_from_dict(DPOConfig, {"epochs": "3"})
    assert err.value.field == "epochs" and "integer" in err.value.reason
