"""Recording votes: exactly once, whatever the network or the mouse does.

A vote can be changed (undo, "my votes") until a training round's snapshot has used it;
every change keeps the earlier version in `Vote.history`.
"""
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django.db.models import Case, Q, When
from django.utils import timezone

from feedback.models import Assignment, Comparison, TrainingRound, Vote
from feedback.services.errors import FieldError


class VoteError(FieldError):
    """A vote that cannot be accepted."""


class IdempotencyKeyReused(VoteError):
    """The key already names this annotator's vote on another comparison."""

    http_status = 409

    def __init__(self, vote: Vote):
        super().__init__("idempotency_key", f"was already used for your vote on comparison {vote.comparison_id}; "
                                            "send a new key for each vote")


class VoteConflict(Exception):
    """A different vote on a comparison the annotator already voted on, too late to change it."""

    def __init__(self, vote: Vote, reason: str):
        super().__init__(f"you already voted {vote.choice!r} on comparison {vote.comparison_id} (vote {vote.pk}); "
                         f"{reason}")
        self.vote = vote
        self.reason = reason


@dataclass
class VoteResult:
    vote: Vote
    created: bool
    changed: bool = False


def undo_window() -> timedelta:
    """How long after a vote (or its last change) it may be changed without "my votes"."""
    return timedelta(seconds=settings.RLHF_VOTE_UNDO_S)


def vote_in_undo_window(vote: Vote, *, now=None) -> bool:
    """Whether the vote was cast or last changed within the undo window."""
    last = vote.changed_at or vote.created_at
    return (now or timezone.now()) - last <= undo_window()


def vote_used_by_round(vote: Vote) -> TrainingRound | None:
    """The first training round whose snapshot took this vote, if any.

    A snapshot records the highest vote id it read, and it reads every vote of the
    project up to that id. A round still in its snapshot stage counts too: its read may
    already have happened without the figures being written yet.
    """
    took = Q(snapshot__max_vote_id__gte=vote.pk)
    # one query: the first round that took it, else a round in its snapshot stage
    return (TrainingRound.objects.filter(took | Q(status=TrainingRound.Status.SNAPSHOT),
                                         project_id=vote.comparison.project_id)
            .order_by(Case(When(took, then=0), default=1), "number").first())


def _validate(choice: str, strength: int | None, rationale: str) -> int | None:
    if choice not in Comparison.Choice.values:
        raise VoteError("choice", f"must be one of {', '.join(Comparison.Choice.values)}")
    if strength is not None and strength not in Vote.Strength.values:
        raise VoteError("strength", "must be 1 (slightly), 2 (clearly) or 3 (much)")
    if len(rationale) > 5000:
        raise VoteError("rationale", "is longer than 5000 characters")
    if strength is not None and choice not in (Comparison.Choice.A, Comparison.Choice.B):
        return None  # how much better only means something when one side won
    return strength


def vote_change(
    *,
    annotator: AbstractUser,
    vote_id: int,
    choice: str,
    strength: int | None = None,
    rationale: str | None = None,
    undo: bool = False,
    via: str = "history",
) -> Vote:
    """Change the annotator's vote, keeping the earlier version in its history.

    Refused once a round's snapshot has used the vote, or for a retired comparison;
    `undo=True` (the page's "Undo last vote") also requires the undo window.
    `rationale=None` keeps the stored one.
    """
    strength = _validate(choice, strength, rationale or "")
    with transaction.atomic():
        # the row lock serialises two tabs changing the same vote: each change is kept in order
        try:
            vote = Vote.objects.select_for_update().select_related("comparison").get(pk=vote_id, annotator=annotator)
        except Vote.DoesNotExist:
            raise VoteError("vote", "no such vote of yours") from None
        return _change_locked(vote, choice=choice, strength=strength, rationale=rationale, undo=undo, via=via)


def _change_locked(vote: Vote, *, choice, strength, rationale, undo: bool, via: str) -> Vote:
    if vote.comparison.status == Comparison.Status.RETIRED:
        raise VoteError("vote", "its comparison was retired by staff; it can no longer change")
    used = vote_used_by_round(vote)
    if used is not None:
        raise VoteError("vote", f"round {used.number} already trained on it; it can no longer change")
    now = timezone.now()
    if undo and not vote_in_undo_window(vote, now=now):
        raise VoteError("vote", f"the {settings.RLHF_VOTE_UNDO_S} s undo window has passed; change it from My votes")
    rationale = vote.rationale if rationale is None else rationale
    if (vote.choice, vote.strength, vote.rationale) == (choice, strength, rationale):
        return vote
    vote.history = [*vote.history, {"choice": vote.choice, "strength": vote.strength, "rationale": vote.rationale,
                                    "until": now.isoformat(), "via": via}]
    vote.choice, vote.strength, vote.rationale, vote.changed_at = choice, strength, rationale, now
    vote.save(update_fields=["choice", "strength", "rationale", "history", "changed_at"])
    return vote


def vote_submit(
    *,
    annotator: AbstractUser,
    assignment_id: int,
    choice: str,
    strength: int | None = None,
    rationale: str = "",
    time_spent_ms: int | None = None,
    idempotency_key: str = "",
) -> VoteResult:
    """Store the annotator's vote on the comparison behind `assignment_id`.

    `choice` refers to sample A / B of the comparison (the caller maps screen sides
    through the assignment). Repeating the same submission (double click, retried
    request, same idempotency key) returns the stored vote instead of a second one.
    """
    strength = _validate(choice, strength, rationale)
    if time_spent_ms is not None and not (0 <= time_spent_ms <= 24 * 3600 * 1000):
        raise VoteError("time_spent_ms", "must be between 0 and one day")
    idempotency_key = (idempotency_key or "")[:100]

    if idempotency_key:
        existing = Vote.objects.filter(annotator=annotator, idempotency_key=idempotency_key).first()
        if existing is not None:
            return VoteResult(_same_comparison(existing, assignment_id), False)
    try:
        with transaction.atomic():
            try:
                assignment = (
                    Assignment.objects.select_for_update()
                    .select_related("comparison")
                    .get(pk=assignment_id, annotator=annotator)
                )
            except Assignment.DoesNotExist:
                raise VoteError("assignment", "no such assignment for this annotator") from None
            comparison = assignment.comparison
            existing = Vote.objects.select_for_update().filter(comparison=comparison, annotator=annotator).first()
            if existing is not None:
                return _second_vote(existing, choice=choice, strength=strength, rationale=rationale)
            if comparison.status == Comparison.Status.RETIRED:
                raise VoteError("comparison", "was retired by staff; it takes no more votes")
            if assignment.status == Assignment.Status.SKIPPED:
                raise VoteError("assignment", "this comparison was skipped")
            if assignment.reserved_until < timezone.now() and _full(comparison, assignment):
                raise VoteError("assignment", "the reservation expired and others have taken the remaining votes")
            vote = Vote.objects.create(
                comparison=comparison, annotator=annotator, choice=choice, strength=strength,
                rationale=rationale, time_spent_ms=time_spent_ms, idempotency_key=idempotency_key,
                left_sample_id=comparison.sample_a_id if assignment.left_is_a else comparison.sample_b_id,
            )
            assignment.status = Assignment.Status.VOTED
            assignment.save(update_fields=["status"])
            # the vote just stored is one: with an overlap of 1 there is nothing to count
            if comparison.votes_needed <= 1 or comparison.votes.count() >= comparison.votes_needed:
                Comparison.objects.filter(pk=comparison.pk).update(status=Comparison.Status.COMPLETE)
            return VoteResult(vote, True)
    except IntegrityError:
        # A concurrent request with the same comparison or key won the race; its vote stands.
        vote = Vote.objects.filter(annotator=annotator, comparison__assignments__pk=assignment_id).first()
        if vote is None and idempotency_key:
            vote = Vote.objects.filter(annotator=annotator, idempotency_key=idempotency_key).first()
            if vote is not None:
                vote = _same_comparison(vote, assignment_id)
        if vote is None:
            raise
        return VoteResult(vote, False)


def _same_comparison(vote: Vote, assignment_id: int) -> Vote:
    """`vote` when it is on the assignment's comparison (a retry); a reused key on another is refused.

    Answering a retry with the stored vote is the point of the key; answering a vote on
    another comparison with it would tell the client its vote was stored when nothing was.
    """
    if not Assignment.objects.filter(pk=assignment_id, comparison_id=vote.comparison_id).exists():
        raise IdempotencyKeyReused(vote)
    return vote


def _second_vote(existing: Vote, *, choice: str, strength, rationale: str) -> VoteResult:
    """Another submission on a comparison already voted on (its row is locked)."""
    if existing.choice == choice:
        return VoteResult(existing, False)  # a repeat: the stored vote stands
    if not vote_in_undo_window(existing):
        raise VoteConflict(existing, f"the {settings.RLHF_VOTE_UNDO_S} s window to change it has passed")
    try:
        vote = _change_locked(existing, choice=choice, strength=strength, rationale=rationale or None,
                              undo=True, via="resubmit")
    except VoteError as exc:
        raise VoteConflict(existing, exc.message) from None
    return VoteResult(vote, False, changed=True)


def _full(comparison: Comparison, assignment: Assignment) -> bool:
    now = timezone.now()
    others = comparison.assignments.exclude(pk=assignment.pk).filter(
        status__in=[Assignment.Status.VOTED, Assignment.Status.RESERVED]
    )
    live = sum(1 for a in others if a.status == Assignment.Status.VOTED or a.reserved_until > now)
    return live >= comparison.votes_needed
