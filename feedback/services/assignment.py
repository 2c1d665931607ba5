"""The work queue: which comparison an annotator gets next.

Invariants: an annotator never votes on the same comparison twice (unique assignment per
comparison × annotator); live reservations plus votes never exceed the comparison's
votes_needed; a reservation that expires returns its slot to the pool, and the pool
includes the annotator who let it expire (they never voted on it: with one annotator
the comparison would otherwise be stranded for good).
"""
import random
import time
from contextlib import nullcontext
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from feedback.models import Assignment, Comparison, Project

RESERVATION = timedelta(minutes=15)
_CANDIDATES_PER_TRY = 10


def _taken(now) -> Subquery:
    """Votes cast plus live reservations, per comparison, as a subquery (no GROUP BY,
    so the outer query can still take row locks)."""
    counts = (
        Assignment.objects.filter(comparison=OuterRef("pk"))
        .filter(Q(status=Assignment.Status.VOTED) | Q(status=Assignment.Status.RESERVED, reserved_until__gt=now))
        .order_by()
        .values("comparison")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counts), 0)


def assignment_current(*, annotator: AbstractUser, project: Project) -> Assignment | None:
    """The annotator's live reservation in this project, if any (a reload shows the same item)."""
    return (
        Assignment.objects.filter(
            annotator=annotator, comparison__project=project,
            status=Assignment.Status.RESERVED, reserved_until__gt=timezone.now(),
        )
        .select_related("comparison__prompt", "comparison__sample_a", "comparison__sample_b")
        .order_by("id")
        .first()
    )


def assignment_next(*, annotator: AbstractUser, project: Project) -> Assignment | None:
    """Reserve the next comparison for `annotator`, or return None when there is no work."""
    current = assignment_current(annotator=annotator, project=project)
    if current is not None:
        return current
    from feedback.services.gold import gold_assignment_maybe

    gold = gold_assignment_maybe(annotator=annotator, project=project, reservation=RESERVATION)
    if gold is not None:
        return gold
    for attempt in range(50):
        now = timezone.now()
        open_for_me = (
            Comparison.objects.filter(project=project, status=Comparison.Status.OPEN)
            # voted, skipped or held now by this annotator; an expired reservation of theirs stays in
            .exclude(assignments__in=Assignment.objects.filter(annotator=annotator).exclude(
                status=Assignment.Status.RESERVED, reserved_until__lte=now))
            .annotate(taken=_taken(now))
            .filter(taken__lt=F("votes_needed"))
            # whether a reservation of theirs expired on it, so renewing it costs a query only then
            .annotate(mine_expired=Exists(Assignment.objects.filter(
                comparison=OuterRef("pk"), annotator=annotator, status=Assignment.Status.RESERVED)))
            .order_by("id")
        )
        # Without row locks (SQLite) the candidates are read before the write lock is taken:
        # every claim in the project queues on that lock, so it is held only for the recount
        # and the insert. The recount under the lock catches a candidate claimed meanwhile.
        row_locks = connection.features.has_select_for_update_skip_locked
        early = None if row_locks else list(open_for_me[:_CANDIDATES_PER_TRY])
        claimed = None
        with transaction.atomic() if early != [] else nullcontext():  # no write lock for nothing
            # Two annotators must not both take the last slot of one comparison: the row
            # lock serialises claims per comparison, SKIP LOCKED sends the second claimer
            # to the next row instead of making it wait.
            candidates = early if early is not None else (
                open_for_me.select_for_update(skip_locked=True, of=("self",))[:_CANDIDATES_PER_TRY])
            for comparison in candidates:
                # Recount under the lock: the candidate query's snapshot may predate a
                # claim that committed while we waited for the row.
                # (still open, and its overlap as it is now: staff may have changed either)
                if not (Comparison.objects.filter(pk=comparison.pk, status=Comparison.Status.OPEN)
                        .annotate(taken=_taken(now)).filter(taken__lt=F("votes_needed")).exists()):
                    continue
                try:
                    with transaction.atomic():
                        renewed = comparison.mine_expired and _renew_expired(comparison, annotator, now)
                        claimed = renewed or Assignment.objects.create(
                            comparison=comparison, annotator=annotator, reserved_until=now + RESERVATION,
                            left_is_a=random.random() < 0.5,
                        )
                    break
                except IntegrityError:
                    continue  # the same annotator claimed it from another tab a moment ago
        if claimed is not None:
            # one query for what the page shows, instead of three lazy ones; after the commit,
            # so no other claim waits for it
            claimed.comparison = Comparison.objects.select_related("prompt", "sample_a", "sample_b").get(
                pk=claimed.comparison_id)
            return claimed
        # Nothing claimable right now. Rows other claimers hold locked were skipped, so
        # look without locks: only when nothing is open for this annotator is the queue empty.
        if not open_for_me.exists():
            return None
        time.sleep(min(0.005 * (attempt + 1), 0.1))
    return None


def _renew_expired(comparison: Comparison, annotator: AbstractUser, now) -> Assignment | None:
    """Reserve again the annotator's own expired reservation of `comparison`, if any; it keeps
    its sides, so the item looks as it did."""
    renewed = Assignment.objects.filter(
        comparison=comparison, annotator=annotator, status=Assignment.Status.RESERVED, reserved_until__lte=now,
    ).update(reserved_until=now + RESERVATION)
    if not renewed:
        return None
    return Assignment.objects.get(comparison=comparison, annotator=annotator)


def assignment_skip(*, annotator: AbstractUser, assignment_id: int, reason: str) -> Assignment:
    """Give a reserved comparison back to the pool; the annotator will not see it again."""
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().get(pk=assignment_id, annotator=annotator)
        if assignment.status == Assignment.Status.RESERVED:
            assignment.status = Assignment.Status.SKIPPED
            assignment.skip_reason = reason[:50]
            assignment.save(update_fields=["status", "skip_reason"])
    return assignment
