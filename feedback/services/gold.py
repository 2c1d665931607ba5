"""Gold comparisons: staff record the correct answer of a comparison, the queue mixes them
into every annotator's work at the project's `gold_rate`, and accuracy on them flags
annotators (selectors/quality.py) whose votes a project may then leave out (`exclude_flagged`)."""
import random

from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from feedback.models import Assignment, Comparison, Project
from feedback.services.errors import FieldError

MAX_GOLD_RATE = 0.5


class GoldError(FieldError):
    """A bad gold answer or quality setting."""


def comparison_gold_set(*, comparison: Comparison, choice: str) -> Comparison:
    """Record the comparison's correct answer (a, b, tie, both_bad), or clear it with ''."""
    if choice not in ("", *Comparison.Choice.values):
        raise GoldError("gold", f"must be one of {', '.join(Comparison.Choice.values)} or empty")
    Comparison.objects.filter(pk=comparison.pk).update(gold_choice=choice)
    comparison.gold_choice = choice
    return comparison


def project_quality_settings(*, project: Project, data: dict) -> Project:
    """Change gold_rate, min_gold_accuracy and exclude_flagged; a bad value changes nothing."""
    changes = {}
    if "gold_rate" in data:
        value = _fraction(data["gold_rate"], "gold_rate")
        if value > MAX_GOLD_RATE:
            raise GoldError("gold_rate", f"must be between 0 and {MAX_GOLD_RATE}")
        changes["gold_rate"] = value
    if "min_gold_accuracy" in data:
        changes["min_gold_accuracy"] = _fraction(data["min_gold_accuracy"], "min_gold_accuracy")
    if "exclude_flagged" in data:
        value = data["exclude_flagged"]
        if isinstance(value, str) and value.lower() in ("1", "true", "on", "yes", "0", "false", "off", "no", ""):
            value = value.lower() in ("1", "true", "on", "yes")
        if not isinstance(value, bool):
            raise GoldError("exclude_flagged", "must be true or false")
        changes["exclude_flagged"] = value
    for field, value in changes.items():
        setattr(project, field, value)
    if changes:
        project.save(update_fields=list(changes))
    return project


def _fraction(raw, field: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise GoldError(field, "must be a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise GoldError(field, "must be a number between 0 and 1")
    return value


def gold_assignment_maybe(*, annotator: AbstractUser, project: Project, reservation) -> Assignment | None:
    """With probability `gold_rate`, reserve a gold comparison the annotator has not seen.

    Gold items ignore votes_needed (everyone should meet them) and otherwise look like any
    other item: same reservation, random side, same page, so they cannot be told apart.
    """
    if project.gold_rate <= 0 or random.random() >= project.gold_rate:
        return None
    candidates = (Comparison.objects.filter(project=project)
                  .exclude(gold_choice="").exclude(status=Comparison.Status.RETIRED)
                  .exclude(assignments__annotator=annotator).values_list("pk", flat=True))
    ids = list(candidates[:500])
    random.shuffle(ids)
    for pk in ids[:5]:
        try:
            with transaction.atomic():
                assignment = Assignment.objects.create(comparison_id=pk, annotator=annotator,
                                                       reserved_until=timezone.now() + reservation,
                                                       left_is_a=random.random() < 0.5)
        except IntegrityError:
            continue  # claimed from another tab a moment ago
        assignment.comparison = Comparison.objects.select_related("prompt", "sample_a", "sample_b").get(pk=pk)
        return assignment
    return None
