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
    votes_per_comparison = models.PositiveSmallIntegerField(
        default=1, help_text="How many annotators vote on each comparison (overlap)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(votes_per_comparison__gte=1), name="project_overlap_at_least_one"),
        ]

    def __str__(self) -> str:
        return self.name


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


class TrainingRound(models.Model):
    """One pass of the loop: snapshot votes → reward model → PPO → checkpoint → next batch."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        SNAPSHOT = "snapshot", "snapshot"
        REWARD = "reward", "training reward model"
        PPO = "ppo", "PPO"
        GENERATING = "generating", "generating next batch"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.SNAPSHOT, Status.REWARD, Status.PPO, Status.GENERATING)
    FINAL_STATUSES = (Status.DONE, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    config = models.JSONField(default=dict, blank=True)
    snapshot = models.JSONField(default=dict, blank=True, help_text="Which votes were used: count and hash of their ids.")
    parent_policy = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reward_checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    policy_checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    timings = models.JSONField(default=dict, blank=True)
    launched_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="round_number_unique_per_project"),
            # Two rounds of one project at once would both train from the same parent and
            # race to activate their checkpoints.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "snapshot", "reward", "ppo", "generating"]),
                name="one_running_round_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} round {self.number}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class Job(models.Model):
    """Background work other than rounds: a batch of comparisons, a generation, an export file."""

    class Kind(models.TextChoices):
        BATCH = "batch", "generate a batch of comparisons"
        GENERATE = "generate", "generate responses"
        EXPORT = "export", "export a dataset file"

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
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(default=dict, blank=True)
    file_path = models.CharField(max_length=1000, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"
