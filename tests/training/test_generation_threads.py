"""Seeded generation is reproducible even while other threads generate (web requests run in threads)."""
import threading

from training.config import GenerationConfig
from training.generation import generate_responses
from training.models import load_policy
from training.progress import Hooks

PROMPTS = ["tell me about the cat", "why is the sky blue", "say something nice", "what is a dog"]


def _config(seed: int) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=10, temperature=1.0, batch_size=1, seed=seed)


def test_two_concurrent_generations_each_reproduce_their_own_seed(tiny_models):
    loaded = load_policy(tiny_models["policy"])
    alone = {seed: [s.text for s in generate_responses(tiny_models["policy"], PROMPTS, _config(seed),
                                                       model_and_tokenizer=loaded)] for seed in (1, 2)}
    assert alone[1] != alone[2]

    # Both threads meet before every batch, so their draws interleave the way two busy
    # web requests' do: with one global generator each would take the other's numbers.
    barrier = threading.Barrier(2, timeout=60)
    together, errors = {}, []

    def run(seed):
        try:
            hooks = Hooks(report=lambda **_: barrier.wait())
            together[seed] = [s.text for s in generate_responses(tiny_models["policy"], PROMPTS, _config(seed), hooks,
                                                                 model_and_tokenizer=loaded)]
        except Exception as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert together == alone


def test_unseeded_generation_does_not_touch_torchs_global_generator(tiny_models):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate_responses(tiny_models["policy"], PROMPTS[:2], GenerationConfig(max_new_tokens=4, seed=None))
    generate_responses(tiny_models["policy"], PROMPTS[:2], GenerationConfig(max_new_tokens=4, seed=7))
    assert torch.equal(torch.rand(3), expected)
