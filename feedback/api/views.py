"""REST API under /api/v1/: thin views that validate, call one service and serialize."""

from django.core.exceptions import RequestDataTooBig
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes, throttle_classes
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from feedback.api.parsing import object_body, parse_rows, too_big_message
from feedback.api.permissions import IsStaff
from feedback.api.serializers import (
    CheckpointSerializer,
    JobSerializer,
    MembershipInSerializer,
    MembershipSerializer,
    NextComparisonSerializer,
    ProjectAnnotatorSerializer,
    ProjectSerializer,
    RoundLaunchSerializer,
    RoundReviewSerializer,
    RoundSerializer,
    VoteInSerializer,
    VoteSerializer,
)
from feedback.models import Assignment, Checkpoint, Comparison, Job, Project, TrainingRound, Vote
from feedback.services.jobs import (
    generate_is_small,
    generate_now,
    generate_params,
    job_batch_create,
    job_cancel,
    job_export_create,
    job_generate_create,
)
from feedback.services.assignment import assignment_next
from feedback.services.checkpoints import checkpoint_promote, checkpoint_rollback
from feedback.services.exports import EXPORT_FORMATS, export_options, export_lines_for, jsonl_chunks
from feedback.services.errors import FieldError, RowError
from feedback.selectors.projects import project_members, projects_for_user
from feedback.services.projects import (
    ProjectError,
    comparisons_import,
    membership_add,
    membership_remove,
    project_archive,
    project_create,
    project_unarchive,
    project_update,
    prompts_import,
)
from feedback.services.rounds import round_cancel, round_launch, round_retry, round_review
from feedback.services.votes import VoteConflict, vote_submit


def _import_options(request) -> dict:
    """`?holdout_percent=N&tags=a,b`: what the studio's upload form offers, for scripts too."""
    raw = request.query_params.get("holdout_percent", "0")
    try:
        holdout = int(raw)
    except ValueError:
        raise ProjectError("holdout_percent", "must be an integer between 0 and 100") from None
    tags = [t for t in request.query_params.get("tags", "").split(",") if t.strip()]
    return {"holdout_percent": holdout, "tags": tags}


class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Projects: annotators read the ones they belong to (without server settings); staff
    see all, create, change, archive and manage members."""

    queryset = Project.objects.none()  # for the schema; get_queryset scopes to the caller
    serializer_class = ProjectSerializer
    throttle_scope = None  # set per action: imports, exports

    def get_permissions(self):
        if self.action in ("list", "retrieve", "next_comparison"):
            return [IsAuthenticated()]
        return [IsStaff()]

    def get_queryset(self):
        return projects_for_user(self.request.user)

    def get_serializer_class(self):
        if self.request is not None and not self.request.user.is_staff:
            return ProjectAnnotatorSerializer
        return ProjectSerializer

    def create(self, request, *args, **kwargs):
        """Create a project; its round-0 policy is registered now, or by the `setup_job` when
        the base must be converted first (poll /jobs/{setup_job}/)."""
        project, _ = project_create(data=request.data, user=request.user)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        """Change settings (PUT and PATCH alike change only the fields sent)."""
        project, _ = project_update(project=self.get_object(), data=request.data, user=request.user)
        return Response(ProjectSerializer(project).data)

    @extend_schema(request=None, responses={200: ProjectSerializer})
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Hide the project from annotators and refuse new rounds and batches."""
        return Response(ProjectSerializer(project_archive(project=self.get_object())).data)

    @extend_schema(request=None, responses={200: ProjectSerializer})
    @action(detail=True, methods=["post"])
    def unarchive(self, request, pk=None):
        return Response(ProjectSerializer(project_unarchive(project=self.get_object())).data)

    @extend_schema(request=MembershipInSerializer, responses={200: MembershipSerializer(many=True),
                                                            201: MembershipSerializer})
    @action(detail=True, methods=["get", "post"])
    def members(self, request, pk=None):
        """List members, or add one (`username` or `user`, `role`); adding again changes the role."""
        project = self.get_object()
        if request.method == "GET":
            return Response(MembershipSerializer(project_members(project), many=True).data)
        body = MembershipInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership, created = membership_add(project=project, **body.validated_data)
        return Response(MembershipSerializer(membership).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>\d+)")
    def member_remove(self, request, pk=None, user_id=None):
        """Take a user off the project; 404 when they were not a member."""
        from django.contrib.auth import get_user_model

        user = get_object_or_404(get_user_model(), pk=user_id)
        if not membership_remove(project=self.get_object(), user=user):
            return Response({"user": "is not a member of this project"}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _import(self, request, importer, status_code=status.HTTP_201_CREATED):
        project = self.get_object()
        options = _import_options(request)
        try:
            body = request.body
        except RequestDataTooBig:
            return Response(RowError(0, "body", too_big_message()).as_dict(),
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        imported = importer(project=project, rows=parse_rows(body, request.content_type), **options)
        return Response({"imported": imported}, status=status_code)

    @extend_schema(request={"application/json": OpenApiTypes.ANY, "application/x-ndjson": OpenApiTypes.STR,
                            "text/csv": OpenApiTypes.STR}, responses={201: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="prompts/import", throttle_classes=[ScopedRateThrottle],
            throttle_scope="imports")
    def import_prompts(self, request, pk=None):
        """Import prompts (JSON list, JSONL or CSV); all or nothing."""
        return self._import(request, lambda project, rows, **options: len(prompts_import(
            project=project, rows=rows, source="api", **options)))

    @extend_schema(request={"application/json": OpenApiTypes.ANY, "application/x-ndjson": OpenApiTypes.STR},
                   responses={201: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path="comparisons/import", throttle_classes=[ScopedRateThrottle],
            throttle_scope="imports")
    def import_comparisons(self, request, pk=None):
        """Import pairs written elsewhere; all or nothing."""
        return self._import(request, lambda project, rows, **options: comparisons_import(
            project=project, rows=rows, **options))

    @extend_schema(responses={200: NextComparisonSerializer, 204: None})
    @action(detail=True, methods=["get"], url_path="comparisons/next")
    def next_comparison(self, request, pk=None):
        """Reserve the caller's next comparison (same queue as /annotate/); 204 when none."""
        project = self.get_object()
        assignment = assignment_next(annotator=request.user, project=project)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        c = assignment.comparison
        shown = [c.sample_a, c.sample_b] if assignment.left_is_a else [c.sample_b, c.sample_a]
        data = {
            "assignment_id": assignment.pk,
            "comparison_id": c.pk,
            "prompt": c.prompt.messages,
            "responses": [{"label": label, "id": s.pk, "text": s.text} for label, s in zip("ab", shown)],
            "reserved_until": assignment.reserved_until,
        }
        return Response(NextComparisonSerializer(data).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS)),
            OpenApiParameter("aggregation", str, enum=["majority", "all"]),
            OpenApiParameter("round", int), OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("split", str, enum=["train", "held_out"]), OpenApiParameter("min_agreement", float),
        ],
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], url_path="export", throttle_classes=[ScopedRateThrottle],
            throttle_scope="exports")
    def export(self, request, pk=None):
        """Stream a preference dataset as JSONL (constant memory)."""
        project = self.get_object()
        options = export_options(request.query_params)
        fmt = options["format"]
        rows = export_lines_for(project, options)
        response = StreamingHttpResponse(
            jsonl_chunks(rows), content_type="application/x-ndjson"
        )
        response["Content-Disposition"] = f'attachment; filename="project-{project.pk}-{fmt}.jsonl"'
        return response

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def leaderboard(self, request, pk=None):
        """Bradley–Terry ratings of every checkpoint (round 0 = 1000, Elo scale) with bootstrap 95%
        intervals, votes per model and the win-rate matrix. Answers at once with the last computed
        board; `stale` says new votes arrived, and `job` is the recompute queued for them."""
        from feedback.services.leaderboard import leaderboard_current

        current = leaderboard_current(self.get_object())
        return Response({"stale": current["stale"], "job": current["job"].pk if current["job"] else None,
                         "queue_error": current["queue_error"] or None, "leaderboard": current["result"]})

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def quality(self, request, pk=None):
        """Krippendorff's alpha (project and per round) and per-annotator figures, outliers flagged."""
        from feedback.selectors.quality import project_quality

        return Response(project_quality(self.get_object()))

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["patch"], url_path="quality/settings")
    def quality_settings(self, request, pk=None):
        """Change `gold_rate`, `min_gold_accuracy`, `exclude_flagged`; a bad value is a 400 naming it."""
        from feedback.services.gold import project_quality_settings

        if not isinstance(request.data, dict):
            raise FieldError("body", "must be a JSON object")
        project = project_quality_settings(project=self.get_object(), data=request.data)
        return Response({"gold_rate": project.gold_rate, "min_gold_accuracy": project.min_gold_accuracy,
                         "exclude_flagged": project.exclude_flagged})

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], url_path="batches")
    def batches(self, request, pk=None):
        """Generate a batch of comparisons from the active policy, on the worker; returns a job to poll."""
        job = job_batch_create(project=self.get_object(), data=object_body(request.data), user=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], url_path="exports", throttle_classes=[ScopedRateThrottle],
            throttle_scope="exports")
    def export_job(self, request, pk=None):
        """Write an export to a file on the worker (for large datasets); download it when the job is done."""
        job = job_export_create(project=self.get_object(), params=object_body(request.data), user=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)



@extend_schema(request=VoteInSerializer, responses={201: VoteSerializer, 200: VoteSerializer,
                                                    409: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([IsAuthenticated])
@throttle_classes([ScopedRateThrottle])
def vote_create(request, comparison_id: int):
    """Vote on a comparison the caller fetched with `next`."""
    serializer = VoteInSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    # another project's comparison is answered as if it did not exist
    assignment = (Assignment.objects.select_related("comparison")
                  .filter(comparison_id=comparison_id, annotator=request.user,
                          comparison__project__in=projects_for_user(request.user)).first())
    if assignment is None:
        get_object_or_404(Comparison, pk=comparison_id, project__in=projects_for_user(request.user))
        raise ValidationError({"comparison": "fetch it with comparisons/next/ before voting"})
    comparison = assignment.comparison
    choice = data["choice"]
    shown = [comparison.sample_a_id, comparison.sample_b_id] if assignment.left_is_a else [
        comparison.sample_b_id, comparison.sample_a_id]
    for label, expected in zip("ab", shown):
        if label in data and data[label] != expected:
            raise ValidationError({label: f"response {data[label]} was not shown as {label}; expected {expected}"})
    if choice in ("a", "b"):
        choice = "a" if shown["ab".index(choice)] == comparison.sample_a_id else "b"
    try:
        result = vote_submit(
            annotator=request.user, assignment_id=assignment.pk, choice=choice, strength=data.get("strength"),
            rationale=data.get("rationale", ""), time_spent_ms=data.get("time_spent_ms"),
            idempotency_key=data.get("idempotency_key", ""),
        )
    except VoteConflict as conflict:
        # the stored vote stands; say which one, so the client can show it or change it in time next time
        return Response({"detail": str(conflict), "vote": VoteSerializer(conflict.vote).data},
                        status=status.HTTP_409_CONFLICT)
    return Response(VoteSerializer(result.vote).data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


vote_create.cls.throttle_scope = "votes"


class MyVotesViewSet(viewsets.ReadOnlyModelViewSet):
    """The caller's own votes."""

    serializer_class = VoteSerializer
    permission_classes = [IsAuthenticated]
    queryset = Vote.objects.none()  # for the schema; get_queryset scopes to the caller

    @extend_schema(parameters=[OpenApiParameter("project", int, description="only this project's votes")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        votes = Vote.objects.filter(annotator=self.request.user,
                                    comparison__project__in=projects_for_user(self.request.user))
        project = self.request.query_params.get("project")
        if project is not None:
            if not project.isdigit():
                raise ValidationError({"project": "must be a project id"})
            votes = votes.filter(comparison__project_id=int(project))
        return votes.select_related("comparison").order_by("id")


class RoundViewSet(viewsets.GenericViewSet):
    """Training rounds of a project: launch, list, detail, cancel (staff)."""

    permission_classes = [IsStaff]
    serializer_class = RoundSerializer
    lookup_field = "number"

    def get_queryset(self):
        return TrainingRound.objects.filter(project_id=self.kwargs["project_pk"]).order_by("-number")

    def list(self, request, project_pk=None):
        return Response(RoundSerializer(self.get_queryset(), many=True).data)

    def retrieve(self, request, project_pk=None, number=None):
        return Response(RoundSerializer(get_object_or_404(self.get_queryset(), number=number)).data)

    @extend_schema(request=RoundLaunchSerializer, responses={201: RoundSerializer})
    def create(self, request, project_pk=None):
        project = get_object_or_404(Project, pk=project_pk)
        body = RoundLaunchSerializer(data=object_body(request.data))
        body.is_valid(raise_exception=True)
        training_round = round_launch(project=project, launched_by=request.user, config=body.validated_data["config"])
        return Response(RoundSerializer(training_round).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, project_pk=None, number=None):
        training_round = round_cancel(training_round=get_object_or_404(self.get_queryset(), number=number))
        return Response(RoundSerializer(training_round).data)

    @extend_schema(request=RoundReviewSerializer, responses={200: RoundSerializer})
    @action(detail=True, methods=["post"])
    def review(self, request, project_pk=None, number=None):
        """Promote or discard a round whose degeneration guards held its policy back."""
        body = RoundReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        training_round = round_review(training_round=get_object_or_404(self.get_queryset(), number=number),
                                      user=request.user, **body.validated_data)
        return Response(RoundSerializer(training_round).data)

    @extend_schema(request=None, responses={201: RoundSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, project_pk=None, number=None):
        """Launch a new round with the settings of a failed, cancelled or discarded one."""
        new = round_retry(training_round=get_object_or_404(self.get_queryset(), number=number),
                          launched_by=request.user)
        return Response(RoundSerializer(new).data, status=status.HTTP_201_CREATED)


class CheckpointViewSet(viewsets.GenericViewSet):
    """Checkpoints of a project: list, promote one to active policy (staff)."""

    permission_classes = [IsStaff]
    serializer_class = CheckpointSerializer

    def get_queryset(self):
        return Checkpoint.objects.filter(project_id=self.kwargs["project_pk"])

    def list(self, request, project_pk=None):
        return Response(CheckpointSerializer(self.get_queryset(), many=True).data)

    @extend_schema(request=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def promote(self, request, project_pk=None, pk=None):
        """Make this policy active; an optional `reason` is kept in the project's checkpoint history."""
        checkpoint = get_object_or_404(self.get_queryset(), pk=pk)
        reason = request.data.get("reason", "") if hasattr(request.data, "get") else ""
        if not isinstance(reason, str):
            raise FieldError("reason", "must be a string")
        checkpoint_promote(checkpoint=checkpoint, user=request.user, reason=reason)
        checkpoint.refresh_from_db()
        return Response(CheckpointSerializer(checkpoint).data)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: CheckpointSerializer})
    def rollback(self, request, project_pk=None):
        """Make the previously active policy active again (undoing the last promotion, else
        the active policy's parent); an optional `reason` is kept in the checkpoint history."""
        project = get_object_or_404(Project, pk=project_pk)
        reason = request.data.get("reason", "") if hasattr(request.data, "get") else ""
        if not isinstance(reason, str):
            raise FieldError("reason", "must be a string")
        event = checkpoint_rollback(project=project, user=request.user, reason=reason)
        return Response(CheckpointSerializer(event.checkpoint).data)


@extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT, 202: JobSerializer})
@api_view(["POST"])
@permission_classes([IsStaff])
def checkpoint_generate(request, checkpoint_id: int):
    """A checkpoint's responses to given prompts: inline when small, otherwise a job on the worker."""
    checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id, kind=Checkpoint.Kind.POLICY)
    params = generate_params(object_body(request.data))
    if generate_is_small(params):
        return Response({"checkpoint": checkpoint.pk, "responses": generate_now(checkpoint, params)})
    job = job_generate_create(checkpoint=checkpoint, params=params, user=request.user)
    return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses={(200, "application/x-tar"): OpenApiTypes.BINARY})
@api_view(["GET"])
@permission_classes([IsStaff])
@throttle_classes([ScopedRateThrottle])
def checkpoint_export(request, checkpoint_id: int):
    """A policy checkpoint as a Hugging Face model folder, streamed as a .tar (LoRA merged, model card)."""
    from feedback.views_studio import export_response

    checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id, kind=Checkpoint.Kind.POLICY)
    return export_response(checkpoint)


checkpoint_export.cls.throttle_scope = "exports"


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Background jobs: poll, cancel, download an export file (staff)."""

    permission_classes = [IsStaff]
    serializer_class = JobSerializer
    queryset = Job.objects.all()

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(JobSerializer(job_cancel(job=self.get_object())).data)

    @extend_schema(responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        from django.http import FileResponse

        job = self.get_object()
        if job.kind != Job.Kind.EXPORT or job.status != Job.Status.DONE or not job.file_path:
            raise ValidationError({"job": f"has no file to download (status {job.status})"})
        return FileResponse(open(job.file_path, "rb"), as_attachment=True, content_type="application/x-ndjson")
