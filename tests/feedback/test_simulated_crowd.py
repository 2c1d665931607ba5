"""Simulated annotators of different quality vote through the queue; the quality page flags the
bad ones, and leaving them out changes what the reward model is trained on (tiny models)."""
import random
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command

from feedback.models import Vote
from feedback.selectors.quality import project_quality
from feedback.services import exports
from feedback.services.generation import generation_config
from feedback.services.simulation import (
    RuleError, SimulatedAnnotator, crowd_create, crowd_parse, crowd_vote, ensure_open_comparisons, gold_from_oracle,
    oracle_from_rule, reward_accuracy_by_exclusion,
)
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def test_crowd_spec_is_parsed_and_bad_specs_name_the_problem():
    assert crowd_parse("accurate:2, noisy:1,left,random:3") == [("accurate", 2), ("noisy", 1), ("left", 1),
                                                                 ("random", 3)]
    for spec, words in (("sloppy:1", "unknown kind 'sloppy'"), ("left:0", "number of left annotators"),
                        ("", "at least one"), ("noisy:x", "number of noisy annotators")):
        with pytest.raises(RuleError, match="^annotators: ") as err:
            crowd_parse(spec)
        assert words in str(err.value)


def test_each_kind_answers_as_it_should(alice):
    oracle = oracle_from_rule("shorter")
    # what the queue hands out, as far as an annotator looks at it: the two texts and the sides shown
    comparison = SimpleNamespace(sample_a=SimpleNamespace(text="a long answer"), sample_b=SimpleNamespace(text="short"))
    shown = [SimpleNamespace(comparison=comparison, left_is_a=flag) for flag in (True, False) * 200]

    def answers(kind):
        annotator = SimulatedAnnotator(alice, kind, random.Random(1))
        return [annotator.choose(oracle, a) for a in shown]

    assert set(answers("accurate")) == {"b"}
    # "left" answers the side on screen: A when A was on the left, else B
    assert answers("left") == ["a" if a.left_is_a else "b" for a in shown]
    noisy = answers("noisy")
    assert 0.2 < noisy.count("a") / len(noisy) < 0.4  # flipped with probability 0.3
    rnd = answers("random")
    assert 0.4 < rnd.count("a") / len(rnd) < 0.6


@pytest.fixture
def crowd_project(tiny_models):
    """160 crowd votes on a tiny project: 2 accurate, 1 always-left, 1 random annotator, with gold."""
    random.seed(7)  # the queue's gold draws and left/right sides use the global RNG
    project = make_project(tiny_models, first_batch=0, members=[])
    project.gold_rate, project.min_gold_accuracy = 0.5, 0.8
    project.save()
    oracle = oracle_from_rule("shorter")
    crowd = crowd_create(project, "accurate:2,left:1,random:1", seed=3)
    ensure_open_comparisons(project, 160, generation_config(project), samples_per_prompt=4)
    assert gold_from_oracle(project, oracle, 20) == 20
    counts = crowd_vote(project, oracle, crowd, 160)
    assert counts == {"sim-accurate-1": 40, "sim-accurate-2": 40, "sim-left-1": 40, "sim-random-1": 40}
    return project, oracle


def test_the_quality_page_flags_the_left_and_random_annotators(crowd_project, admin_user, client):
    project, _ = crowd_project
    rows = {r["username"]: r for r in project_quality(project)["annotators"]}
    assert {name for name, r in rows.items() if r["flagged"]} == {"sim-left-1", "sim-random-1"}
    assert rows["sim-accurate-1"]["gold_accuracy"] == 1.0 and rows["sim-accurate-1"]["gold_votes"] >= 5
    assert rows["sim-left-1"]["left_share"] == 1.0  # the sides were real: stored with each vote
    assert any("left response" in flag for flag in rows["sim-left-1"]["flags"])
    assert any("gold accuracy" in flag for flag in rows["sim-random-1"]["flags"])
    client.force_login(admin_user)
    html = client.get(f"/studio/projects/{project.pk}/annotators/quality/").content.decode()
    assert "sim-left-1" in html and "sim-random-1" in html


def test_excluding_flagged_annotators_changes_the_snapshot_and_both_reward_models_are_scored(crowd_project):
    project, oracle = crowd_project
    everyone, _ = exports.preference_snapshot(project, exclude_flagged=False)
    kept, snapshot = exports.preference_snapshot(project, exclude_flagged=True)
    left_random = Vote.objects.filter(annotator__username__in=["sim-left-1", "sim-random-1"]).count()
    assert snapshot["votes"] == Vote.objects.count() - left_random and left_random > 0
    assert len(kept) < len(everyone)
    assert all(oracle.truth(r["chosen"], r["rejected"]) == "a" for r in kept)  # only accurate votes left
    assert not all(oracle.truth(r["chosen"], r["rejected"]) == "a" for r in everyone)

    result = reward_accuracy_by_exclusion(project, oracle, reward={"epochs": 1, "min_steps": 1}, eval_share=0.25)
    assert result["eval_pairs"] > 0
    assert sorted(result["exclude_flagged"]["excluded_annotators"]) == ["sim-left-1", "sim-random-1"]
    assert result["all"]["excluded_annotators"] == []
    assert result["exclude_flagged"]["label_accuracy"] == 1.0 > result["all"]["label_accuracy"]
    assert result["exclude_flagged"]["train_pairs"] < result["all"]["train_pairs"]
    for name in ("all", "exclude_flagged"):
        assert 0.0 <= result[name]["oracle_accuracy"] <= 1.0


def test_simulate_names_a_bad_crowd(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    with pytest.raises(CommandError, match="annotators: unknown kind 'sloppy'"):
        call_command("simulate", project=project.name, rule="shorter", annotators="sloppy:2")
    with pytest.raises(CommandError, match="--gold-rate: must be between 0 and 0.5"):
        call_command("simulate", project=project.name, rule="shorter", annotators="left:1", gold_rate=0.9)
