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
from django.utils import timezone

from feedback.models import Assignment, Comparison, Project

RESERVATION = timedelta(minutes=15)
_CANDIDATES_PER_TRY = 10

_COMPARISON, _ASSIGNMENT = Comparison._meta.db_table, Assignment._meta.db_table
_TAKEN = (f"(SELECT COUNT(*) FROM {_ASSIGNMENT} t WHERE t.comparison_id = c.id"
          f" AND (t.status = %s OR (t.status = %s AND t.reserved_until > %s)))")
"""Votes cast plus live reservations of comparison `c` (parameters: `_taken_params`)."""


def _taken_params(at) -> list:
    """_TAKEN's parameters; `at`: now, as the database stores it."""
    return [Assignment.Status.VOTED.value, Assignment.Status.RESERVED.value, at]


def _open_for_me(project: Project, annotator: AbstractUser, now) -> tuple[str, list]:
    """FROM and WHERE of the comparisons `annotator` may claim now (alias `c`), and their
    parameters: open, in `project`, not voted, skipped or held now by them (a reservation
    of theirs that expired stays in), and with fewer votes cast plus live reservations
    than its overlap.

    Written out rather than built by the ORM: building and compiling these statements
    took ~2.7 ms of Python per claim, thirty times what SQLite takes to run them, and a
    claim is half of every fetch-next request (bench/profile_requests.py).
    """
    at = connection.ops.adapt_datetimefield_value(now)  # SQLite stores text, in UTC
    sql = (f"FROM {_COMPARISON} c WHERE c.project_id = %s AND c.status = %s"
           f" AND NOT EXISTS (SELECT 1 FROM {_ASSIGNMENT} m WHERE m.comparison_id = c.id AND m.annotator_id = %s"
           f" AND NOT (m.status = %s AND m.reserved_until <= %s)) AND {_TAKEN} < c.votes_needed")
    return sql, [project.pk, Comparison.Status.OPEN.value, annotator.pk, Assignment.Status.RESERVED.value, at,
                 *_taken_params(at)]


def _candidates(project: Project, annotator: AbstractUser, now, *, lock: bool) -> list[tuple[int, bool]]:
    """Up to _CANDIDATES_PER_TRY claimable comparisons, oldest first, as (id, whether a
    reservation of this annotator expired on it). `lock`: rows locked, those another
    claimer holds skipped (PostgreSQL)."""
    where, params = _open_for_me(project, annotator, now)
    sql = (f"SELECT c.id, EXISTS (SELECT 1 FROM {_ASSIGNMENT} e WHERE e.comparison_id = c.id"
           f" AND e.annotator_id = %s AND e.status = %s) {where} ORDER BY c.id LIMIT {_CANDIDATES_PER_TRY}")
    if lock:
        sql += " FOR UPDATE OF c SKIP LOCKED"
    with connection.cursor() as cursor:
        cursor.execute(sql, [annotator.pk, Assignment.Status.RESERVED.value, *params])
        return [(pk, bool(expired)) for pk, expired in cursor.fetchall()]


def _still_claimable(comparison_id: int, now) -> bool:
    """Recount one candidate: still open, and below its overlap as it is now (staff may
    have changed either; a claim may have committed since the candidates were read)."""
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {_COMPARISON} c WHERE c.id = %s AND c.status = %s AND {_TAKEN} < c.votes_needed",
                       [comparison_id, Comparison.Status.OPEN.value, *_taken_params(at)])
        return cursor.fetchone() is not None


def _any_open_for_me(project: Project, annotator: AbstractUser, now) -> bool:
    where, params = _open_for_me(project, annotator, now)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 {where} LIMIT 1", params)
        return cursor.fetchone() is not None


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
    row_locks = connection.features.has_select_for_update_skip_locked
    for attempt in range(50):
        now = timezone.now()
        # Without row locks (SQLite) the candidates are read before the write lock is taken:
        # every claim in the project queues on that lock, so it is held only for the recount
        # and the insert. The recount under the lock catches a candidate claimed meanwhile.
        early = None if row_locks else _candidates(project, annotator, now, lock=False)
        claimed = None
        with transaction.atomic() if early != [] else nullcontext():  # no write lock for nothing
            # Two annotators must not both take the last slot of one comparison: the row
            # lock serialises claims per comparison, SKIP LOCKED sends the second claimer
            # to the next row instead of making it wait.
            candidates = early if early is not None else _candidates(project, annotator, now, lock=True)
            for comparison_id, mine_expired in candidates:
                # Recount under the lock: the candidate query's snapshot may predate a
                # claim that committed while we waited for the row.
                if not _still_claimable(comparison_id, now):
                    continue
                try:
                    with transaction.atomic():
                        renewed = mine_expired and _renew_expired(comparison_id, annotator, now)
                        claimed = renewed or Assignment.objects.create(
                            comparison_id=comparison_id, annotator=annotator, reserved_until=now + RESERVATION,
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
        if not _any_open_for_me(project, annotator, now):
            return None
        time.sleep(min(0.005 * (attempt + 1), 0.1))
    return None


def _renew_expired(comparison_id: int, annotator: AbstractUser, now) -> Assignment | None:
    """Reserve again the annotator's own expired reservation of `comparison`, if any; it keeps
    its sides, so the item looks as it did."""
    renewed = Assignment.objects.filter(
        comparison_id=comparison_id, annotator=annotator, status=Assignment.Status.RESERVED, reserved_until__lte=now,
    ).update(reserved_until=now + RESERVATION)
    if not renewed:
        return None
    return Assignment.objects.get(comparison_id=comparison_id, annotator=annotator)


def assignment_skip(*, annotator: AbstractUser, assignment_id: int, reason: str) -> Assignment:
    """Give a reserved comparison back to the pool; the annotator will not see it again."""
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().get(pk=assignment_id, annotator=annotator)
        if assignment.status == Assignment.Status.RESERVED:
            assignment.status = Assignment.Status.SKIPPED
            assignment.skip_reason = reason[:50]
            assignment.save(update_fields=["status", "skip_reason"])
    return assignment
