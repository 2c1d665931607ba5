"""The per-project queue as staff see it: who holds, voted on or skipped each comparison."""
from collections import defaultdict

from django.db.models import Count, Q
from django.utils import timezone

from feedback.models import Assignment, Comparison, ComparisonFlag, Project

QUEUE_PAGE_ROWS = 100


def queue_counts(project: Project) -> dict:
    """Comparisons per status, reservations live now, and skips."""
    now = timezone.now()
    counts = Comparison.objects.filter(project=project).aggregate(
        open=Count("id", filter=Q(status=Comparison.Status.OPEN)),
        complete=Count("id", filter=Q(status=Comparison.Status.COMPLETE)),
        retired=Count("id", filter=Q(status=Comparison.Status.RETIRED)),
    )
    assignments = Assignment.objects.filter(comparison__project=project).aggregate(
        reserved_now=Count("id", filter=Q(status=Assignment.Status.RESERVED, reserved_until__gt=now)),
        skipped=Count("id", filter=Q(status=Assignment.Status.SKIPPED)),
    )
    flagged = ComparisonFlag.objects.filter(comparison__project=project).values("comparison").distinct().count()
    return {**counts, **assignments, "flagged": flagged}


def queue_rows(project: Project, *, status: str = "", only: str = "", before_id: int | None = None,
               limit: int = QUEUE_PAGE_ROWS) -> list[dict]:
    """The newest comparisons first (optionally one status, or only those `reserved` now,
    `skipped` or `flagged`), each with its votes, live reservations and skips."""
    now = timezone.now()
    comparisons = Comparison.objects.filter(project=project).select_related("prompt")
    if status:
        comparisons = comparisons.filter(status=status)
    if only == "reserved":
        comparisons = comparisons.filter(assignments__status=Assignment.Status.RESERVED,
                                         assignments__reserved_until__gt=now).distinct()
    elif only == "skipped":
        comparisons = comparisons.filter(assignments__status=Assignment.Status.SKIPPED).distinct()
    elif only == "flagged":
        comparisons = comparisons.filter(flags__isnull=False).distinct()
    if before_id:
        comparisons = comparisons.filter(pk__lt=before_id)
    comparisons = list(comparisons.annotate(vote_count=Count("votes", distinct=True)).order_by("-id")[:limit])
    by_comparison = defaultdict(lambda: {"reserved": [], "voted": [], "skipped": [], "expired": 0})
    assignments = Assignment.objects.filter(comparison__in=comparisons).select_related("annotator").order_by("id")
    for a in assignments:
        slot = by_comparison[a.comparison_id]
        if a.status == Assignment.Status.VOTED:
            slot["voted"].append(a.annotator.get_username())
        elif a.status == Assignment.Status.SKIPPED:
            slot["skipped"].append({"who": a.annotator.get_username(), "reason": a.skip_reason})
        elif a.reserved_until > now:
            slot["reserved"].append({"who": a.annotator.get_username(), "until": a.reserved_until})
        else:
            slot["expired"] += 1
    flags = defaultdict(list)
    for flag in ComparisonFlag.objects.filter(comparison__in=comparisons).select_related("annotator").order_by("id"):
        flags[flag.comparison_id].append(flag)
    return [{"comparison": c, **by_comparison[c.pk], "flags": flags[c.pk]} for c in comparisons]
