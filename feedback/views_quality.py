"""Studio pages that answer "is the model getting better, and can the votes be trusted?":
the leaderboard, annotator quality, and marking gold answers. Thin: selectors and services decide."""
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from feedback.models import Comparison, Project
from feedback.selectors.quality import project_quality
from feedback.services.gold import GoldError, comparison_gold_set
from feedback.services.leaderboard import leaderboard_current


def _project(project_id: int) -> Project:
    return get_object_or_404(Project, pk=project_id)


@staff_member_required
def leaderboard_page(request, project_id: int):
    """Ratings of every checkpoint with intervals; shows the last computed board and queues a recompute when stale."""
    project = _project(project_id)
    current = leaderboard_current(project)
    result = current["result"]
    computed_at = parse_datetime(result["computed_at"]) if result else None
    matrix = None
    if result:
        m = result["matrix"]
        matrix = [{"name": name, "cells": [{"rate": r, "votes": v, "col": col}
                                           for r, v, col in zip(m["win_rate"][i], m["votes"][i], m["names"])]}
                  for i, name in enumerate(m["names"])]
    return render(request, "feedback/studio/leaderboard.html", {
        "project": project, "current": current, "board": result, "matrix": matrix,
        "age_s": int((timezone.now() - computed_at).total_seconds()) if computed_at else None,
        "chart": [{"name": r["name"], "rating": r["rating"], "low": r["low"], "high": r["high"]}
                  for r in (result or {}).get("models", []) if r["rating"] is not None],
    })


@staff_member_required
def quality_page(request, project_id: int):
    """Agreement, gold accuracy, position bias and pace per annotator; outliers flagged."""
    project = _project(project_id)
    return render(request, "feedback/studio/quality.html", {"project": project, "quality": project_quality(project)})


@staff_member_required
@require_POST
def comparison_gold_view(request, comparison_id: int):
    """Mark (or clear) a comparison's gold answer from the queue page."""
    comparison = get_object_or_404(Comparison, pk=comparison_id)
    try:
        comparison_gold_set(comparison=comparison, choice=request.POST.get("gold", ""))
    except GoldError as exc:
        messages.error(request, str(exc))
    else:
        label = comparison.get_gold_choice_display() if comparison.gold_choice else "no gold answer"
        messages.success(request, f"Comparison {comparison.pk}: {label}.")
    back = request.POST.get("next", "")
    queue = reverse("feedback:studio_queue", args=[comparison.project_id])
    return redirect(back if back.startswith(queue) else queue)


@staff_member_required
@require_POST
def quality_settings_view(request, project_id: int):
    """Gold rate, gold accuracy threshold and whether flagged annotators' votes are left out."""
    from feedback.services.gold import project_quality_settings

    project = _project(project_id)
    data = {k: request.POST.get(k, "") for k in ("gold_rate", "min_gold_accuracy")}
    data["exclude_flagged"] = request.POST.get("exclude_flagged", "") == "on"
    try:
        project_quality_settings(project=project, data=data)
    except GoldError as exc:
        messages.error(request, f"Not saved: {exc}")
    else:
        messages.success(request, "Quality settings saved.")
    return redirect("feedback:studio_quality", project_id=project.pk)
