"""Recording votes: exactly once, whatever the network or the mouse does."""
from dataclasses import dataclass

from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from feedback.models import Assignment, Comparison, Vote
from feedback.services.errors import FieldError


class VoteError(FieldError):
    """A vote that cannot be accepted."""


class IdempotencyKeyReused(VoteError):
    """The key already names this annotator's vote on another comparison."""

    http_status = 409

    def __init__(self, vote: Vote):
        super().__init__("idempotency_key", f"was already used for your vote on comparison {vote.comparison_id}; "
                                            "send a new key for each vote")


@dataclass
class VoteResult:
    vote: Vote
    created: bool


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
    if choice not in Comparison.Choice.values:
        raise VoteError("choice", f"must be one of {', '.join(Comparison.Choice.values)}")
    if strength is not None and strength not in Vote.Strength.values:
        raise VoteError("strength", "must be 1 (slightly), 2 (clearly) or 3 (much)")
    if strength is not None and choice not in (Comparison.Choice.A, Comparison.Choice.B):
        strength = None  # how much better only means something when one side won
    if len(rationale) > 5000:
        raise VoteError("rationale", "is longer than 5000 characters")
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
            existing = Vote.objects.filter(comparison=comparison, annotator=annotator).first()
            if existing is not None:
                return VoteResult(existing, False)
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
            if comparison.votes.count() >= comparison.votes_needed:
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


def _full(comparison: Comparison, assignment: Assignment) -> bool:
    now = timezone.now()
    others = comparison.assignments.exclude(pk=assignment.pk).filter(
        status__in=[Assignment.Status.VOTED, Assignment.Status.RESERVED]
    )
    live = sum(1 for a in others if a.status == Assignment.Status.VOTED or a.reserved_until > now)
    return live >= comparison.votes_needed
