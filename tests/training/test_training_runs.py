"""Reward model and PPO on tiny random models: they learn, and every trained weight moves."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import TINY_PROMPTS, toy_preferences
from training.config import PPOConfig, RewardConfig
from training.models import load_reward_model
from training.ppo import train_ppo
from training.reward import normalized_score, score, score_normalization, train_reward_model


def test_reward_model_learns_a_toy_preference(tiny_models, tmp_path):
    records = toy_preferences(80)
    result = train_reward_model(
        records, tiny_models["reward"], tmp_path / "rm",
        RewardConfig(epochs=15, batch_size=8, learning_rate=2e-3, eval_fraction=0.25),
    )
    summary = result["summary"]
    assert summary["eval_pairs"] == 20
    assert summary["eval_accuracy"] > 0.9
    assert result["steps"][-1]["loss"] < result["steps"][0]["loss"]
    # the saved model scores fresh text the same way
    model, tok = load_reward_model(tmp_path / "rm")
    good, bad = score(model, tok, ["say something nice"] * 2, ["the good cat", "the bad cat"])
    assert good > bad
    manifest = json.loads((tmp_path / "rm" / "rlhf_checkpoint.json").read_text())
    assert manifest["kind"] == "reward" and manifest["config"]["epochs"] == 15


def test_reward_scores_are_normalized_on_the_training_responses(tiny_models, tmp_path):
    records = toy_preferences(24)
    summary = train_reward_model(records, tiny_models["reward"], tmp_path / "rm",
                                 RewardConfig(epochs=4, batch_size=8, learning_rate=2e-3, eval_fraction=0.0))["summary"]
    model, tok = load_reward_model(tmp_path / "rm")
    normalization = score_normalization(tmp_path / "rm")
    assert normalization == (summary["score_shift"], summary["score_scale"]) and normalization != (0.0, 1.0)
    distinct = sorted({(r["prompt"], text) for r in records for text in (r["chosen"], r["rejected"])})
    prompts, texts = [p for p, _ in distinct], [t for _, t in distinct]
    raw = score(model, tok, prompts, texts)
    normalized = normalized_score(model, tok, prompts, texts, 256, normalization)
    assert abs(float(normalized.mean())) < 1e-4 and abs(float(normalized.std()) - 1.0) < 1e-4
    assert torch.equal(raw.argsort(), normalized.argsort())  # the order of responses is untouched
    # off: the manifest says so and scores stay raw
    train_reward_model(records, tiny_models["reward"], tmp_path / "raw", RewardConfig(epochs=1, normalize_scores=False))
    assert score_normalization(tmp_path / "raw") == (0.0, 1.0)
    assert score_normalization(tiny_models["reward"]) == (0.0, 1.0)  # a base model has no manifest


def test_reward_model_takes_at_least_min_steps_on_a_small_snapshot(tiny_models, tmp_path):
    # 10 pairs, 8 held out at 0.2 -> 8 train pairs: one batch an epoch, so 3 epochs would be 3 steps
    result = train_reward_model(toy_preferences(10), tiny_models["reward"], tmp_path / "rm",
                                RewardConfig(epochs=3, batch_size=16, min_steps=7))
    assert len(result["steps"]) == 7 and result["summary"]["epochs"] == 7
    more = train_reward_model(toy_preferences(40), tiny_models["reward"], tmp_path / "rm2",
                              RewardConfig(epochs=3, batch_size=16, min_steps=2))
    assert more["summary"]["epochs"] == 3  # enough steps already: epochs as configured


def test_reward_model_every_parameter_changes(tiny_models, tmp_path):
    # trainable: the weights as trained and saved, fp32 (a scoring copy may be bf16, too coarse to see a step)
    before = load_reward_model(tiny_models["reward"], trainable=True)[0].state_dict()
    train_reward_model(toy_preferences(16), tiny_models["reward"], tmp_path / "rm",
                       RewardConfig(epochs=2, batch_size=8, learning_rate=1e-3, center_rewards_coefficient=0.0))
    after = load_reward_model(tmp_path / "rm", trainable=True)[0].state_dict()
    unchanged = [k for k, v in before.items() if v.dtype.is_floating_point and torch.equal(v, after[k])
                 and "position_ids" not in k and "token_type" not in k]
    # The pairwise loss sees only chosen - rejected, where the head's bias cancels: it gets
    # no gradient without centering (in fp32 it may move by rounding noise alone).
    assert set(unchanged) <= {"classifier.bias"}


def test_ppo_trains_every_lora_weight_and_value_head(tiny_models, tmp_path):
    reward_dir = tmp_path / "rm"
    train_reward_model(toy_preferences(16), tiny_models["reward"], reward_dir, RewardConfig(epochs=1))
    config = PPOConfig(steps=2, batch_size=4, mini_batch_size=2, ppo_epochs=2, max_new_tokens=6, learning_rate=1e-3)
    result = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "p1", config)
    *steps, check = result["steps"]
    assert len(steps) == 2 and check["check"] is True  # two updates, then the trained policy measured
    for key in ("score", "kl", "non_score_reward", "entropy", "clipfrac", "approx_kl", "vf_loss", "vf_clipfrac",
                "grad_norm", "response_length", "eos_fraction", "episodes_per_s"):
        assert all(isinstance(s[key], float) for s in steps), key
    adapters = load_file(str(tmp_path / "p1" / "adapter_model.safetensors"))
    assert adapters, "no adapter weights saved"
    # LoRA B starts at zero: a trained adapter has non-zero B everywhere
    zero_b = [k for k, v in adapters.items() if "lora_B" in k and torch.count_nonzero(v) == 0]
    assert zero_b == []
    head = load_file(str(tmp_path / "p1" / "value_head.safetensors"))
    assert torch.count_nonzero(head["weight"]) > 0

    # a second round continues from the adapters: every LoRA tensor moves again
    train_ppo(tmp_path / "p1", tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "p2", config)
    adapters2 = load_file(str(tmp_path / "p2" / "adapter_model.safetensors"))
    unchanged = [k for k in adapters if torch.equal(adapters[k], adapters2[k])]
    assert unchanged == []
    manifest = json.loads((tmp_path / "p2" / "rlhf_checkpoint.json").read_text())
    assert manifest["format"] == "lora" and manifest["config"]["steps"] == 2
    assert manifest["base_model"] == str(Path(tiny_models["policy"]).resolve())


def test_ppo_scores_with_the_reward_models_normalization(tiny_models, tmp_path):
    reward_dir = tmp_path / "rm"
    train_reward_model(toy_preferences(16), tiny_models["reward"], reward_dir, RewardConfig(epochs=1))
    manifest_path = reward_dir / "rlhf_checkpoint.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["normalization"] = {"shift": 1000.0, "scale": 0.5}
    manifest_path.write_text(json.dumps(manifest))
    config = PPOConfig(steps=1, batch_size=2, mini_batch_size=2, ppo_epochs=1, max_new_tokens=4, missing_eos_penalty=0.0)
    result = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "p", config)
    assert result["steps"][0]["score"] < -1500  # (raw - 1000) / 0.5 with raw scores near zero


def test_ppo_rejects_bad_config_naming_the_field(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="mini_batch_size"):
        train_ppo(tiny_models["policy"], tiny_models["policy"], tiny_models["reward"], TINY_PROMPTS, tmp_path / "x",
                  PPOConfig(batch_size=4, mini_batch_size=3))
    assert not (tmp_path / "x").exists()
