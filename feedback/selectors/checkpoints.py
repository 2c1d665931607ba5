"""Queries about checkpoints."""
from feedback.models import Checkpoint, Project


def active_policy(project: Project) -> Checkpoint | None:
    return Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY, is_active=True).first()


def reference_policy(project: Project) -> Checkpoint | None:
    """The round-0 policy: the root every later policy descends from, and PPO's KL anchor."""
    return (
        Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY, parent__isnull=True)
        .order_by("created_at", "id")
        .first()
    )


def latest_reward_model(project: Project) -> Checkpoint | None:
    return Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.REWARD).order_by("-created_at", "-id").first()
