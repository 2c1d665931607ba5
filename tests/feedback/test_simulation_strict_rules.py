"""The strict oracle rules: a degenerate answer meets neither; the guard figures print per round."""
import pytest

from feedback.services.simulation import (
    RuleError,
    describe_guards,
    guard_summary,
    list_rule_met,
    oracle_compare,
    oracle_from_rule,
    real_words,
    short_rule_met,
)
from tests.training.guard_answers import DEGENERATE

COLLAPSE = DEGENERATE[0]  # "Here's a rough guide:\n\n1. ****\n2. ****\n... 22. **"

GOOD_LIST = ("Here are three ideas:\n1. Research the company before you go.\n"
             "2. Prepare short stories about your work.\n- Ask thoughtful questions at the end.")


def test_real_words_are_letters_only_and_at_least_two_long():
    assert real_words("Here's 1. **** a x2 well-known café") == ["Here", "well", "known", "café"]


def test_list_rule_needs_enough_items_with_enough_real_words():
    assert list_rule_met(GOOD_LIST, 3, 4)
    assert not list_rule_met(GOOD_LIST, 4, 4)  # three items only
    assert not list_rule_met("1. Research the company.\n2. Prepare stories.\n3. Ask questions.", 3, 4)
    assert not list_rule_met("Research the company. Prepare your stories. Ask good questions.", 3, 4)  # no list
    assert not list_rule_met(COLLAPSE, 3, 4)  # 22 items, none with a word
    assert not list_rule_met("1. **a b c d e**\n2. *x y z w v*\n3. 1 2 3 4 5", 3, 4)  # one-letter words, numbers


def test_list_oracle_prefers_more_good_items_up_to_the_rule_and_counts_only_full_lists_as_met():
    oracle = oracle_from_rule("list:3:4")
    one_item = "Try this:\n1. Research the company before you go.\n2. Prepare."
    assert oracle.choose("No list here, just advice.", one_item) == "b"
    assert oracle.choose(one_item, GOOD_LIST) == "b"
    assert oracle.choose(GOOD_LIST, GOOD_LIST + "\n4. Arrive ten minutes early and relax.") == "tie"  # both meet it
    assert oracle.choose(COLLAPSE, "No list here, just advice.") == "tie"  # 22 empty items count for nothing
    assert not oracle.meets(one_item) and oracle.meets(GOOD_LIST) and not oracle.meets(COLLAPSE)
    result = oracle_compare(oracle, [one_item, GOOD_LIST], ["No list.", COLLAPSE], samples=1)
    assert result["win_rate"] == 1.0  # a step towards the list is preferred ...
    assert result["new_rule_hit_rate"] == 0.5 and result["old_rule_hit_rate"] == 0.0  # ... but only a full one meets it


def test_short_rule_needs_few_words_a_real_word_and_a_full_stop():
    assert short_rule_met("Bonjour means good morning.", 10)
    assert not short_rule_met("Bonjour means good morning", 10)  # no full stop
    assert not short_rule_met("Bonjour means good morning...", 10)  # an ellipsis is not a full stop
    assert not short_rule_met("one two three four five six seven eight nine ten.", 10)  # 10 words: not under 10
    assert not short_rule_met("1. ****.", 10)  # no real word
    assert not short_rule_met(COLLAPSE, 10)
    assert not short_rule_met(COLLAPSE, 10_000)  # even with room: it ends in "**"


def test_oracles_of_the_strict_rules_prefer_the_answer_that_meets_them():
    assert oracle_from_rule("list:3:4").choose(COLLAPSE, GOOD_LIST) == "b"
    assert oracle_from_rule("short:12").choose("Bonjour means good morning.", COLLAPSE) == "a"
    assert oracle_from_rule("short:12").choose(COLLAPSE, COLLAPSE) == "tie"
    for bad in ("list:3", "list:x:4", "list:0:4", "short:", "short:1", "short:-5"):
        with pytest.raises(RuleError, match="rule"):
            oracle_from_rule(bad)


def test_guard_summary_reads_the_rounds_metrics_and_describes_them():
    assert guard_summary({}) is None and guard_summary(None) is None
    metrics = {"guards": {"passed": False, "tripped": ["distinct_2", "eos_rate"], "enforced": True,
                          "figures": {"new": {"distinct_2": 0.01, "eos_rate": 0.0, "nll": None},
                                      "reference": {"distinct_2": 0.9, "eos_rate": 0.5, "nll": 2.1}},
                          "samples": [{"prompt": "p", "new": "x"}]}}
    summary = guard_summary(metrics)
    assert "samples" not in summary and summary["tripped"] == ["distinct_2", "eos_rate"]
    line = describe_guards(summary)
    assert "TRIPPED distinct_2, eos_rate" in line
    assert "distinct-2 0.01 vs 0.90" in line and "EOS rate 0.00 vs 0.50" in line
    assert "NLL" not in line  # a figure missing on one side is left out
    assert "KL to round 0" not in line
    metrics["guards"]["figures"]["new"]["kl_to_round0"] = 7.125
    assert describe_guards(guard_summary(metrics)).endswith("(new vs round 0); KL to round 0 on these prompts 7.12")
    assert "(not enforced)" in describe_guards({**summary, "enforced": False})


@pytest.mark.slow
@pytest.mark.django_db
def test_simulate_prints_the_guards_and_goes_on_after_a_round_held_for_review(tiny_models, capsys, monkeypatch):
    """Until the round itself runs the guards, wrap it as the lead's wiring will: guards after PPO."""
    from django.core.management import call_command

    from feedback.management.commands import simulate
    from feedback.models import TrainingRound
    from feedback.selectors.checkpoints import reference_policy
    from feedback.services.guards import round_guards_evaluate
    from tests.helpers import TINY_PROMPTS, make_project
    from training.config import GuardConfig

    real_execute = simulate.round_execute

    def execute_with_guards(round_id):
        r = real_execute(round_id)
        round_0 = reference_policy(r.project).path
        result = round_guards_evaluate(project=r.project, parent_path=round_0, new_policy_path=round_0,
                                       reference_path=round_0, config=GuardConfig(prompts=2))
        # round 0 against itself passes; say a guard tripped, to see the run go on past a held round
        result["passed"], result["tripped"] = False, ["fluency_nll"]
        TrainingRound.objects.filter(pk=r.pk).update(status="needs_review", metrics={**r.metrics, "guards": result})
        r.refresh_from_db()
        return r

    monkeypatch.setattr(simulate, "round_execute", execute_with_guards)
    project = make_project(tiny_models, first_batch=0, prompts=TINY_PROMPTS + [
        {"prompt": "say yes", "split": "held_out"}, {"prompt": "say no", "split": "held_out"}])
    call_command("simulate", project=project.name, rule="shorter", rounds=2, votes=12, eval_prompts=2,
                 round_config='{"min_pairs": 1, "next_batch_prompts": 2, "ppo": {"steps": 1, "batch_size": 2, '
                              '"mini_batch_size": 2, "max_new_tokens": 6}, "reward": {"epochs": 1}}')
    out = capsys.readouterr().out
    assert out.count("guards TRIPPED fluency_nll: distinct-2") == 2
    assert "round 2 needs review" in out and "KL coefficient at the end" in out
