"""Device and dtype: chosen in one place, CUDA asked for but absent is an error, models land there.

This machine has no GPU: what a GPU would answer (is_available, is_bf16_supported) is
stubbed where the choice depends on it; the bf16 compute path itself runs for real on
the CPU (autocast), through reward training, PPO and generation.
"""
import json
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_PROMPTS, toy_preferences
from training import device
from training.config import GenerationConfig, PPOConfig, RewardConfig
from training.generation import encode_prompts, generate_responses
from training.models import load_policy, load_reward_model
from training.ppo import train_ppo
from training.reward import score, train_reward_model


@pytest.fixture(autouse=True)
def unconfigured(monkeypatch):
    """Each test starts from the environment's choice, and leaves no configuration behind."""
    monkeypatch.delenv("RLHF_DEVICE", raising=False)
    monkeypatch.delenv("RLHF_DTYPE", raising=False)
    device.configure()
    yield
    device.configure()


@pytest.fixture
def a_gpu_with_bf16(monkeypatch):
    """torch believes a bf16-capable GPU is present (nothing is ever put on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Stub GPU")


def test_auto_is_the_cpu_on_a_machine_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.placement().describe() == {"device": "cpu", "dtype": "float32", "gpu_name": None}


def test_auto_is_the_gpu_in_bf16_when_torch_sees_one(a_gpu_with_bf16):
    where = device.placement()
    assert where.device == torch.device("cuda", 0) or where.device.type == "cuda"
    assert where.dtype == torch.bfloat16
    assert where.describe() == {"device": str(where.device), "dtype": "bfloat16", "gpu_name": "Stub GPU"}


def test_a_gpu_without_bf16_computes_in_fp32_and_refuses_a_bf16_request(a_gpu_with_bf16, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert device.resolve_dtype("auto", torch.device("cuda")) == torch.float32
    with pytest.raises(device.DeviceError, match="RLHF_DTYPE=bf16"):
        device.resolve_dtype("bf16", torch.device("cuda"))


def test_the_cpu_computes_in_bf16_only_where_it_has_native_bf16(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert device.resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert device.resolve_dtype("fp32", torch.device("cpu")) == torch.float32


def test_native_bf16_is_what_the_kernel_says_this_cpu_has():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to compare with")
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    assert device.cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})


def test_cuda_requested_without_cuda_is_an_error_naming_the_variable(monkeypatch, tiny_models):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device.configure("cuda")
    with pytest.raises(device.DeviceError, match="RLHF_DEVICE=cuda") as info:
        load_policy(tiny_models["policy"])
    assert "no CUDA device" in str(info.value)
    # the environment variable alone says the same (a process that never configures)
    device.configure()
    monkeypatch.setenv("RLHF_DEVICE", "cuda:1")
    with pytest.raises(device.DeviceError, match="RLHF_DEVICE=cuda:1"):
        load_reward_model(tiny_models["reward"])


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:0", "tpu"])
def test_unknown_device_names_are_refused(bad):
    with pytest.raises(ValueError, match="RLHF_DEVICE"):
        device.configure(bad)


def test_unknown_dtype_names_are_refused():
    with pytest.raises(ValueError, match="RLHF_DTYPE"):
        device.configure("cpu", "fp8")


def test_models_and_tensors_land_on_the_configured_device_and_dtype(tiny_models):
    device.configure("cpu", "bf16")
    policy, tokenizer = load_policy(tiny_models["policy"])
    assert {p.dtype for p in policy.parameters()} == {torch.bfloat16}  # only samples: compute dtype
    trainable, _ = load_policy(tiny_models["policy"], trainable=True)
    assert {p.dtype for p in trainable.parameters()} == {torch.float32}  # master weights stay fp32
    exported, _ = load_policy(tiny_models["policy"], device="cpu", dtype=torch.float32)
    assert {p.dtype for p in exported.parameters()} == {torch.float32}
    reward, reward_tok = load_reward_model(tiny_models["reward"])
    assert {p.dtype for p in reward.parameters()} == {torch.bfloat16}
    assert all(p.device.type == "cpu" for p in policy.parameters())
    assert encode_prompts(tokenizer, TINY_PROMPTS[:2])["input_ids"].device == device.device()
    scores = score(reward, reward_tok, ["hello"] * 2, ["good cat", "bad cat"])
    assert scores.dtype == torch.float32 and scores.shape == (2,)
    answers = generate_responses(tiny_models["policy"], TINY_PROMPTS[:2], GenerationConfig(max_new_tokens=4, seed=1),
                                 model_and_tokenizer=(policy, tokenizer))
    assert len(answers) == 2 and all(a.token_count >= 1 for a in answers)


def test_reward_training_and_ppo_run_in_bf16_compute_with_fp32_weights(tiny_models, tmp_path):
    """The mixed-precision path a GPU takes (autocast over fp32 weights), exercised on the CPU."""
    device.configure("cpu", "bf16")
    reward_dir = tmp_path / "rm"
    result = train_reward_model(toy_preferences(16), tiny_models["reward"], reward_dir,
                                RewardConfig(epochs=1, batch_size=8))
    assert all(s["loss"] == s["loss"] for s in result["steps"])  # no NaN
    ppo = train_ppo(tiny_models["policy"], tiny_models["policy"], reward_dir, TINY_PROMPTS, tmp_path / "p",
                    PPOConfig(steps=1, batch_size=2, mini_batch_size=2, ppo_epochs=1, max_new_tokens=4))
    assert ppo["summary"]["updates"] == 1
    saved = json.loads((tmp_path / "p" / "rlhf_checkpoint.json").read_text())
    assert saved["kind"] == "policy"
    from safetensors.torch import load_file

    # what is saved is fp32 (the trained weights), whatever the compute dtype was
    assert {t.dtype for t in load_file(str(tmp_path / "p" / "adapter_model.safetensors")).values()} == {torch.float32}


def test_bf16_compute_gives_fp32_logits_and_equal_figures_to_a_full_pass(tiny_models):
    """The head runs outside the model, in fp32, on the kept positions: the same logits as the model's own head."""
    from training.generation import decoder_states_and_logits, position_ids_from_mask

    device.configure("cpu", "bf16")
    policy, tokenizer = load_policy(tiny_models["policy"])
    enc = encode_prompts(tokenizer, TINY_PROMPTS[:2])
    with torch.no_grad():
        hidden, logits = decoder_states_and_logits(policy, enc["input_ids"], enc["attention_mask"], 3)
        own = policy(**enc, position_ids=position_ids_from_mask(enc["attention_mask"])).logits[:, -3:]
    assert logits.dtype == torch.float32 and logits.shape == own.shape and hidden.dtype == torch.bfloat16
    # the model's own head rounds its output to bf16 (8 bits): within that rounding of ours
    torch.testing.assert_close(logits, own.float(), atol=0.05, rtol=0.02)


def test_a_frozen_bf16_head_is_converted_once_and_again_when_its_weight_changes(tiny_models):
    from training.generation import decoder_states_and_logits

    device.configure("cpu", "bf16")
    policy, tokenizer = load_policy(tiny_models["policy"])
    policy.requires_grad_(False)
    enc = encode_prompts(tokenizer, TINY_PROMPTS[:2])
    head = policy.get_output_embeddings()
    with torch.no_grad():
        _, first = decoder_states_and_logits(policy, enc["input_ids"], enc["attention_mask"], 2)
        converted = head.__dict__["_fp32_weight"][1]
        _, again = decoder_states_and_logits(policy, enc["input_ids"], enc["attention_mask"], 2)
        assert head.__dict__["_fp32_weight"][1] is converted and torch.equal(first, again)
        head.weight.mul_(2)  # an in-place change (a merged adapter, a loaded state) is seen
        _, doubled = decoder_states_and_logits(policy, enc["input_ids"], enc["attention_mask"], 2)
    if head.bias is None:
        torch.testing.assert_close(doubled, 2 * first)
    else:
        assert not torch.allclose(doubled, first)
