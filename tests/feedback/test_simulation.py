"""Scripted annotators vote through the queue with a rule, and the loop runs rounds on them."""
import pytest
from django.core.management import CommandError, call_command

from feedback.models import Comparison, TrainingRound, Vote
from feedback.services.generation import generation_config
from feedback.services.simulation import RuleError, ensure_open_comparisons, oracle_compare, oracle_from_rule, oracle_vote
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def test_rules_prefer_what_they_say():
    assert oracle_from_rule("contains:please").choose("yes please", "no") == "a"
    assert oracle_from_rule("contains:please").choose("pleased", "no") == "tie"  # whole words only
    assert oracle_from_rule("shorter").choose("a long answer", "short") == "b"
    assert oracle_from_rule("question").choose("ok.", "why not?") == "b"
    flipped = oracle_from_rule("shorter", noise=0.49, seed=1)
    choices = [flipped.choose("aa", "a") for _ in range(400)]
    assert 0.35 < choices.count("a") / 400 < 0.6  # about half flipped
    with pytest.raises(RuleError, match="rule"):
        oracle_from_rule("longest")


def test_oracle_compare_counts_pairs_and_prompts():
    oracle = oracle_from_rule("contains:please")
    # two prompts, two samples each: prompt 1 wins once and ties once (0.75), prompt 2 loses once, ties once (0.25)
    new = ["please", "no", "no", "no"]
    old = ["no", "nope", "please", "nah"]
    result = oracle_compare(oracle, new, old, samples=2)
    assert result["pairs"] == 4 and result["prompts"] == 2
    assert result["wins"] == 1 and result["ties"] == 2
    assert result["win_rate"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert result["prompts_preferring_new"] == 0.5
    assert result["new_rule_hit_rate"] == 0.25 and result["old_rule_hit_rate"] == 0.25
    with pytest.raises(ValueError):
        oracle_compare(oracle, new, old[:3], samples=2)


def test_top_up_pairs_every_response_of_a_prompt_and_the_oracle_votes_on_them(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    config = generation_config(project)
    assert ensure_open_comparisons(project, 5, config, samples_per_prompt=3) == 6  # 2 prompts x 3 pairs
    by_prompt = {}
    for c in Comparison.objects.filter(project=project):
        by_prompt.setdefault(c.prompt_id, []).append(c)
    assert [len(cs) for cs in by_prompt.values()] == [3, 3]
    for cs in by_prompt.values():
        samples = {c.sample_a_id for c in cs} | {c.sample_b_id for c in cs}
        assert len(samples) == 3  # three responses, each in two comparisons
        assert len({frozenset((c.sample_a_id, c.sample_b_id)) for c in cs}) == 3
    assert ensure_open_comparisons(project, 6, config, samples_per_prompt=3) == 0  # enough are open
    counts = oracle_vote(project, oracle_from_rule("shorter"), 10)
    assert sum(counts.values()) == 6 == Vote.objects.filter(comparison__project=project).count()
    with pytest.raises(RuleError, match="samples_per_prompt"):
        ensure_open_comparisons(project, 20, config, samples_per_prompt=1)


@pytest.mark.slow
def test_simulate_runs_rounds_with_oracle_votes(tiny_models, capsys):
    project = make_project(tiny_models, first_batch=0, prompts=[
        "tell me about the cat", "why is the sky blue", "say something nice", "what is a dog",
        "explain the world", "how are you", "tell me something good", "what is green",
        {"prompt": "say yes", "split": "held_out"}, {"prompt": "say no", "split": "held_out"},
    ])
    # "shorter": two tiny-model samples nearly always differ in length, so every round gets
    # pairs whatever state earlier tests left the global RNG in (contains:good sometimes got none)
    call_command("simulate", project=project.name, rule="shorter", rounds=2, votes=12, eval_prompts=2,
                 round_config='{"min_pairs": 1, "next_batch_prompts": 2, "ppo": {"steps": 1, "batch_size": 2, '
                              '"mini_batch_size": 2, "max_new_tokens": 6}, "reward": {"epochs": 1}}')
    out = capsys.readouterr().out
    assert "round 2 (2): win-rate vs round 0 =" in out
    assert TrainingRound.objects.filter(project=project, status="done").count() == 2
    assert Vote.objects.filter(annotator__username="sim-oracle").exists()


def test_simulate_names_a_bad_rule(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    with pytest.raises(CommandError, match="rule"):
        call_command("simulate", project=project.name, rule="nonsense")
