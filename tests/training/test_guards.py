"""Degeneration guards: each figure on hand-made answers, the verdict, and the NLL on a tiny model."""
import json
from dataclasses import replace

import pytest
import torch

from tests.helpers import TINY_PROMPTS, TINY_WORDS
from tests.training.guard_answers import DEGENERATE, FLUENT, ROUND_0, answers
from training.config import ConfigError, GenerationConfig, GuardConfig, config_from_dict
from training.generation import GeneratedSample, generate_responses, render_prompt
from training.guards import (
    answer_figures,
    answer_kl,
    answer_nll,
    distinct_n,
    guards_evaluate,
    guards_verdict,
    looping_answer_share,
    mean_nll,
    repeated_line_share,
    repeated_ngram_share,
    words,
)
from training.models import load_policy
from training.progress import Hooks
from training.tiny import build_tiny_policy


def test_words_lowercase_split_punctuation_and_write_every_number_as_zero():
    assert words("Here's 12 Tips:\n1. ****") == ["here", "'", "s", "0", "tips", ":", "0", ".", "*", "*", "*", "*"]


def test_distinct_n_counts_unique_ngrams_over_all_answers():
    assert distinct_n(["a b a b"], 1) == 2 / 4
    assert distinct_n(["a b a b"], 2) == 2 / 3  # (a b), (b a), (a b)
    assert distinct_n(["the cat sat", "the cat sat"], 2) == 2 / 4  # the same answer twice counts too
    assert distinct_n(["", "x"], 2) == 0.0


def test_repeated_lines_ignore_list_numbers_and_blank_lines():
    assert repeated_line_share(["1. ****\n2. ****\n\n3. done"]) == 1 / 3
    # per answer (1/2 and 0/1), then the mean: a line repeated in another answer is no repeat
    assert repeated_line_share(["- buy milk\n- Buy  milk", "buy milk"]) == 0.25
    assert repeated_line_share(["one line", ""]) == 0.0


def test_repeated_ngrams_count_repeats_inside_an_answer():
    assert repeated_ngram_share(["a b c a b c"], 3) == 1 / 4  # abc bca cab abc
    assert repeated_ngram_share(["a b c", "a b c"], 3) == 0.0
    assert repeated_ngram_share(["a b c a b c", "a b"], 3) == 1 / 4  # too short for a 3-gram: not counted


def test_eos_rate_and_mean_length():
    figures = answer_figures([GeneratedSample("a.", 3, True), GeneratedSample("b", 9, False)])
    assert figures["eos_rate"] == 0.5 and figures["mean_length"] == 6.0


def test_the_collapse_of_issue_12_trips_the_guards_and_fluent_answers_pass():
    reference = answer_figures(answers(ROUND_0))
    degenerate = answer_figures(answers(DEGENERATE, finished=False, tokens=96))
    fluent = answer_figures(answers(FLUENT))
    # the figures a reader would check by eye
    assert degenerate["distinct_2"] < 0.05 < 0.9 < fluent["distinct_2"]
    assert degenerate["repeated_line_share"] > 0.8 and fluent["repeated_line_share"] == 0.0
    assert degenerate["eos_rate"] == 0.0 and fluent["eos_rate"] == 1.0

    verdict = guards_verdict(degenerate, reference, GuardConfig())
    assert not verdict["passed"]
    assert {"distinct_1", "distinct_2", "repeated_lines", "repeated_ngrams", "looping_answers",
            "eos_rate"} <= set(verdict["tripped"])
    d2 = next(g for g in verdict["guards"] if g["guard"] == "distinct_2")
    assert d2["new"] == degenerate["distinct_2"] and d2["limit"] == pytest.approx(0.6 * reference["distinct_2"])

    assert guards_verdict(fluent, reference, GuardConfig()) == {**guards_verdict(fluent, reference, GuardConfig()),
                                                               "tripped": [], "passed": True}
    # repetition is averaged per answer: one looping answer among eight fluent ones does not read as a collapse
    mixed = answer_figures(answers(FLUENT[:7] + DEGENERATE[:1]))
    assert mixed["repeated_line_share"] < 0.2 and mixed["repeated_ngram_share"] < 0.2
    assert mixed["looping_answer_share"] == 1 / 8
    assert not {"repeated_lines", "repeated_ngrams", "looping_answers"} & set(
        guards_verdict(mixed, reference, GuardConfig())["tripped"])


def test_a_policy_that_loops_on_a_quarter_of_the_prompts_is_held_back():
    # session 11's short:20 round 2: two of eight answers "SmolLM: SmolLM: ...", six fine ones
    reference = answer_figures(answers(ROUND_0))
    looping = "SmolLM: " * 12
    partial = answer_figures(answers(FLUENT[:6] + [looping, looping]))
    assert partial["looping_answer_share"] == 2 / 8 and reference["looping_answer_share"] == 0.0
    assert "looping_answers" in guards_verdict(partial, reference, GuardConfig())["tripped"]
    # against that run's round 0 (repeated 3-grams 0.07: it loops a little on a translation it
    # cannot do) the averaged figure let the round through; the count of looping answers does not
    real_round_0 = {**reference, "repeated_ngram_share": 0.07}
    assert guards_verdict(partial, real_round_0, GuardConfig())["tripped"] == ["looping_answers"]


def test_looping_answer_share_counts_answers_mostly_made_of_repeats():
    assert looping_answer_share(["a b c a b c a b c", "a b c d"], 3, 0.5) == 1 / 2  # 4 of 7 3-grams repeat
    assert looping_answer_share(["a b c a b c a b c", "a b c d"], 3, 0.6) == 0.0
    assert looping_answer_share(["a b", ""], 3, 0.5) == 0.0  # nothing to count is not a loop
    assert looping_answer_share([], 3, 0.5) == 0.0


HEALTHY = {"distinct_1": 0.6, "distinct_2": 0.95, "repeated_line_share": 0.0, "repeated_ngram_share": 0.01,
           "looping_answer_share": 0.0, "eos_rate": 0.8, "mean_length": 40.0, "nll": 2.0, "kl_to_round0": 5.0}


@pytest.mark.parametrize("figure, value, guard", [
    ("distinct_1", 0.29, "distinct_1"),  # limit 0.5 x 0.6 = 0.3
    ("distinct_2", 0.56, "distinct_2"),  # limit 0.6 x 0.95 = 0.57
    ("repeated_line_share", 0.21, "repeated_lines"),  # limit 0 + 0.2
    ("repeated_ngram_share", 0.22, "repeated_ngrams"),  # limit 0.01 + 0.2
    ("looping_answer_share", 0.16, "looping_answers"),  # limit 0 + 0.15: two looping answers of 8
    ("eos_rate", 0.39, "eos_rate"),  # limit 0.5 x 0.8
    ("mean_length", 7.9, "short_answers"),  # limit 0.2 x 40
    ("mean_length", 80.1, "long_answers"),  # limit 2 x 40
    ("nll", 3.01, "fluency_nll"),  # limit 2.0 + 1.0
    ("kl_to_round0", 14.01, "kl_to_round0"),  # limit 14 nats, whatever round 0's own figure (0)
])
def test_each_guard_trips_alone_just_past_its_limit(figure, value, guard):
    config = GuardConfig()
    assert guards_verdict(HEALTHY, HEALTHY, config)["passed"]
    verdict = guards_verdict({**HEALTHY, figure: value}, HEALTHY, config)
    assert verdict["tripped"] == [guard]
    # and a guard turned off (null) never trips
    off = {"distinct_1": "distinct_1_min_ratio", "distinct_2": "distinct_2_min_ratio",
           "repeated_lines": "repeated_line_max_increase", "repeated_ngrams": "repeated_ngram_max_increase",
           "looping_answers": "looping_answers_max_increase",
           "eos_rate": "eos_rate_min_ratio", "short_answers": "length_min_ratio", "long_answers": "length_max_ratio",
           "fluency_nll": "nll_max_increase", "kl_to_round0": "kl_to_round0_max"}[guard]
    assert guards_verdict({**HEALTHY, figure: value}, HEALTHY, replace(config, **{off: None}))["passed"]


def test_eos_guard_does_not_apply_when_round_0_hardly_ever_finishes():
    reference = {**HEALTHY, "eos_rate": 0.05}
    verdict = guards_verdict({**HEALTHY, "eos_rate": 0.0}, reference, GuardConfig())
    eos = next(g for g in verdict["guards"] if g["guard"] == "eos_rate")
    assert verdict["passed"] and not eos["tripped"] and "eos_rate_floor" in eos["skipped"]


def test_guard_config_names_bad_fields():
    for field, value in (("prompts", 0), ("distinct_2_min_ratio", 1.5), ("length_max_ratio", 0.5),
                         ("nll_max_increase", -1), ("kl_to_round0_max", 0),
                         ("looping_answer_min_repeat", 0), ("looping_answers_max_increase", 1.5), ("enforce", "no")):
        with pytest.raises(ConfigError) as err:
            config_from_dict(GuardConfig, {field: value})
        assert err.value.field == field


def test_nll_matches_a_hand_computation_on_a_tiny_model(tiny_models, full_precision):
    model, tokenizer = load_policy(tiny_models["policy"])
    prompts = ["tell me about the cat", "why is the sky blue", "hello"]
    samples = [GeneratedSample("the cat sat on the mat", 6, True), GeneratedSample("blue", 1, False),
               GeneratedSample("", 0, True)]
    got = answer_nll(model, tokenizer, prompts, samples, batch_size=2)  # padding on both sides inside a batch
    for prompt, sample, (nll, count) in zip(prompts, samples, got):
        query = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        answer = tokenizer(sample.text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id]
                                                                                  if sample.finished else [])
        with torch.no_grad():
            logits = model(torch.tensor([query + answer])).logits[0]
        expected = -sum(torch.log_softmax(logits[len(query) + i - 1], -1)[tok].item() for i, tok in enumerate(answer))
        assert count == len(answer)
        assert nll == pytest.approx(expected, abs=1e-4)
    assert mean_nll(got) == pytest.approx(sum(v for v, _ in got) / sum(c for _, c in got))
    assert mean_nll([(0.0, 0)]) is None


def test_kl_to_round0_matches_a_hand_computation_on_tiny_models(tiny_models, tmp_path, full_precision):
    reference, tokenizer = load_policy(tiny_models["policy"])
    policy, _ = load_policy(build_tiny_policy(tmp_path / "other", TINY_WORDS, seed=1))
    prompts = ["tell me about the cat", "why is the sky blue", "hello"]
    samples = [GeneratedSample("the cat sat on the mat", 6, True), GeneratedSample("blue", 1, False),
               GeneratedSample("", 0, True)]
    got = answer_kl(policy, reference, tokenizer, prompts, samples, temperature=0.7, batch_size=2)
    for prompt, sample, kl in zip(prompts, samples, got):
        query = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        answer = tokenizer(sample.text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id]
                                                                                  if sample.finished else [])
        with torch.no_grad():
            p, q = (torch.log_softmax(m(torch.tensor([query + answer])).logits[0] / 0.7, -1) for m in (policy, reference))
        positions = range(len(query) - 1, len(query) + len(answer) - 1)  # those that predict the answer's tokens
        expected = sum((p[i].exp() * (p[i] - q[i])).sum().item() for i in positions)
        assert kl == pytest.approx(expected, rel=1e-4, abs=1e-5) and kl > 0
    assert answer_kl(reference, reference, tokenizer, prompts, samples, temperature=0.7) == [0.0, 0.0, 0.0]


def test_guards_evaluate_answers_with_each_policy_and_returns_plain_data(tiny_models, tmp_path):
    # a policy far from the reference: the tiny models' logits are near zero (near-uniform
    # sampling, the same draws whatever the weights), so sharpen this one's
    other = build_tiny_policy(tmp_path / "other", TINY_WORDS, seed=1)
    model, tokenizer = load_policy(other)
    with torch.no_grad():
        model.lm_head.weight.mul_(300.0)
    model.save_pretrained(other, safe_serialization=True)
    generation = GenerationConfig(max_new_tokens=6, temperature=1.0, batch_size=4)
    calls = []
    hooks = Hooks(report=lambda **kw: calls.append((kw["stage"], kw["step"], kw["total"])))
    same = guards_evaluate(new_policy_path=tiny_models["policy"], reference_path=tiny_models["policy"],
                           prompts=TINY_PROMPTS[:4], generation=generation, hooks=hooks)
    # the reference against itself, same seed: the same answers, the same figures, nothing trips
    assert [s["new"] for s in same["samples"]] == [s["reference"] for s in same["samples"]] \
        == [s["parent"] for s in same["samples"]]
    assert same["figures"]["new"] == same["figures"]["reference"] and same["passed"] and same["enforced"]
    assert same["samples"][0]["prompt"] == TINY_PROMPTS[0] and len(same["samples"]) == 4
    assert calls[0] == ("guards", 0, 3) and calls[-1] == ("guards", 3, 3)

    result = guards_evaluate(new_policy_path=other, reference_path=tiny_models["policy"], prompts=TINY_PROMPTS[:4],
                             parent_path=other, generation=generation,
                             config=GuardConfig(max_new_tokens=4, kl_answers_per_prompt=1))
    assert [s["parent"] for s in result["samples"]] == [s["new"] for s in result["samples"]]
    assert [s["new"] for s in result["samples"]] != [s["reference"] for s in result["samples"]]
    assert result["figures"]["new"]["nll"] != result["figures"]["reference"]["nll"]
    # round 0 against itself is at KL 0 exactly; the sharpened policy is far from it, and the figure is
    # the exact KL of its answers (recomputed here from both models' logits)
    assert same["figures"]["new"]["kl_to_round0"] == 0.0 == result["figures"]["reference"]["kl_to_round0"]
    reference, _ = load_policy(tiny_models["policy"])
    answers = [GeneratedSample(text=s["new"], token_count=0, finished=s["new_finished"]) for s in result["samples"]]
    expected = answer_kl(model, reference, tokenizer, TINY_PROMPTS[:4], answers, generation.temperature)
    assert result["figures"]["new"]["kl_to_round0"] == pytest.approx(sum(expected) / 4) and min(expected) > 0.1
    (kl_guard,) = [g for g in result["guards"] if g["figure"] == "kl_to_round0"]
    assert kl_guard["limit"] == 14.0 and kl_guard["tripped"] == (kl_guard["new"] > 14.0)
    assert result["figures"]["new"]["mean_length"] <= 4 and result["kl_answers"] == 4 and same["kl_answers"] == 16

    # by default the KL averages 4 answers a prompt: the ones the other figures read, and 3 more
    # drawn for it alone with the next seed; every other figure reads the first answers only
    many = guards_evaluate(new_policy_path=other, reference_path=tiny_models["policy"], prompts=TINY_PROMPTS[:4],
                           parent_path=other, generation=generation, config=GuardConfig(max_new_tokens=4))
    more_prompts = [p for p in TINY_PROMPTS[:4] for _ in range(3)]
    more = generate_responses(other, more_prompts, replace(generation, max_new_tokens=4, seed=1))
    expected_all = expected + answer_kl(model, reference, tokenizer, more_prompts, more, generation.temperature)
    assert many["kl_answers"] == 16
    assert many["figures"]["new"]["kl_to_round0"] == pytest.approx(sum(expected_all) / 16)
    assert {k: v for k, v in many["figures"]["new"].items() if k != "kl_to_round0"} == \
        {k: v for k, v in result["figures"]["new"].items() if k != "kl_to_round0"}
    assert set(result["tripped"]) == {g["guard"] for g in result["guards"] if g["tripped"]}
    json.dumps(result)  # stored as is in the round's metrics
