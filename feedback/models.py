"""The data model of RLHF Studio (see ../shared/DESIGN.md)."""
from django.conf import settings
from django.db import models
from django.db.models import Q

from feedback.services.validation import GUIDELINES_MAX_CHARS


def default_generation_settings() -> dict:
    return {"max_new_tokens": 96, "temperature": 0.7, "top_p": 1.0}


class Project(models.Model):
    """A model being improved: its prompts, guidelines for annotators and checkpoints."""

    name = models.CharField(max_length=200, unique=True)
    # Shown on every /annotate/ page: bounded (forms, admin and API enforce max_length).
    guidelines = models.TextField(blank=True, max_length=GUIDELINES_MAX_CHARS, help_text="Markdown shown to annotators.")
    policy_base_model = models.CharField(
        max_length=500, blank=True,
        help_text="Path of the round-0 policy (a safetensors folder). Empty: the bundled SmolLM2-135M-Instruct.",
    )
    reward_base_model = models.CharField(
        max_length=500, blank=True,
        help_text="Path of the reward model's base. Empty: the bundled all-MiniLM-L6-v2.",
    )
    generation_settings = models.JSONField(default=default_generation_settings, blank=True)
    generation_backend = models.JSONField(
        default=dict, blank=True,
        help_text="Where batches and the playground sample: {} (local transformers) or an OpenAI-compatible "
                  "server {kind: openai, base_url, model, concurrency, timeout_s, max_retries}.",
    )
    # A secret: never rendered, serialized, logged or copied into a job (services/generation_backend.py).
    generation_api_key = models.CharField(max_length=500, blank=True, default="")
    guard_settings = models.JSONField(
        default=dict, blank=True,
        help_text="This project's degeneration-guard limits (training.config.GuardConfig); a round's own override them.",
    )
    votes_per_comparison = models.PositiveSmallIntegerField(
        default=1, help_text="How many annotators vote on each comparison (overlap)."
    )
    reveal_models = models.BooleanField(
        default=False, help_text="After a vote (never before), show the annotator which model wrote which side.",
    )
    archived_at = models.DateTimeField(
        null=True, blank=True, help_text="Archived projects are hidden from annotators and take no new rounds or batches."
    )
    gold_rate = models.FloatField(
        default=0.0, help_text="Share of each annotator's queue drawn from gold comparisons (0 to 0.5)."
    )
    min_gold_accuracy = models.FloatField(
        default=0.7, help_text="An annotator below this accuracy on gold comparisons (5 or more) is flagged."
    )
    exclude_flagged = models.BooleanField(
        default=False, help_text="Leave flagged annotators' votes out of training snapshots, exports and the leaderboard."
    )
    eval_parent_share = models.FloatField(
        default=0.25, help_text="Share of each batch after round 0 that pairs the new policy with its parent "
                                "on held-out prompts (0 to 1; with eval_round0_share at most 1).",
    )
    eval_round0_share = models.FloatField(
        default=0.25, help_text="Share of each batch after round 0 that pairs the new policy with round 0 "
                                "on held-out prompts (skipped when the parent is round 0).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(votes_per_comparison__gte=1), name="project_overlap_at_least_one"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class ProjectMembership(models.Model):
    """Who works on a project: annotators see, fetch and vote only in projects they belong to."""

    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "annotator"
        REVIEWER = "reviewer", "reviewer"
        ADMIN = "admin", "admin"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user_and_project"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.project} ({self.role})"


class Prompt(models.Model):
    """A prompt to sample responses for: plain text or a conversation."""

    class Split(models.TextChoices):
        TRAIN = "train", "train"
        HELD_OUT = "held_out", "held-out"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    messages = models.JSONField(help_text='Conversation as [{"role": ..., "content": ...}]; a text prompt is one user turn.')
    source = models.CharField(max_length=200, blank=True)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.TRAIN)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "split"])]

    def __str__(self) -> str:
        return self.text[:80]

    @property
    def text(self) -> str:
        """The last user turn: what a reader takes the prompt to be."""
        for message in reversed(self.messages or []):
            if message.get("role") == "user":
                return message.get("content", "")
        return ""


class Checkpoint(models.Model):
    """A saved policy or reward model; exactly one policy per project is active."""

    class Kind(models.TextChoices):
        POLICY = "policy", "policy"
        REWARD = "reward", "reward"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="checkpoints")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=1000)
    sha256 = models.CharField(max_length=64)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    produced_by = models.ForeignKey(
        "TrainingRound", null=True, blank=True, on_delete=models.SET_NULL, related_name="produced_checkpoints"
    )
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True, kind="policy"), name="one_active_policy_per_project"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} · {self.kind} · {self.name}"


class CheckpointEvent(models.Model):
    """A change of a project's active policy made by hand: a promotion or a rollback, and why."""

    class Action(models.TextChoices):
        PROMOTE = "promote", "promoted"
        ROLLBACK = "rollback", "rolled back to"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="checkpoint_events")
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="events",
                                   help_text="The policy made active.")
    previous = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 help_text="The policy that was active before.")
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.TextField(blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.checkpoint.name}"


class Sample(models.Model):
    """One response to a prompt, from a checkpoint of ours or an external model."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="samples")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="samples")
    model_name = models.CharField(max_length=200, blank=True, help_text="For imported pairs and external backends.")
    text = models.TextField()
    generation_params = models.JSONField(default=dict, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    finished = models.BooleanField(default=True, help_text="The response ended with EOS.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(checkpoint__isnull=False) | ~Q(model_name=""), name="sample_has_a_source"
            ),
        ]

    def __str__(self) -> str:
        return self.text[:80]


class Comparison(models.Model):
    """Two responses to one prompt, to be judged side by side."""

    class Status(models.TextChoices):
        OPEN = "open", "open"
        COMPLETE = "complete", "complete"
        RETIRED = "retired", "retired"  # taken out by staff: never offered, never exported

    class Choice(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "tie"
        BOTH_BAD = "both_bad", "both bad"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    sample_a = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+")
    sample_b = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+")
    batch = models.PositiveIntegerField(default=0, help_text="0: the first batch; N: the batch generated after round N.")
    round = models.ForeignKey(
        "TrainingRound", null=True, blank=True, on_delete=models.SET_NULL, related_name="comparisons",
        help_text="The round whose new checkpoint produced this batch.",
    )
    votes_needed = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    gold_choice = models.CharField(max_length=10, choices=Choice.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "status", "id"])]
        constraints = [
            models.CheckConstraint(condition=~Q(sample_a=models.F("sample_b")), name="comparison_two_distinct_samples"),
        ]

    def __str__(self) -> str:
        return f"Comparison {self.pk} ({self.prompt.text[:40]})"


class Assignment(models.Model):
    """A comparison handed to one annotator, reserved until a deadline."""

    class Status(models.TextChoices):
        RESERVED = "reserved", "reserved"
        VOTED = "voted", "voted"
        SKIPPED = "skipped", "skipped"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RESERVED)
    reserved_until = models.DateTimeField()
    left_is_a = models.BooleanField(help_text="Sample A was shown on the left.")
    skip_reason = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="one_assignment_per_annotator"),
        ]
        indexes = [models.Index(fields=["annotator", "status"])]


class Vote(models.Model):
    """An annotator's judgement of a comparison (choice refers to sample A/B, not screen sides)."""

    class Strength(models.IntegerChoices):
        SLIGHTLY = 1, "slightly"
        CLEARLY = 2, "clearly"
        MUCH = 3, "much"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="votes")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes")
    choice = models.CharField(max_length=10, choices=Comparison.Choice.choices)
    strength = models.PositiveSmallIntegerField(choices=Strength.choices, null=True, blank=True)
    rationale = models.TextField(blank=True)
    left_sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+", help_text="Shown on the left.")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=100, blank=True)
    history = models.JSONField(
        default=list, blank=True,
        help_text="Earlier versions of a changed vote, oldest first: {choice, strength, rationale, until, via}.",
    )
    changed_at = models.DateTimeField(null=True, blank=True, help_text="Last time the annotator changed it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="one_vote_per_annotator"),
            models.UniqueConstraint(
                fields=["annotator", "idempotency_key"], condition=~Q(idempotency_key=""),
                name="vote_idempotency_key_unique",
            ),
        ]
        indexes = [models.Index(fields=["annotator", "created_at"])]

    def __str__(self) -> str:
        return f"{self.annotator} → {self.choice} on {self.comparison_id}"


class ComparisonFlag(models.Model):
    """An annotator's report that a comparison is harmful, broken or unclear; staff see them on the queue."""

    class Reason(models.TextChoices):
        HARMFUL = "harmful", "harmful content"
        BROKEN = "broken", "broken (garbled, empty, wrong language)"
        PROMPT_UNCLEAR = "prompt_unclear", "prompt unclear"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="flags")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flags")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # a second press of the same flag is the same report, not two
            models.UniqueConstraint(fields=["comparison", "annotator", "reason"], name="one_flag_per_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} on {self.comparison_id} by {self.annotator}"


class Run(models.Model):
    """Background work with one lifecycle (services/runs.py): queued, claimed by a worker,
    beating, reporting progress, cancellable, and ended done / failed / cancelled.

    A subclass names its own statuses; `QUEUED`, `RUNNING_STATUSES` and `FINAL_STATUSES`
    tell the lifecycle which are which.
    """

    QUEUED = "queued"
    RUNNING_STATUSES: tuple = ()
    FINAL_STATUSES: tuple = ()
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Whether the reaper may queue a run again after its worker died (its steps repeat safely).
    REQUEUE_SAFE = False

    stage = models.CharField(max_length=40, blank=True, help_text="What the run is doing now.")
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    claimed_by = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker that runs it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="Last time its task was sent to the queue.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker claimed it.")
    timings = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.status == self.QUEUED or self.status in self.RUNNING_STATUSES

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class TrainingRound(Run):
    """One pass of the loop: snapshot votes → reward model → PPO (or DPO) → checkpoint → next batch."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        SNAPSHOT = "snapshot", "snapshot"
        REWARD = "reward", "training reward model"
        PPO = "ppo", "PPO"
        DPO = "dpo", "DPO"
        GENERATING = "generating", "generating next batch"
        DONE = "done", "done"
        NEEDS_REVIEW = "needs_review", "needs review"
        DISCARDED = "discarded", "discarded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    RUNNING_STATUSES = (Status.SNAPSHOT, Status.REWARD, Status.PPO, Status.DPO, Status.GENERATING)
    ACTIVE_STATUSES = (Status.QUEUED, *RUNNING_STATUSES)
    # needs_review is final for the lifecycle (no worker holds it); staff then promote or discard.
    FINAL_STATUSES = (Status.DONE, Status.NEEDS_REVIEW, Status.DISCARDED, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    config = models.JSONField(default=dict, blank=True)
    snapshot = models.JSONField(default=dict, blank=True, help_text="Which votes were used: count and hash of their ids.")
    parent_policy = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reward_checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    policy_checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)
    launched_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="round_number_unique_per_project"),
            # Two rounds of one project at once would both train from the same parent and
            # race to activate their checkpoints.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "snapshot", "reward", "ppo", "dpo", "generating"]),
                name="one_running_round_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} round {self.number}"


class Job(Run):
    """Background work other than rounds: a batch of comparisons, a generation, an export file."""

    class Kind(models.TextChoices):
        BATCH = "batch", "generate a batch of comparisons"
        GENERATE = "generate", "generate responses"
        EXPORT = "export", "export a dataset file"
        SETUP = "setup", "prepare the round-0 policy"
        RATINGS = "ratings", "compute the leaderboard"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    result = models.JSONField(default=dict, blank=True)
    file_path = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    RUNNING_STATUSES = (Status.RUNNING,)
    FINAL_STATUSES = (Status.DONE, Status.FAILED, Status.CANCELLED)
    # Batches and exports write their rows / file only at the very end, in one step.
    REQUEUE_SAFE = True

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"
