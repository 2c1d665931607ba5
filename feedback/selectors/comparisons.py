"""Queries about comparisons."""
from feedback.models import Comparison, Project


def latest_batch(project: Project) -> int:
    """The newest batch number among the project's comparisons (0 when there are none)."""
    return Comparison.objects.filter(project=project).order_by("-batch").values_list("batch", flat=True).first() or 0
