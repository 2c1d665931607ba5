"""Serializers: validate input and shape output; no business logic."""
from rest_framework import serializers

from django.contrib.auth import get_user_model

from feedback.models import Checkpoint, Comparison, Job, Project, ProjectMembership, TrainingRound, Vote


class ProjectSerializer(serializers.ModelSerializer):
    """A project and all its settings, as staff see it (input is checked by the project service).

    `setup_job` is the newest job preparing the round-0 policy; `ready` says whether the
    project has an active policy to sample from. `generation_api_key` is write-only ("" clears
    it); reads say only whether one is set (`generation_api_key_set`).
    """

    generation_settings = serializers.DictField(required=False)
    generation_backend = serializers.DictField(
        required=False, help_text="{} or {kind: local}; or {kind: openai, base_url (…/v1), model, concurrency, "
                                  "timeout_s, max_retries} for an OpenAI-compatible server.")
    generation_api_key = serializers.CharField(required=False, allow_blank=True, write_only=True,
                                               help_text="The server's API key; never returned.")
    generation_api_key_set = serializers.SerializerMethodField()
    guard_settings = serializers.DictField(required=False)
    votes_per_comparison = serializers.IntegerField(required=False, min_value=1, max_value=100)
    reveal_models = serializers.BooleanField(required=False)
    eval_parent_share = serializers.FloatField(required=False, min_value=0, max_value=1)
    eval_round0_share = serializers.FloatField(required=False, min_value=0, max_value=1)
    setup_job = serializers.SerializerMethodField()
    ready = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "name", "guidelines", "policy_base_model", "reward_base_model", "generation_settings",
                  "generation_backend", "generation_api_key", "generation_api_key_set", "guard_settings",
                  "votes_per_comparison", "reveal_models", "eval_parent_share", "eval_round0_share",
                  "archived_at", "created_at", "setup_job", "ready"]
        read_only_fields = ["id", "archived_at", "created_at"]

    def get_setup_job(self, project) -> int | None:
        return Job.objects.filter(project=project, kind=Job.Kind.SETUP).order_by("-id").values_list("id", flat=True).first()

    def get_generation_api_key_set(self, project) -> bool:
        return bool(project.generation_api_key)

    def get_ready(self, project) -> bool:
        return Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY, is_active=True).exists()


class ProjectAnnotatorSerializer(serializers.ModelSerializer):
    """A project as an annotator sees it: what to do, never how the server runs it (no model paths)."""

    class Meta:
        model = Project
        fields = ["id", "name", "guidelines", "votes_per_comparison", "created_at"]
        read_only_fields = fields


class MembershipSerializer(serializers.ModelSerializer):
    """A member of a project."""

    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ProjectMembership
        fields = ["user", "username", "role", "created_at"]
        read_only_fields = fields


class MembershipInSerializer(serializers.Serializer):
    """Who to add: `username` or `user` (an id), and the role."""

    username = serializers.CharField(required=False, max_length=150)
    user = serializers.IntegerField(required=False, min_value=1)
    role = serializers.ChoiceField(choices=ProjectMembership.Role.choices, default=ProjectMembership.Role.ANNOTATOR)

    def validate(self, data):
        User = get_user_model()
        if "user" in data:
            user = User.objects.filter(pk=data["user"]).first()
            field = "user"
        elif "username" in data:
            user = User.objects.filter(username=data["username"]).first()
            field = "username"
        else:
            raise serializers.ValidationError({"username": "give username or user"})
        if user is None:
            raise serializers.ValidationError({field: "no such user"})
        return {"user": user, "role": data["role"]}


class CheckpointSerializer(serializers.ModelSerializer):
    """A registered checkpoint."""

    class Meta:
        model = Checkpoint
        fields = ["id", "kind", "name", "path", "sha256", "parent", "produced_by", "metrics", "is_active", "created_at"]


class RoundSerializer(serializers.ModelSerializer):
    """A training round with its progress and metrics."""

    class Meta:
        model = TrainingRound
        fields = ["id", "number", "status", "stage", "config", "snapshot", "parent_policy", "reward_checkpoint",
                  "policy_checkpoint", "metrics", "progress_step", "progress_total", "cancel_requested", "error",
                  "attempts", "heartbeat_at", "timings", "created_at", "started_at", "finished_at"]


class RoundReviewSerializer(serializers.Serializer):
    """A staff decision on a round held for review."""

    decision = serializers.ChoiceField(choices=["promote", "discard"])
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class RoundLaunchSerializer(serializers.Serializer):
    """The config of a round to launch; validated in full by the service."""

    config = serializers.DictField(required=False, default=dict)


class NextComparisonSerializer(serializers.Serializer):
    """The comparison handed to the caller; `a`/`b` are in the order to show them."""

    assignment_id = serializers.IntegerField()
    comparison_id = serializers.IntegerField()
    prompt = serializers.ListField(child=serializers.DictField())
    responses = serializers.ListField(child=serializers.DictField())
    reserved_until = serializers.DateTimeField()


class VoteInSerializer(serializers.Serializer):
    """A vote: `a`/`b` refer to the response ids returned by `next`."""

    choice = serializers.ChoiceField(choices=["a", "b", "tie", "both_bad"])
    a = serializers.IntegerField(required=False, help_text="response id shown as a (from next)")
    b = serializers.IntegerField(required=False, help_text="response id shown as b (from next)")
    strength = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=3)
    rationale = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    idempotency_key = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")


class VoteSerializer(serializers.ModelSerializer):
    """A stored vote. `choice` is in the terms the caller used (a/b as `next` showed them);
    `stored_choice` is in the comparison's own sample A/B terms, as exports use it."""

    choice = serializers.SerializerMethodField()
    stored_choice = serializers.CharField(source="choice", read_only=True)

    class Meta:
        model = Vote
        fields = ["id", "comparison", "choice", "stored_choice", "strength", "rationale", "left_sample",
                  "time_spent_ms", "idempotency_key", "history", "changed_at", "created_at"]

    def get_choice(self, vote) -> str:
        from feedback.selectors.votes import vote_shown_choice

        return vote_shown_choice(vote)


class ComparisonSerializer(serializers.ModelSerializer):
    """A comparison as stored."""

    class Meta:
        model = Comparison
        fields = ["id", "prompt", "sample_a", "sample_b", "batch", "round", "votes_needed", "status"]


class JobSerializer(serializers.ModelSerializer):
    """A background job and its outcome; `download` is set for finished export files."""

    download = serializers.SerializerMethodField()

    class Meta:
        from feedback.models import Job

        model = Job
        fields = ["id", "kind", "project", "checkpoint", "params", "status", "stage", "progress_step",
                  "progress_total", "cancel_requested", "result", "error", "attempts", "heartbeat_at", "created_at",
                  "started_at", "finished_at", "download"]

    def get_download(self, job) -> str | None:
        if job.kind == "export" and job.status == "done" and job.file_path:
            return f"/api/v1/jobs/{job.pk}/download/"
        return None
