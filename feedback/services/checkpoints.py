"""Registering checkpoints and choosing the active policy."""
from pathlib import Path

from django.db import transaction

from feedback.models import Checkpoint, Project, TrainingRound
from feedback.services.errors import FieldError
from training.checkpoints import directory_sha256


def checkpoint_register(
    *,
    project: Project,
    kind: str,
    path: Path,
    name: str,
    parent: Checkpoint | None = None,
    produced_by: TrainingRound | None = None,
    metrics: dict | None = None,
    activate: bool = False,
) -> Checkpoint:
    """Record a checkpoint folder (hashing its content); optionally make it the active policy."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"checkpoint folder {path} does not exist")
    sha = directory_sha256(path)
    with transaction.atomic():
        checkpoint = Checkpoint.objects.create(
            project=project, kind=kind, path=str(path), name=name, sha256=sha,
            parent=parent, produced_by=produced_by, metrics=metrics or {},
        )
        if activate:
            checkpoint_activate(checkpoint=checkpoint)
    return checkpoint


def checkpoint_activate(*, checkpoint: Checkpoint) -> Checkpoint:
    """Make `checkpoint` the project's one active policy."""
    if checkpoint.kind != Checkpoint.Kind.POLICY:
        raise FieldError("kind", "only policy checkpoints can be active")
    with transaction.atomic():
        # Lock the project's policies so two activations cannot interleave between the
        # deactivate and the activate (the partial unique index would reject the loser).
        list(Checkpoint.objects.select_for_update().filter(project=checkpoint.project, kind=Checkpoint.Kind.POLICY))
        Checkpoint.objects.filter(project=checkpoint.project, kind=Checkpoint.Kind.POLICY, is_active=True).exclude(
            pk=checkpoint.pk
        ).update(is_active=False)
        Checkpoint.objects.filter(pk=checkpoint.pk).update(is_active=True)
    checkpoint.is_active = True
    return checkpoint
