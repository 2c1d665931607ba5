"""The annotator's own pages besides the queue: undo / change a vote, "my votes", flags."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from feedback.forms import FlagForm, HistoryFilterForm, VoteEditForm
from feedback.models import Assignment, Comparison, Project, TrainingRound, Vote
from feedback.selectors.projects import projects_for_user
from feedback.selectors.votes import annotator_stats, sample_author, vote_shown_choice, votes_for_annotator
from feedback.services.comparisons import comparison_flag
from feedback.services.errors import FieldError
from feedback.services.votes import VoteError, vote_change, vote_in_undo_window, vote_used_by_round

ANNOTATE_FLASH_KEY = "annotate_flash"
ANNOUNCEMENTS = {"saved": "Saved.", "changed": "Vote changed.", "skipped": "Skipped.",
                 "flagged": "Flag saved. You can still vote or skip."}
SHOWN_LABELS = {"a": "A is better", "b": "B is better", "tie": "tie", "both_bad": "both bad"}


def screen_choice(side: str, *, left_is_a: bool) -> str:
    """A choice in sample A/B terms from the side of the screen the annotator picked."""
    if side not in ("left", "right"):
        return side
    return Comparison.Choice.A if (side == "left") == left_is_a else Comparison.Choice.B


def _authors(vote: Vote) -> dict:
    """Who wrote the left and the right response (only ever shown after the vote)."""
    comparison = vote.comparison
    left, right = ((comparison.sample_a, comparison.sample_b) if vote.left_sample_id == comparison.sample_a_id
                   else (comparison.sample_b, comparison.sample_a))
    return {"left": sample_author(left), "right": sample_author(right)}


def last_vote_context(request, project: Project, flash: dict | None) -> dict:
    """What the page says about the annotator's previous action: the announcement, and for
    their last vote in this project an undo link while the window lasts (and the authors,
    where the project reveals them)."""
    context = {"announce": ANNOUNCEMENTS.get((flash or {}).get("status"), ""),
               "just_voted": bool(flash and flash.get("vote"))}
    vote = (Vote.objects.filter(annotator=request.user, comparison__project=project)
            .select_related("comparison__sample_a__checkpoint__produced_by",
                            "comparison__sample_b__checkpoint__produced_by")
            .order_by("-id").first())
    if vote is None:
        return context
    in_window = vote_in_undo_window(vote) and vote.comparison.status != Comparison.Status.RETIRED
    if not (in_window or context["just_voted"]):
        return context
    context["vote"] = vote
    context["shown_choice"] = SHOWN_LABELS[vote_shown_choice(vote)]
    if in_window and vote_used_by_round(vote) is None:
        context["undo_url"] = reverse("feedback:vote_edit", args=[vote.pk]) + "?undo=1"
    if project.reveal_models:
        context["authors"] = _authors(vote)
    return context


def _snapshot_max_ids(project_ids) -> dict[int, int]:
    """Per project, the highest vote id a round's snapshot used (a round mid-snapshot: all)."""
    used = {}
    for project_id, status, snapshot in TrainingRound.objects.filter(project_id__in=project_ids).values_list(
            "project_id", "status", "snapshot"):
        top = (snapshot or {}).get("max_vote_id") or 0
        if status == TrainingRound.Status.SNAPSHOT:
            top = 2 ** 62
        used[project_id] = max(used.get(project_id, 0), top)
    return used


@login_required
def vote_edit(request, vote_id: int):
    """Change a vote: the same comparison, the earlier choice marked, sides as first shown."""
    vote = get_object_or_404(
        Vote.objects.select_related("comparison__prompt", "comparison__sample_a", "comparison__sample_b",
                                    "comparison__project"),
        pk=vote_id, annotator=request.user, comparison__project__in=projects_for_user(request.user),
    )
    comparison = vote.comparison
    left_is_a = vote.left_sample_id == comparison.sample_a_id
    undo = request.GET.get("undo") == "1" or request.POST.get("undo") in ("on", "1", "true")
    if request.method == "POST":
        form = VoteEditForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Your vote was not changed: " + "; ".join(
                f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()))
            return HttpResponseRedirect(request.get_full_path())
        try:
            vote_change(annotator=request.user, vote_id=vote.pk,
                        choice=screen_choice(form.cleaned_data["side"], left_is_a=left_is_a),
                        strength=form.cleaned_data["strength"], rationale=form.cleaned_data["rationale"],
                        undo=undo, via="undo" if undo else "history")
        except VoteError as exc:
            messages.error(request, f"Your vote was not changed: {exc.message}.")
            return redirect("feedback:history")
        if undo:
            request.session[ANNOTATE_FLASH_KEY] = {"status": "changed", "vote": vote.pk}
            return HttpResponseRedirect(f"{reverse('feedback:annotate')}?project={comparison.project_id}")
        messages.success(request, "Vote changed.")
        return redirect("feedback:history")

    used = vote_used_by_round(vote)
    problem = ""
    if comparison.status == Comparison.Status.RETIRED:
        problem = "its comparison was retired by staff"
    elif used is not None:
        problem = f"round {used.number} already trained on it"
    elif undo and not vote_in_undo_window(vote):
        problem = f"the {settings.RLHF_VOTE_UNDO_S} s undo window has passed; change it from My votes"
    if problem:
        messages.error(request, f"This vote can no longer change: {problem}.")
        return redirect("feedback:history")
    left, right = ((comparison.sample_a, comparison.sample_b) if left_is_a
                   else (comparison.sample_b, comparison.sample_a))
    shown = vote_shown_choice(vote)
    return render(request, "feedback/annotate.html", {
        "project": comparison.project, "projects": [], "comparison": comparison,
        "messages_": comparison.prompt.messages, "left": left, "right": right,
        "edit": {"vote": vote, "undo": undo, "side": {"a": "left", "b": "right"}.get(shown, shown),
                 "label": SHOWN_LABELS[shown]},
    })


@login_required
def history(request):
    """My votes: prompt, choice, time, filters by project and choice, and personal stats."""
    projects = projects_for_user(request.user)
    form = HistoryFilterForm(request.GET or None, projects=projects)
    project_id, choice = None, ""
    if form.is_valid():
        project_id, choice = form.cleaned_data["project"], form.cleaned_data["choice"]
    votes = votes_for_annotator(annotator=request.user, projects=projects, project_id=project_id, choice=choice)
    stats = annotator_stats(votes=votes_for_annotator(annotator=request.user, projects=projects,
                                                      project_id=project_id))
    page = Paginator(votes, 50).get_page(request.GET.get("page"))
    used = _snapshot_max_ids({v.comparison.project_id for v in page})
    rows = []
    for vote in page:
        rows.append({
            "vote": vote,
            "shown": SHOWN_LABELS[vote_shown_choice(vote)],
            "editable": vote.pk > used.get(vote.comparison.project_id, 0)
            and vote.comparison.status != Comparison.Status.RETIRED,
        })
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "feedback/history.html", {
        "form": form, "rows": rows, "page": page, "stats": stats, "query": query.urlencode(),
    })


@login_required
@require_POST
def annotate_flag(request, assignment_id: int):
    """Flag the comparison behind the annotator's assignment; the item stays theirs to vote on."""
    assignment = get_object_or_404(Assignment.objects.select_related("comparison"), pk=assignment_id,
                                   annotator=request.user)
    form = FlagForm(request.POST)
    if form.is_valid():
        try:
            comparison_flag(annotator=request.user, comparison_id=assignment.comparison_id,
                            reason=form.cleaned_data["reason"], note=form.cleaned_data["note"])
            request.session[ANNOTATE_FLASH_KEY] = {"status": "flagged"}
        except FieldError as exc:
            messages.error(request, f"Not flagged: {exc}")
    else:
        messages.error(request, "Not flagged: choose what is wrong.")
    return HttpResponseRedirect(f"{reverse('feedback:annotate')}?project={assignment.comparison.project_id}")
