"""Batched generation for serving: seeds per request, stop sequences, greedy as generate(), batching queue."""
import threading

import pytest
import torch

from training.batching import Batcher
from training.generation import GenerationRequest, complete_batch, encode_prompts, stream_batch, stream_response
from training.model_cache import ModelCache
from training.models import load_policy


@pytest.fixture(scope="module")
def policy(tiny_models):
    return load_policy(tiny_models["policy"])


def test_greedy_rows_match_generate(policy):
    model, tokenizer = policy
    prompts = ["tell me about the cat", "why"]
    requests = [GenerationRequest(prompt=p, max_new_tokens=6, temperature=0) for p in prompts]
    ours = complete_batch(model, tokenizer, requests)
    for prompt, chunk in zip(prompts, ours):
        enc = encode_prompts(tokenizer, [prompt])
        out = model.generate(**enc, do_sample=False, max_new_tokens=6, min_new_tokens=1,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        expected = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        assert chunk.full_text == expected


def test_a_seeded_row_is_the_same_alone_or_in_a_batch(policy):
    model, tokenizer = policy
    alone = complete_batch(model, tokenizer, [GenerationRequest("say something nice", 8, seed=7)])[0]
    crowd = [GenerationRequest("why is the sky blue", 8, seed=s) for s in range(5)]
    batched = complete_batch(model, tokenizer, crowd + [GenerationRequest("say something nice", 8, seed=7)])[-1]
    assert batched.full_text == alone.full_text
    other = complete_batch(model, tokenizer, [GenerationRequest("say something nice", 8, seed=8)])[0]
    unseeded = {complete_batch(model, tokenizer, [GenerationRequest("say something nice", 8)])[0].full_text
                for _ in range(4)}
    assert other.full_text != alone.full_text or len(unseeded) > 1


def test_stop_sequence_cuts_the_text_and_is_never_streamed(policy):
    model, tokenizer = policy
    base = complete_batch(model, tokenizer, [GenerationRequest("tell me", 12, seed=3)])[0]
    words = base.full_text.split()
    assert len(words) >= 4
    stop = " ".join(words[2:4])
    pieces = list(stream_response(model, tokenizer, "tell me", max_new_tokens=12, temperature=1.0, seed=3,
                                  stop=(stop,)))
    streamed = "".join(p.text for p in pieces)
    assert stop not in streamed
    assert pieces[-1].finish_reason == "stop" and pieces[-1].finished
    assert pieces[-1].full_text == " ".join(words[:2])
    assert pieces[-1].token_count < base.token_count


def test_length_and_cancel_reasons(policy):
    model, tokenizer = policy
    last = complete_batch(model, tokenizer, [GenerationRequest("hi", 1, seed=1)])[0]
    assert last.finish_reason == "length" and last.token_count == 1
    chunks = list(stream_batch(model, tokenizer, [GenerationRequest("hi", 50, seed=1)], should_stop=lambda: True))
    assert [c.finish_reason for c in chunks] == ["cancelled"]


def test_batcher_groups_concurrent_requests(tiny_models):
    cache = ModelCache(max_models=2)
    batcher = Batcher(cache, max_batch=16, window_s=0.2)
    results = {}

    def client(i):
        chunks = list(batcher.submit(tiny_models["policy"], [GenerationRequest("tell me", 5, seed=i)]))
        results[i] = chunks[-1]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [0, 1, 2, 3] and all(r.done and r.index == 0 for r in results.values())
    assert batcher.largest_batch >= 2  # at least two clients shared a forward pass
    model, tokenizer = cache.get(tiny_models["policy"])
    alone = complete_batch(model, tokenizer, [GenerationRequest("tell me", 5, seed=2)])[0]
    assert results[2].full_text == alone.full_text


def test_cache_bounded_by_count_and_bytes(tiny_models, tmp_path):
    import shutil

    paths = []
    for i in range(3):
        shutil.copytree(tiny_models["policy"], tmp_path / f"p{i}")
        paths.append(str(tmp_path / f"p{i}"))
    cache = ModelCache(max_models=3)
    first = cache.get(paths[0])
    assert cache.get(paths[0]) is first
    one = cache.total_bytes()
    assert one > 0
    cache.max_bytes = int(one * 2.5)
    for p in paths:
        cache.get(p)
    assert cache.paths() == paths[1:]  # the third model would pass the byte bound
    cache.max_bytes = one // 2
    cache.get(paths[0])
    assert cache.paths() == [paths[0]]  # alone over the bound, but asked for
