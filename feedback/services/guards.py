"""Degeneration guards for a round: answer held-out prompts with the new policy and judge it.

The judging lives in training/guards.py (plain Python); this module picks the prompts
and the generation settings of the project and returns plain data for the round's
metrics. A round whose guards trip (and are enforced) registers its checkpoint without
activating it and ends `needs_review`; see `guards_hold_back`.
"""
from pathlib import Path

from feedback.models import Project
from feedback.selectors.prompts import guard_prompts
from feedback.services.errors import FieldError
from feedback.services.generation import generation_config
from training.config import GenerationConfig, GuardConfig
from training.progress import NO_HOOKS, Hooks


class GuardError(FieldError):
    """The guards cannot run for this project."""


def round_guards_evaluate(
    *,
    project: Project,
    parent_path: str | Path,
    new_policy_path: str | Path,
    reference_path: str | Path,
    config: GuardConfig,
    hooks: Hooks = NO_HOOKS,
    generation: GenerationConfig | None = None,
) -> dict:
    """Answer up to `config.prompts` held-out prompts with round 0, the parent and the new policy.

    `generation` defaults to the project's settings (a round passes its own). Returns
    {"figures": {"new", "reference"}, "guards": [per guard: figures, limit, tripped],
    "tripped": [names], "passed": bool, "enforced": bool, "prompt_split": str,
    "samples": [{"prompt_id", "prompt", "parent", "new", "reference", "new_finished"}]}:
    JSON-ready, to be stored in the round's metrics as is.
    """
    from training.guards import guards_evaluate

    config = config.validate()
    prompts, split = guard_prompts(project, config.prompts)
    if not prompts:
        raise GuardError("project", "has no prompts for the degeneration guards to answer")
    result = guards_evaluate(
        new_policy_path=new_policy_path, reference_path=reference_path, parent_path=parent_path,
        prompts=[p.messages for p in prompts], config=config,
        generation=generation or generation_config(project), hooks=hooks,
    )
    for prompt, sample in zip(prompts, result["samples"]):
        sample["prompt_id"] = prompt.pk
        sample["prompt"] = prompt.text
    return {**result, "prompt_split": split}


def guards_hold_back(result: dict) -> bool:
    """Whether a round's new policy must wait for review instead of becoming active."""
    return not result["passed"] and result["enforced"]
