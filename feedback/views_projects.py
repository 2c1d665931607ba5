"""Studio pages for projects and people: create and edit projects, upload prompts and
pairs, sample comparisons, archive, export, members, annotator accounts, the queue.

Thin views: forms check shapes, services decide, selectors read.
"""
import secrets
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from feedback.decorators import staff_member_required
from feedback.api.parsing import parse_rows
from feedback.forms_projects import AnnotatorCreateForm, BatchForm, MemberAddForm, ProjectForm, UploadForm
from feedback.models import Comparison, Job, Project
from feedback.rendering import render_markdown
from feedback.selectors.checkpoints import active_policy
from feedback.selectors.progress import project_counts
from feedback.selectors.projects import project_members
from feedback.selectors.rounds import round_history, round_history_chart
from feedback.selectors.queue import QUEUE_PAGE_ROWS, queue_counts, queue_rows
from feedback.services.annotators import AnnotatorError, annotator_create, annotator_password_reset
from feedback.services.comparisons import comparison_requeue, comparison_retire
from feedback.services.errors import FieldError, RowError
from feedback.services.exports import EXPORT_FORMATS
from feedback.services.jobs import job_batch_create, job_export_create
from feedback.services.runs import QueueUnavailable
from feedback.services.projects import (
    comparisons_import,
    comparisons_preview,
    membership_add,
    membership_remove,
    project_archive,
    project_create,
    project_policy_setup,
    project_setup_pending,
    project_unarchive,
    project_update,
    prompts_import,
    prompts_preview,
)

UPLOAD_SESSION_KEY = "studio_uploads"
JOB_FINAL = (Job.Status.DONE, Job.Status.FAILED, Job.Status.CANCELLED)


def _project(project_id: int) -> Project:
    return get_object_or_404(Project, pk=project_id)


def _service_error_on_form(form, exc: FieldError) -> None:
    """Show a service's error on the field it names (or above the form when no field fits)."""
    field = form.field_for(exc.field) if hasattr(form, "field_for") else (exc.field if exc.field in form.fields else None)
    form.add_error(field, exc.message if field else str(exc))


@staff_member_required
def projects_list(request):
    projects = [{"project": p, "counts": project_counts(p), "active_policy": active_policy(p)}
                for p in Project.objects.order_by("archived_at", "name")]
    return render(request, "feedback/studio/projects.html", {"projects": projects})


@staff_member_required
def project_new(request):
    form = ProjectForm(request.POST or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            preview = render_markdown(form.cleaned_data["guidelines"])
        else:
            try:
                project, job = project_create(data=form.project_data(), user=request.user)
            except FieldError as exc:
                _service_error_on_form(form, exc)
            except QueueUnavailable as exc:
                # The project is saved; only its set-up job could not be queued.
                project = Project.objects.get(name__iexact=form.project_data()["name"].strip())
                messages.error(request, f"Project {project.name} created, but round 0 is not being prepared: {exc}. "
                                        "Press “Prepare round 0 again” on its page.")
                return redirect("feedback:studio_project", project_id=project.pk)
            else:
                note = " Preparing the round-0 policy in the background." if job else " Round 0 is registered."
                messages.success(request, f"Project {project.name} created.{note}")
                return redirect("feedback:studio_project", project_id=project.pk)
    return render(request, "feedback/studio/project_form.html", {"form": form, "preview": preview, "project": None})


@staff_member_required
def project_settings(request, project_id: int):
    project = _project(project_id)
    form = (ProjectForm(request.POST, key_set=bool(project.generation_api_key)) if request.method == "POST"
            else ProjectForm.for_project(project))
    preview = None
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            preview = render_markdown(form.cleaned_data["guidelines"])
        else:
            try:
                project_update(project=project, data=form.project_data(), user=request.user)
            except FieldError as exc:
                _service_error_on_form(form, exc)
            except QueueUnavailable as exc:
                messages.error(request, f"Settings saved, but round 0 is not being prepared: {exc}.")
                return redirect("feedback:studio_project", project_id=project.pk)
            else:
                messages.success(request, "Settings saved.")
                return redirect("feedback:studio_project", project_id=project.pk)
    return render(request, "feedback/studio/project_form.html", {"form": form, "preview": preview, "project": project})


@staff_member_required
def project_detail(request, project_id: int):
    project = _project(project_id)
    # leaderboard recomputes are housekeeping: the leaderboard page shows them
    jobs = Job.objects.filter(project=project).exclude(kind=Job.Kind.RATINGS).order_by("-id")[:10]
    history = round_history(project)
    return render(request, "feedback/studio/project_detail.html", {
        "history": history, "history_chart": round_history_chart(history),
        "project": project,
        "counts": project_counts(project),
        "active_policy": active_policy(project),
        "setup_pending": project_setup_pending(project),
        "jobs": jobs,
        "export_formats": EXPORT_FORMATS,
        "batch_form": BatchForm(),
    })


@staff_member_required
@require_POST
def project_archive_view(request, project_id: int):
    project = _project(project_id)
    if request.POST.get("archive") == "0":
        project_unarchive(project=project)
        messages.success(request, f"{project.name} is back: annotators see it and it takes rounds again.")
    else:
        project_archive(project=project)
        messages.success(request, f"{project.name} is archived: hidden from annotators, no new rounds or batches.")
    return redirect("feedback:studio_project", project_id=project.pk)


@staff_member_required
@require_POST
def project_setup_view(request, project_id: int):
    """Retry preparing the round-0 policy (after a failed set-up job)."""
    project = _project(project_id)
    try:
        job = project_policy_setup(project=project, user=request.user)
    except (FieldError, OSError, QueueUnavailable) as exc:
        messages.error(request, f"Round 0 not prepared: {exc}")
    else:
        messages.success(request, "Preparing the round-0 policy." if job else "Round 0 is registered.")
    return redirect("feedback:studio_project", project_id=project.pk)


@staff_member_required
@require_POST
def project_batch(request, project_id: int):
    project = _project(project_id)
    form = BatchForm(request.POST)
    if form.is_valid():
        try:
            job = job_batch_create(project=project, data=dict(form.cleaned_data), user=request.user)
        except (FieldError, QueueUnavailable) as exc:
            messages.error(request, f"No batch: {exc}")
        else:
            messages.success(request, f"Sampling comparisons: job #{job.pk}.")
            return redirect(f"{reverse('feedback:studio_project', args=[project.pk])}#job-{job.pk}")
    else:
        messages.error(request, "No batch: " + "; ".join(f"{f}: {' '.join(e)}" for f, e in form.errors.items()))
    return redirect("feedback:studio_project", project_id=project.pk)


@staff_member_required
@require_POST
def project_export_job(request, project_id: int):
    """Write an export file on the worker; the project page links the file when it is done."""
    project = _project(project_id)
    try:
        job = job_export_create(project=project, params={"format": request.POST.get("format", "")},
                                user=request.user)
    except (FieldError, ValueError, QueueUnavailable) as exc:
        messages.error(request, f"No export: {exc}")
    else:
        messages.success(request, f"Writing the export: job #{job.pk}.")
    return redirect("feedback:studio_project", project_id=project.pk)


# --- uploads: file → preview → confirm (all or nothing) -------------------------------

UPLOAD_KEEP_S = 24 * 3600


def _upload_folder():
    """Where previewed files wait for their confirmation; ones abandoned for a day are removed."""
    folder = settings.DATA_DIR / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - UPLOAD_KEEP_S
    for stale in folder.iterdir():
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except FileNotFoundError:  # another request removed it first
            pass
    return folder


def _preview_rows(kind: str, rows, holdout_percent: int, tags: list[str]) -> dict:
    preview = prompts_preview if kind == "prompts" else comparisons_preview
    return preview(rows=rows, holdout_percent=holdout_percent, tags=tags)


@staff_member_required
def project_prompts(request, project_id: int):
    """Upload a file; a valid one is kept aside and previewed, an invalid one shows its error."""
    project = _project(project_id)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        body = b""
        if upload.size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            form.add_error("file", f"is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)} MiB")
        else:
            body = upload.read()
        if form.is_valid():
            kind, holdout, tags = form.cleaned_data["kind"], form.cleaned_data["holdout_percent"], form.tag_list()
            try:
                preview = _preview_rows(kind, parse_rows(body, form.content_type()), holdout, tags)
            except RowError as exc:
                form.add_error("file", f"Nothing imported. Row {exc.row}, {exc.field}: {exc.message}"
                               if exc.row else f"Nothing imported. {exc.field}: {exc.message}")
            except FieldError as exc:
                _service_error_on_form(form, exc)
            else:
                token = secrets.token_urlsafe(16)
                (_upload_folder() / token).write_bytes(body)
                uploads = request.session.get(UPLOAD_SESSION_KEY, {})
                uploads[token] = {"project": project.pk, "kind": kind, "content_type": form.content_type(),
                                  "holdout_percent": holdout, "tags": tags, "filename": upload.name}
                request.session[UPLOAD_SESSION_KEY] = uploads
                return render(request, "feedback/studio/upload_preview.html", {
                    "project": project, "preview": preview, "token": token, "kind": kind,
                    "filename": upload.name, "more": max(preview["count"] - len(preview["rows"]), 0),
                })
    return render(request, "feedback/studio/prompts.html", {
        "project": project, "form": form, "counts": project_counts(project), "batch_form": BatchForm(),
    })


@staff_member_required
@require_POST
def project_prompts_confirm(request, project_id: int):
    """Import the previewed file, or drop it (`cancel`)."""
    project = _project(project_id)
    token = request.POST.get("token", "")
    uploads = request.session.get(UPLOAD_SESSION_KEY, {})
    pending = uploads.pop(token, None)
    request.session[UPLOAD_SESSION_KEY] = uploads
    if pending is None or pending["project"] != project.pk or not token.replace("-", "").replace("_", "").isalnum():
        messages.error(request, "That upload is gone (already imported or cancelled); upload the file again.")
        return redirect("feedback:studio_prompts", project_id=project.pk)
    path = _upload_folder() / token
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        messages.error(request, "That upload is gone; upload the file again.")
        return redirect("feedback:studio_prompts", project_id=project.pk)
    finally:
        path.unlink(missing_ok=True)
    if "cancel" in request.POST:
        messages.info(request, f"{pending['filename']}: nothing imported.")
        return redirect("feedback:studio_prompts", project_id=project.pk)
    importer = (lambda **kw: len(prompts_import(**kw))) if pending["kind"] == "prompts" else comparisons_import
    try:
        imported = importer(project=project, rows=parse_rows(body, pending["content_type"]),
                           source=f"upload:{pending['filename']}"[:200], holdout_percent=pending["holdout_percent"],
                           tags=pending["tags"])
    except FieldError as exc:  # the rows were checked at preview; only a changed project could fail now
        messages.error(request, f"Nothing imported: {exc}")
    else:
        what = "prompts" if pending["kind"] == "prompts" else "pairs"
        messages.success(request, f"Imported {imported} {what} from {pending['filename']}.")
    return redirect("feedback:studio_prompts", project_id=project.pk)


# --- people -------------------------------------------------------------------------

@staff_member_required
def project_members_view(request, project_id: int):
    project = _project(project_id)
    form = MemberAddForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            membership_add(project=project, user=form.cleaned_data["user"], role=form.cleaned_data["role"])
        except FieldError as exc:
            _service_error_on_form(form, exc)
        else:
            messages.success(request, f"{form.cleaned_data['user'].get_username()} added to {project.name}.")
            return redirect("feedback:studio_members", project_id=project.pk)
    return render(request, "feedback/studio/members.html", {
        "project": project, "form": form, "members": project_members(project),
    })


@staff_member_required
@require_POST
def project_member_remove(request, project_id: int, user_id: int):
    project = _project(project_id)
    user = get_object_or_404(get_user_model(), pk=user_id)
    if membership_remove(project=project, user=user):
        messages.success(request, f"{user.get_username()} removed from {project.name}; their votes stay.")
    return redirect("feedback:studio_members", project_id=project.pk)


def _credentials_page(request, user, password: str, token: str, created: bool):
    response = render(request, "feedback/studio/annotator_credentials.html", {
        "annotator": user, "password": password, "token": token, "created": created,
    })
    add_never_cache_headers(response)  # the secrets are shown once; no cache keeps them
    return response


@staff_member_required
def annotators(request):
    form = AnnotatorCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user, password, token = annotator_create(username=form.cleaned_data["username"],
                                                     projects=list(form.cleaned_data["projects"]))
        except AnnotatorError as exc:
            _service_error_on_form(form, exc)
        else:
            return _credentials_page(request, user, password, token, created=True)
    people = (get_user_model().objects.filter(is_staff=False).order_by("username")
              .prefetch_related("memberships__project"))
    return render(request, "feedback/studio/annotators.html", {"form": form, "people": people})


@staff_member_required
@require_POST
def annotator_reset(request, user_id: int):
    user = get_object_or_404(get_user_model(), pk=user_id, is_staff=False)
    password, token = annotator_password_reset(user=user)
    return _credentials_page(request, user, password, token, created=False)


# --- queue ----------------------------------------------------------------------------

@staff_member_required
def project_queue(request, project_id: int):
    project = _project(project_id)
    status = request.GET.get("status", "")
    if status not in ("", *Comparison.Status.values):
        status = ""
    only = request.GET.get("only", "")
    if only not in ("", "reserved", "skipped", "flagged"):
        only = ""
    before = request.GET.get("before", "")
    before_id = int(before) if before.isdigit() else None
    rows = queue_rows(project, status=status, only=only, before_id=before_id)
    return render(request, "feedback/studio/queue.html", {
        "project": project, "counts": queue_counts(project), "rows": rows, "status": status, "only": only,
        "statuses": Comparison.Status.choices, "gold_choices": Comparison.Choice.choices,
        "next_before": rows[-1]["comparison"].pk if len(rows) == QUEUE_PAGE_ROWS else None,
    })


@staff_member_required
@require_POST
def comparison_action(request, comparison_id: int, action: str):
    comparison = get_object_or_404(Comparison, pk=comparison_id)
    if action == "requeue":
        dropped = comparison_requeue(comparison=comparison)
        messages.success(request, f"Comparison {comparison.pk} is offered again ({dropped} skip(s) or expired "
                                  "reservation(s) dropped).")
    elif action == "retire":
        comparison_retire(comparison=comparison)
        messages.success(request, f"Comparison {comparison.pk} retired: no longer offered or exported.")
    else:
        raise Http404("no such action")
    back = request.POST.get("next", "")
    queue = reverse("feedback:studio_queue", args=[comparison.project_id])
    return redirect(back if back.startswith(queue) else queue)


# --- jobs -----------------------------------------------------------------------------

@staff_member_required
@require_GET
def job_status(request, job_id: int):
    """A job's progress for the page's poller."""
    job = get_object_or_404(Job, pk=job_id)
    data = {
        "id": job.pk, "kind": job.kind, "status": job.status, "status_display": job.get_status_display(),
        "step": job.progress_step, "total": job.progress_total, "final": job.status in JOB_FINAL,
        "result": job.result, "error": job.error,
        "download": reverse("api:job-download", args=[job.pk])
        if job.kind == Job.Kind.EXPORT and job.status == Job.Status.DONE and job.file_path else None,
    }
    response = JsonResponse(data)
    add_never_cache_headers(response)
    return response
