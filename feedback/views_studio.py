"""Studio pages for rounds and checkpoints: the live round page, launch with its plan,
checkpoints with promote / roll back, and the playground. Thin: they call services and selectors."""
import json

from django.conf import settings
from django.contrib import messages
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from feedback.decorators import staff_member_required
from feedback.charts import DPO_SERIES, PPO_SERIES, REWARD_SERIES, metric_charts
from feedback.forms import CheckpointActionForm, PlaygroundForm, RoundSettingsForm
from feedback.models import Checkpoint, Project, TrainingRound
from feedback.selectors.checkpoints import active_policy
from feedback.selectors.rounds import round_win_rate, round_win_rate_vs_round0, running_round
from feedback.selectors.studio import checkpoints_overview, round_method, round_plan, round_status
from feedback.services.checkpoints import checkpoint_promote, checkpoint_rollback
from feedback.services.errors import FieldError
from feedback.services.model_export import checkpoint_export_stream
from feedback.services.playground import playground_pair_send, playground_stream
from feedback.services.rounds import RoundError, round_cancel, round_launch, round_retry, round_review
from feedback.services.runs import QueueUnavailable, reap_quietly


def _round(round_id: int) -> TrainingRound:
    # A round whose worker died is ended before it is shown, so no page shows it running forever.
    reap_quietly(project_id=get_object_or_404(TrainingRound.objects.only("project_id"), pk=round_id).project_id)
    return get_object_or_404(
        TrainingRound.objects.select_related("project", "policy_checkpoint", "reward_checkpoint", "parent_policy",
                                             "launched_by"),
        pk=round_id,
    )


@staff_member_required
def round_detail(request, round_id: int):
    """A round as it runs: the page polls status.json and updates itself in place."""
    training_round = _round(round_id)
    metrics = training_round.metrics or {}
    return render(request, "feedback/studio/round_detail.html", {
        "round": training_round,
        "project": training_round.project,
        "status": round_status(training_round),
        "reward_steps": metrics.get("reward", []),
        "ppo_steps": metrics.get("ppo", []),
        "ppo_charts": metric_charts(metrics.get("ppo", []), PPO_SERIES),
        "reward_charts": metric_charts(metrics.get("reward", []), REWARD_SERIES),
        "reward_summary": metrics.get("reward_summary", {}),
        "min_heldout_pairs": settings.RLHF_MIN_HELDOUT_PAIRS,
        "ppo_summary": metrics.get("ppo_summary", {}),
        "method": round_method(training_round),
        "dpo_steps": metrics.get("dpo", []),
        "dpo_charts": metric_charts(metrics.get("dpo", []), DPO_SERIES),
        "dpo_summary": metrics.get("dpo_summary", {}),
        "win_rate": round_win_rate(training_round),
        "guards": metrics.get("guards"),
        "win_rate_round0": round_win_rate_vs_round0(training_round),
    })


@staff_member_required
@require_GET
def round_status_json(request, round_id: int):
    """The live page's data: stage, progress, timing, latest figures, log lines, chart series."""
    response = JsonResponse(round_status(_round(round_id)))
    response["Cache-Control"] = "no-store"
    return response


@staff_member_required
@require_POST
def round_cancel_view(request, round_id: int):
    training_round = get_object_or_404(TrainingRound, pk=round_id)
    round_cancel(training_round=training_round)
    messages.info(request, f"Cancellation of round {training_round.number} requested.")
    return redirect("feedback:round_detail", round_id=training_round.pk)


@staff_member_required
@require_POST
def round_retry_view(request, round_id: int):
    """Launch a new round with a failed or cancelled round's settings."""
    training_round = get_object_or_404(TrainingRound.objects.select_related("project"), pk=round_id)
    try:
        new = round_retry(training_round=training_round, launched_by=request.user)
    except (RoundError, QueueUnavailable) as exc:
        messages.error(request, f"Round not retried: {exc}")
        return redirect("feedback:round_detail", round_id=training_round.pk)
    messages.success(request, f"Round {new.number} queued with round {training_round.number}'s settings.")
    return redirect("feedback:round_detail", round_id=new.pk)


def _plan_or_error(project: Project, form: RoundSettingsForm):
    """(plan, None) for valid settings, else (None, the form with its errors placed)."""
    if not form.is_valid():
        return None
    try:
        return round_plan(project, form.round_config())
    except RoundError as exc:
        form.add_setting_error(exc.field, exc.message)
        return None


@staff_member_required
def round_launch_page(request, project_id: int):
    """Every setting of a round with its help, and what the round will actually do."""
    project = get_object_or_404(Project, pk=project_id)
    if request.method == "POST":
        form = RoundSettingsForm(request.POST, project=project)
        if form.is_valid():
            try:
                training_round = round_launch(project=project, launched_by=request.user, config=form.round_config())
            except RoundError as exc:
                form.add_setting_error(exc.field, exc.message)
            except QueueUnavailable as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Round {training_round.number} queued.")
                return redirect("feedback:round_detail", round_id=training_round.pk)
        plan = None
        status_code = 400
    else:
        form = RoundSettingsForm(project=project)
        plan = round_plan(project, None)
        status_code = 200
    return render(request, "feedback/studio/launch.html", {
        "project": project, "form": form, "plan": plan, "running": running_round(project),
    }, status=status_code)


@staff_member_required
@require_GET
def round_plan_partial(request, project_id: int):
    """The plan for the settings in the query string (htmx swaps it in as the form changes)."""
    project = get_object_or_404(Project, pk=project_id)
    form = RoundSettingsForm(request.GET, project=project)
    plan = _plan_or_error(project, form)
    return render(request, "feedback/studio/_plan.html", {"project": project, "plan": plan, "form": form})


def export_response(checkpoint: Checkpoint) -> StreamingHttpResponse:
    """A policy checkpoint as a streamed .tar download (shared by the studio and the API)."""
    filename, chunks = checkpoint_export_stream(checkpoint)
    response = StreamingHttpResponse(chunks, content_type="application/x-tar")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@staff_member_required
@require_GET
def checkpoint_export_view(request, project_id: int, checkpoint_id: int):
    """Download a policy as a Hugging Face model folder (.tar): merged weights, tokenizer, model card."""
    checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id, project_id=project_id, kind=Checkpoint.Kind.POLICY)
    try:
        return export_response(checkpoint)
    except FieldError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
        return redirect("feedback:checkpoints", project_id=project_id)


@staff_member_required
def checkpoints_page(request, project_id: int):
    """Lineage, metrics, size and hash of every checkpoint; promote, roll back, and the history."""
    project = get_object_or_404(Project, pk=project_id)
    return _checkpoints_render(request, project)


def _checkpoints_render(request, project, *, form=None, form_for=None, status=200):
    context = {"project": project, "active": active_policy(project), **checkpoints_overview(project),
               "form": CheckpointActionForm(), "error_form": form, "error_for": form_for}
    return render(request, "feedback/studio/checkpoints.html", context, status=status)


@staff_member_required
@require_POST
def checkpoint_promote_view(request, project_id: int, checkpoint_id: int):
    project = get_object_or_404(Project, pk=project_id)
    checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id, project=project)
    form = CheckpointActionForm(request.POST)
    if form.is_valid():
        try:
            checkpoint_promote(checkpoint=checkpoint, user=request.user, reason=form.cleaned_data["reason"],
                               reason_required=True)
        except FieldError as exc:
            form.add_error("reason" if exc.field == "reason" else None, exc.message)
        else:
            messages.success(request, f"{checkpoint.name} is now the active policy.")
            return redirect("feedback:checkpoints", project_id=project.pk)
    return _checkpoints_render(request, project, form=form, form_for=f"promote-{checkpoint.pk}", status=400)


@staff_member_required
@require_POST
def checkpoint_rollback_view(request, project_id: int):
    project = get_object_or_404(Project, pk=project_id)
    form = CheckpointActionForm(request.POST)
    if form.is_valid():
        try:
            event = checkpoint_rollback(project=project, user=request.user, reason=form.cleaned_data["reason"],
                                        reason_required=True)
        except FieldError as exc:
            form.add_error("reason" if exc.field == "reason" else None, exc.message)
        else:
            messages.success(request, f"Rolled back: {event.checkpoint.name} is the active policy again.")
            return redirect("feedback:checkpoints", project_id=project.pk)
    return _checkpoints_render(request, project, form=form, form_for="rollback", status=400)


@staff_member_required
def playground(request, project_id: int):
    """One prompt, two checkpoints, answers side by side (streamed by playground.js)."""
    project = get_object_or_404(Project, pk=project_id)
    return render(request, "feedback/studio/playground.html", {
        "project": project, "form": PlaygroundForm(project=project),
    })


@staff_member_required
@require_POST
def playground_stream_view(request, project_id: int):
    """Both answers as newline-delimited JSON events, written as the tokens are drawn."""
    project = get_object_or_404(Project, pk=project_id)
    form = PlaygroundForm(request.POST, project=project)
    if not form.is_valid():
        return JsonResponse({"errors": {f: [str(e) for e in errs] for f, errs in form.errors.items()}}, status=400)
    d = form.cleaned_data
    events = playground_stream(
        project=project, checkpoint_a=form.checkpoints[d["checkpoint_a"]], checkpoint_b=form.checkpoints[d["checkpoint_b"]],
        messages=form.prompt_messages(), params=form.params(),
        prompt=form.prompts.get(d["prompt_id"]) if d.get("prompt_id") else None,
    )
    response = StreamingHttpResponse((json.dumps(e) + "\n" for e in events), content_type="application/x-ndjson")
    # No buffering on the way (nginx honours this header), so each piece leaves at once.
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response


@staff_member_required
@require_POST
def playground_send_view(request, project_id: int):
    """Put the pair just generated in the annotators' queue."""
    project = get_object_or_404(Project, pk=project_id)
    try:
        comparison = playground_pair_send(project=project, pair=request.POST.get("pair", ""))
    except FieldError as exc:
        return JsonResponse({"errors": exc.as_dict()}, status=400)
    return JsonResponse({"comparison": comparison.pk, "status": comparison.status,
                         "message": f"Comparison {comparison.pk} is in the annotators' queue."})


@staff_member_required
@require_POST
def round_review_view(request, round_id: int):
    """Promote or discard a round its degeneration guards held back."""
    training_round = get_object_or_404(TrainingRound, pk=round_id)
    try:
        round_review(training_round=training_round, decision=request.POST.get("decision", ""),
                     user=request.user, reason=request.POST.get("reason", "")[:500])
    except FieldError as exc:
        messages.error(request, f"Not reviewed: {exc}")
    else:
        done = {"promote": "its policy is now active", "discard": "discarded"}[request.POST["decision"]]
        messages.success(request, f"Round {training_round.number}: {done}.")
    return redirect("feedback:round_detail", round_id=training_round.pk)
