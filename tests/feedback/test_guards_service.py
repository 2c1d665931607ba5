"""The round's guard step: held-out prompts of the project, plain data back, settings in the round config."""
import json

import pytest

from feedback.selectors.checkpoints import reference_policy
from feedback.services.guards import GuardError, guards_hold_back, round_guards_evaluate
from feedback.services.rounds import RoundError, round_config_resolve
from tests.helpers import TINY_PROMPTS, make_project
from training.config import GuardConfig

pytestmark = pytest.mark.django_db

HELD_OUT = [{"prompt": f"say {w}", "split": "held_out"} for w in ("yes", "no", "hello", "thanks")]


def test_guards_answer_the_first_held_out_prompts_and_return_json_ready_figures(tiny_models):
    project = make_project(tiny_models, first_batch=0, prompts=TINY_PROMPTS + HELD_OUT)
    round_0 = reference_policy(project).path
    result = round_guards_evaluate(project=project, parent_path=round_0, new_policy_path=round_0,
                                   reference_path=round_0, config=GuardConfig(prompts=3))
    assert result["prompt_split"] == "held_out"
    assert [s["prompt"] for s in result["samples"]] == ["say yes", "say no", "say hello"]
    assert all(set(s) >= {"prompt_id", "prompt", "parent", "new", "reference"} for s in result["samples"])
    # round 0 against itself with one seed: identical answers pass every guard
    assert result["passed"] and result["tripped"] == [] and not guards_hold_back(result)
    assert set(result["figures"]) == {"new", "reference"} and "nll" in result["figures"]["new"]
    assert json.loads(json.dumps(result)) == result


def test_without_held_out_prompts_the_guards_use_train_prompts(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    round_0 = reference_policy(project).path
    result = round_guards_evaluate(project=project, parent_path=round_0, new_policy_path=round_0,
                                   reference_path=round_0, config=GuardConfig(prompts=2, max_new_tokens=3))
    assert result["prompt_split"] == "train" and len(result["samples"]) == 2
    project.prompts.all().delete()
    with pytest.raises(GuardError) as err:
        round_guards_evaluate(project=project, parent_path=round_0, new_policy_path=round_0,
                              reference_path=round_0, config=GuardConfig())
    assert err.value.field == "project"


def test_hold_back_only_when_a_guard_tripped_and_guards_are_enforced():
    assert guards_hold_back({"passed": False, "enforced": True})
    assert not guards_hold_back({"passed": False, "enforced": False})
    assert not guards_hold_back({"passed": True, "enforced": True})


def test_round_config_resolves_the_guards_section(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    resolved = round_config_resolve(project, {"guards": {"prompts": 4, "enforce": False}})
    assert resolved["guards"]["prompts"] == 4 and resolved["guards"]["enforce"] is False
    assert round_config_resolve(project, {})["guards"]["distinct_2_min_ratio"] == 0.6
    with pytest.raises(RoundError) as err:
        round_config_resolve(project, {"guards": {"prompts": 0}})
    assert err.value.field == "guards.prompts"
