"""Registering checkpoints, verifying them before use, and choosing the active policy
(by hand: promote and roll back, with a reason)."""
import socket
from pathlib import Path

from django.db import transaction

from feedback.models import Checkpoint, CheckpointEvent, Project, TrainingRound
from feedback.services.errors import FieldError
from training.checkpoints import cached_directory_sha256


class CheckpointMismatch(FieldError):
    """A checkpoint's folder is missing or no longer holds what was registered."""

    http_status = 409


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
    # the cached hash: the round that registers a checkpoint and then uses it hashes it once
    sha = cached_directory_sha256(path)
    with transaction.atomic():
        checkpoint = Checkpoint.objects.create(
            project=project, kind=kind, path=str(path), name=name, sha256=sha,
            parent=parent, produced_by=produced_by, metrics=metrics or {},
        )
        if activate:
            checkpoint_activate(checkpoint=checkpoint)
    return checkpoint


def checkpoint_verify(checkpoint: Checkpoint) -> str:
    """The checkpoint's path, once its files are found to match the sha256 recorded at registration.

    A worker on another machine finds a checkpoint by the path in the database (a shared
    volume mounted at the same place everywhere); this is where a missing mount, a copy
    cut short or a file swapped after registration stops a round, a job or serving before
    it uses the wrong weights. The hash is cached per process while the folder's files keep
    their size, mtime and inode (training.checkpoints.cached_directory_sha256).
    """
    label = f"{checkpoint.name!r} (id {checkpoint.pk}, {checkpoint.path})"
    if not Path(checkpoint.path).is_dir():
        raise CheckpointMismatch("checkpoint", f"{label}: the folder is missing on {socket.gethostname()}; "
                                               "mount the shared checkpoint volume at the same path on every worker")
    actual = cached_directory_sha256(checkpoint.path)
    if actual != checkpoint.sha256:
        raise CheckpointMismatch("checkpoint", f"{label} does not match its registered sha256: registered "
                                               f"{checkpoint.sha256}, found {actual}; a file was changed, truncated "
                                               "or replaced after it was registered")
    return checkpoint.path


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


MAX_REASON_CHARS = 2000


def _clean_reason(reason: str | None, *, required: bool) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise FieldError("reason", "say why, so the history explains itself")
    if len(reason) > MAX_REASON_CHARS:
        raise FieldError("reason", f"at most {MAX_REASON_CHARS} characters")
    return reason


def _activate_recorded(*, checkpoint: Checkpoint, action: str, user, reason: str) -> CheckpointEvent:
    with transaction.atomic():
        # The same lock checkpoint_activate takes: `previous` is read under it, so two
        # promotions at once cannot both record the same policy as the one they replaced.
        list(Checkpoint.objects.select_for_update().filter(project=checkpoint.project_id, kind=Checkpoint.Kind.POLICY))
        previous = Checkpoint.objects.filter(project=checkpoint.project_id, kind=Checkpoint.Kind.POLICY,
                                             is_active=True).first()
        checkpoint_activate(checkpoint=checkpoint)
        return CheckpointEvent.objects.create(project_id=checkpoint.project_id, checkpoint=checkpoint,
                                              previous=previous, action=action, reason=reason, by=user)


def checkpoint_promote(*, checkpoint: Checkpoint, user=None, reason: str = "", reason_required: bool = False) -> CheckpointEvent:
    """Make a policy checkpoint the active one by hand, recording who did it and why."""
    if checkpoint.kind != Checkpoint.Kind.POLICY:
        raise FieldError("checkpoint", "only policy checkpoints can be active")
    reason = _clean_reason(reason, required=reason_required)
    return _activate_recorded(checkpoint=checkpoint, action=CheckpointEvent.Action.PROMOTE, user=user, reason=reason)


def rollback_target(project: Project) -> Checkpoint | None:
    """The policy a rollback would make active again.

    A rollback undoes a promotion: when the active policy got there by a promotion, the
    one it replaced. Otherwise (its round activated it, or an earlier rollback reached
    it) it steps back along the lineage to its parent, so rolling back twice keeps going
    back rather than toggling between two policies.
    """
    current = Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY, is_active=True).first()
    if current is None:
        return None
    last = CheckpointEvent.objects.filter(project=project, checkpoint=current).order_by("-at", "-id").first()
    if last is not None and last.action == CheckpointEvent.Action.PROMOTE and last.previous_id not in (None, current.pk):
        return last.previous
    return current.parent


def checkpoint_rollback(*, project: Project, user=None, reason: str = "", reason_required: bool = False) -> CheckpointEvent:
    """Make the previously active policy active again (see rollback_target), recording why."""
    reason = _clean_reason(reason, required=reason_required)
    target = rollback_target(project)
    if target is None:
        raise FieldError("checkpoint", "there is no earlier policy to roll back to")
    return _activate_recorded(checkpoint=target, action=CheckpointEvent.Action.ROLLBACK, user=user, reason=reason)
