"""Staff actions on single comparisons: requeue one so it is offered again, or retire it."""
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from feedback.models import Assignment, Comparison, ComparisonFlag
from feedback.services.errors import FieldError


def comparison_requeue(*, comparison: Comparison) -> int:
    """Offer the comparison again: drop its expired reservations and its skips (those
    annotators may get it again) and reopen it if it lacks votes or was retired.

    Returns how many assignments were dropped.
    """
    with transaction.atomic():
        # The queue claims under this row lock too: no one takes a slot mid-change.
        comparison = Comparison.objects.select_for_update().get(pk=comparison.pk)
        dropped, _ = comparison.assignments.filter(
            Q(status=Assignment.Status.SKIPPED)
            | Q(status=Assignment.Status.RESERVED, reserved_until__lte=timezone.now())
        ).delete()
        votes = comparison.votes.count()
        status = Comparison.Status.COMPLETE if votes >= comparison.votes_needed else Comparison.Status.OPEN
        Comparison.objects.filter(pk=comparison.pk).update(status=status)
    return dropped


def comparison_retire(*, comparison: Comparison) -> Comparison:
    """Take the comparison out: never offered again and left out of exports and training.

    Live reservations are dropped, so whoever holds it gets the next item instead; votes
    already cast stay stored (requeue brings it back with them).
    """
    with transaction.atomic():
        Comparison.objects.select_for_update().filter(pk=comparison.pk).update(status=Comparison.Status.RETIRED)
        comparison.assignments.filter(status=Assignment.Status.RESERVED).delete()
    comparison.refresh_from_db(fields=["status"])
    return comparison


def comparison_flag(*, annotator, comparison_id: int, reason: str, note: str = "") -> ComparisonFlag:
    """Record an annotator's report on a comparison they were given; pressing the same flag
    twice keeps one report (with the latest note)."""
    if reason not in ComparisonFlag.Reason.values:
        raise FieldError("reason", f"must be one of {', '.join(ComparisonFlag.Reason.values)}")
    if len(note) > 2000:
        raise FieldError("note", "is longer than 2000 characters")
    if not Assignment.objects.filter(comparison_id=comparison_id, annotator=annotator).exists():
        raise FieldError("comparison", "flag only comparisons you were given")
    flag, created = ComparisonFlag.objects.get_or_create(
        comparison_id=comparison_id, annotator=annotator, reason=reason, defaults={"note": note})
    if not created and note and note != flag.note:
        flag.note = note
        flag.save(update_fields=["note"])
    return flag
