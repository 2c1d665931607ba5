"""Django admin registrations for every model."""
from django.contrib import admin

from feedback.models import (
    Assignment,
    Checkpoint,
    Comparison,
    ComparisonFlag,
    Job,
    Project,
    ProjectMembership,
    Prompt,
    Sample,
    TrainingRound,
    Vote,
)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Projects and their settings."""

    list_display = ("name", "votes_per_comparison", "reveal_models", "archived_at", "created_at")
    search_fields = ("name",)
    # the generation server's key is set on the studio's settings page or the API, never shown
    exclude = ("generation_api_key",)


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(admin.ModelAdmin):
    """Who may annotate which project (also managed on the studio's members page)."""

    list_display = ("user", "project", "role", "created_at")
    list_filter = ("project", "role")
    search_fields = ("user__username",)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    """Prompts, filterable by project and split."""

    list_display = ("id", "project", "split", "short_text", "source")
    list_filter = ("project", "split")
    search_fields = ("messages",)

    @admin.display(description="prompt")
    def short_text(self, obj):
        return obj.text[:100]


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    """Policy and reward checkpoints; the active flag is changed through the studio or API."""

    list_display = ("name", "project", "kind", "is_active", "sha256", "created_at")
    list_filter = ("project", "kind", "is_active")
    readonly_fields = ("sha256", "path", "is_active")


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    """Generated or imported responses."""

    list_display = ("id", "prompt", "checkpoint", "model_name", "token_count", "finished")
    list_filter = ("checkpoint__project",)
    raw_id_fields = ("prompt", "checkpoint")


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    """Pairs to be judged."""

    list_display = ("id", "project", "batch", "status", "votes_needed")
    list_filter = ("project", "status", "batch")
    raw_id_fields = ("prompt", "sample_a", "sample_b", "round")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    """Who holds which comparison, until when."""

    list_display = ("id", "comparison", "annotator", "status", "reserved_until")
    list_filter = ("status",)
    raw_id_fields = ("comparison",)


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    """Votes as cast."""

    list_display = ("id", "comparison", "annotator", "choice", "strength", "time_spent_ms", "created_at", "changed_at")
    list_filter = ("choice", "comparison__project")
    raw_id_fields = ("comparison", "left_sample")
    readonly_fields = ("history", "changed_at")


@admin.register(ComparisonFlag)
class ComparisonFlagAdmin(admin.ModelAdmin):
    """Comparisons annotators reported as harmful, broken or unclear."""

    list_display = ("id", "comparison", "reason", "annotator", "note", "created_at")
    list_filter = ("reason", "comparison__project")
    raw_id_fields = ("comparison",)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Background jobs (batches, generations, export files, round-0 setup); start and cancel them in the studio."""

    list_display = ("id", "kind", "project", "status", "stage", "progress_step", "progress_total", "created_at",
                    "finished_at")
    list_filter = ("kind", "status", "project")
    readonly_fields = ("params", "result", "timings", "error", "traceback", "claimed_by", "heartbeat_at")


@admin.register(TrainingRound)
class TrainingRoundAdmin(admin.ModelAdmin):
    """Training rounds; launch and cancel them in the studio."""

    list_display = ("project", "number", "status", "progress_step", "progress_total", "created_at", "finished_at")
    list_filter = ("project", "status")
    readonly_fields = ("snapshot", "metrics", "timings", "error")
