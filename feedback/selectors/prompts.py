"""Queries about prompts."""
from feedback.models import Project, Prompt


def guard_prompts(project: Project, count: int) -> tuple[list[Prompt], str]:
    """The prompts the degeneration guards answer: the first `count` held-out prompts by id.

    The same prompts every round, so rounds compare on equal terms. A project without
    held-out prompts falls back to its first train prompts. Returns (prompts, split).
    """
    for split in (Prompt.Split.HELD_OUT, Prompt.Split.TRAIN):
        prompts = list(Prompt.objects.filter(project=project, split=split).order_by("id")[:count])
        if prompts:
            return prompts, split
    return [], Prompt.Split.HELD_OUT
