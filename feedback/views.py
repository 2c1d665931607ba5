"""Pages for annotators (/annotate/) and admins (/studio/): thin, they call services."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from feedback.decorators import staff_member_required
from feedback.charts import round_history_charts
from feedback.forms import FlagForm, RoundLaunchForm, SkipForm, VoteForm
from feedback.models import Assignment, Comparison, Project
from feedback.selectors.checkpoints import active_policy
from feedback.selectors.progress import annotator_progress, project_counts
from feedback.selectors.projects import project_for_user, projects_for_user
from feedback.selectors.rounds import round_win_rate, rounds_for_project, running_round
from feedback.services.assignment import assignment_next, assignment_skip
from feedback.services.rounds import RoundError, round_launch
from feedback.services.runs import QueueUnavailable
from feedback.services.votes import VoteConflict, VoteError, vote_submit
from feedback.views_annotate import ANNOTATE_FLASH_KEY, last_vote_context, screen_choice


ANNOTATE_PROJECT_KEY = "annotate_project"


@login_required
def home(request):
    return redirect("feedback:studio" if request.user.is_staff else "feedback:annotate")


def _project_for(request) -> Project | None:
    """The project to annotate: the one asked for, else the one chosen earlier in this
    session, else the first of the annotator's projects that has open work."""
    project_id = request.GET.get("project") or request.POST.get("project")
    if project_id:
        project = project_for_user(request.user, project_id)  # 404 for other people's projects
        if request.session.get(ANNOTATE_PROJECT_KEY) != project.pk:  # unchanged: no session write
            request.session[ANNOTATE_PROJECT_KEY] = project.pk
        return project
    mine = projects_for_user(request.user, include_archived=False)
    remembered = request.session.get(ANNOTATE_PROJECT_KEY)
    if remembered is not None:
        project = mine.filter(pk=remembered).first()
        if project is not None:
            return project
    with_work = mine.filter(comparisons__status=Comparison.Status.OPEN).distinct().first()
    return with_work or mine.first()


def _annotate_url(project_id: int) -> str:
    return f"{reverse('feedback:annotate')}?project={project_id}"


@login_required
def annotate(request):
    project = _project_for(request)
    context = {"project": project, "projects": projects_for_user(request.user, include_archived=False),
               "undo_seconds": f"{settings.RLHF_VOTE_UNDO_S} s"}
    if project is None:
        return render(request, "feedback/annotate_empty.html", context)
    assignment = assignment_next(annotator=request.user, project=project)
    context["progress"] = annotator_progress(annotator=request.user, project=project)
    context["last"] = last_vote_context(request, project, request.session.pop(ANNOTATE_FLASH_KEY, None))
    if assignment is None:
        return render(request, "feedback/annotate_empty.html", context)
    comparison = assignment.comparison
    left, right = (
        (comparison.sample_a, comparison.sample_b) if assignment.left_is_a else (comparison.sample_b, comparison.sample_a)
    )
    context.update({
        "assignment": assignment,
        "comparison": comparison,
        "messages_": comparison.prompt.messages,
        "left": left,
        "right": right,
        "skip_form": SkipForm(),
        "flag_form": FlagForm(),
    })
    return render(request, "feedback/annotate.html", context)


@login_required
@require_POST
def annotate_vote(request, assignment_id: int):
    assignment = get_object_or_404(Assignment.objects.select_related("comparison"), pk=assignment_id, annotator=request.user)
    form = VoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Your vote was not saved: " + "; ".join(
            f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()))
        return HttpResponseRedirect(_annotate_url(assignment.comparison.project_id))
    left_is_a = assignment.left_is_a
    choice = screen_choice(form.cleaned_data["side"], left_is_a=left_is_a)
    try:
        result = vote_submit(
            annotator=request.user, assignment_id=assignment.pk, choice=choice,
            strength=form.cleaned_data["strength"], rationale=form.cleaned_data["rationale"],
            time_spent_ms=form.cleaned_data["time_spent_ms"], idempotency_key=form.cleaned_data["idempotency_key"],
        )
    except VoteError as exc:
        messages.error(request, f"Your vote was not saved: {exc}")
    except VoteConflict as exc:
        messages.error(request, f"Your vote was not changed: {exc.reason}. Your earlier vote stands.")
    else:
        request.session[ANNOTATE_FLASH_KEY] = {"status": "changed" if result.changed else "saved",
                                               "vote": result.vote.pk}
    return HttpResponseRedirect(_annotate_url(assignment.comparison.project_id))


@login_required
@require_POST
def annotate_skip(request, assignment_id: int):
    assignment = get_object_or_404(Assignment.objects.select_related("comparison"), pk=assignment_id, annotator=request.user)
    form = SkipForm(request.POST)
    if form.is_valid():
        assignment_skip(annotator=request.user, assignment_id=assignment.pk, reason=form.cleaned_data["reason"])
        request.session[ANNOTATE_FLASH_KEY] = {"status": "skipped"}
    else:
        messages.error(request, "Choose why you skip.")
    return HttpResponseRedirect(_annotate_url(assignment.comparison.project_id))


@staff_member_required
def studio(request):
    projects = []
    for project in Project.objects.all():
        rounds = [(r, round_win_rate(r)) for r in rounds_for_project(project)[:20]]
        projects.append({
            "project": project,
            "counts": project_counts(project),
            "active_policy": active_policy(project),
            "running": running_round(project),
            "rounds": rounds,
            "charts": round_history_charts(rounds),
            "form": RoundLaunchForm(prefix=f"p{project.pk}"),
        })
    return render(request, "feedback/studio.html", {"projects": projects})


@staff_member_required
@require_POST
def studio_round_launch(request, project_id: int):
    project = get_object_or_404(Project, pk=project_id)
    form = RoundLaunchForm(request.POST, prefix=f"p{project.pk}")
    if not form.is_valid():
        messages.error(request, "Round not launched: " + "; ".join(
            f"{form.fields[f].label if f in form.fields else f}: {' '.join(e)}" for f, e in form.errors.items()))
        return redirect("feedback:studio")
    try:
        training_round = round_launch(project=project, launched_by=request.user, config=form.round_config())
    except (RoundError, QueueUnavailable) as exc:
        messages.error(request, f"Round not launched: {exc}")
        return redirect("feedback:studio")
    messages.success(request, f"Round {training_round.number} queued.")
    return redirect("feedback:round_detail", round_id=training_round.pk)

