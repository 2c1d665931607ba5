"""Serializers: validate input and shape output; no business logic."""
from rest_framework import serializers

from feedback.models import Checkpoint, Comparison, Project, TrainingRound, Vote


class ProjectSerializer(serializers.ModelSerializer):
    """A project and its settings."""

    generation_settings = serializers.DictField(required=False)
    votes_per_comparison = serializers.IntegerField(required=False, min_value=1, max_value=100)

    class Meta:
        model = Project
        fields = ["id", "name", "guidelines", "policy_base_model", "reward_base_model", "generation_settings",
                  "votes_per_comparison", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_generation_settings(self, value: dict) -> dict:
        from training.config import ConfigError, GenerationConfig, config_from_dict

        try:
            config_from_dict(GenerationConfig, value)
        except ConfigError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def _validate_model_path(self, value: str) -> str:
        from pathlib import Path

        try:
            found = not value or Path(value, "config.json").is_file()
        except (OSError, ValueError):  # too long, NUL bytes, ...
            found = False
        if not found:
            raise serializers.ValidationError("must be a local model folder containing config.json (no hub ids)")
        return value

    validate_policy_base_model = _validate_model_path
    validate_reward_base_model = _validate_model_path


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
    """A stored vote (choice in terms of the comparison's sample A/B)."""

    class Meta:
        model = Vote
        fields = ["id", "comparison", "choice", "strength", "rationale", "left_sample", "time_spent_ms",
                  "idempotency_key", "created_at"]


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
