"""Training rounds: launch, cancel, and the loop itself (run by a Celery worker).

A round moves queued → snapshot → reward → ppo → generating → done, or ends failed
(with the error) or cancelled. Its row is the record of what happened: a retried or
duplicated task finds the round already claimed and does nothing.
"""
import logging
import time
import traceback
from dataclasses import asdict

from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from feedback.models import Checkpoint, Project, TrainingRound
from feedback.selectors.checkpoints import active_policy, latest_reward_model, reference_policy
from feedback.services import exports
from feedback.services.checkpoints import checkpoint_register
from feedback.services.errors import FieldError, int_in_range
from feedback.services.generation import comparisons_generate, generation_config, prompts_for_batch
from feedback.services.model_paths import checkpoint_dir, reward_base_path
from training.config import ConfigError, PPOConfig, RewardConfig, config_from_dict
from training.progress import Cancelled, Hooks

logger = logging.getLogger(__name__)

ROUND_DEFAULTS = {"min_pairs": 4, "next_batch_prompts": 16}


class RoundError(FieldError):
    """A round cannot be launched or run."""


def round_config_resolve(project: Project, config: dict | None) -> dict:
    """Fill defaults and validate; every error names the field (e.g. `ppo.steps`)."""
    config = dict(config or {})
    known = {"reward", "ppo", "generation", "aggregation", *ROUND_DEFAULTS}
    unknown = sorted(set(config) - known)
    if unknown:
        raise RoundError(unknown[0], f"unknown setting; known: {', '.join(sorted(known))}")
    resolved = {}
    for key, default in ROUND_DEFAULTS.items():
        value = config.get(key, default)
        if not int_in_range(value, 1, 100_000):
            raise RoundError(key, "must be an integer between 1 and 100000")
        resolved[key] = value
    for key, cls in (("reward", RewardConfig), ("ppo", PPOConfig)):
        try:
            resolved[key] = asdict(config_from_dict(cls, config.get(key)))
        except ConfigError as exc:
            raise RoundError(exc.path(key), exc.reason) from None
    resolved["aggregation"] = exports.AGGREGATION_RULE
    try:
        resolved["generation"] = asdict(generation_config(project, config.get("generation")))
    except ConfigError as exc:
        raise RoundError(exc.path("generation"), exc.reason) from None
    return resolved


def round_launch(*, project: Project, launched_by: AbstractUser | None = None, config: dict | None = None) -> TrainingRound:
    """Queue a new round for `project`; the worker picks it up once the transaction commits."""
    resolved = round_config_resolve(project, config)
    if active_policy(project) is None:
        raise RoundError("project", "has no active policy checkpoint yet; run the set-up first")
    try:
        with transaction.atomic():
            number = (TrainingRound.objects.filter(project=project).aggregate(m=Max("number"))["m"] or 0) + 1
            training_round = TrainingRound.objects.create(
                project=project, number=number, config=resolved, launched_by=launched_by,
            )
            from feedback.tasks import run_training_round

            transaction.on_commit(lambda: run_training_round.delay(training_round.pk))
    except IntegrityError:
        raise RoundError("project", "a round is already running for this project; wait for it or cancel it") from None
    return training_round


def round_cancel(*, training_round: TrainingRound) -> TrainingRound:
    """Ask a round to stop. A queued round stops at once; a running one at its next step."""
    TrainingRound.objects.filter(pk=training_round.pk, status__in=TrainingRound.ACTIVE_STATUSES).update(
        cancel_requested=True
    )
    TrainingRound.objects.filter(pk=training_round.pk, status=TrainingRound.Status.QUEUED).update(
        status=TrainingRound.Status.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
    )
    training_round.refresh_from_db()
    return training_round


class _RoundProgress:
    """Writes a running round's stage, progress and per-step metrics to its row."""

    def __init__(self, round_id: int, metrics: dict):
        self.round_id = round_id
        self.metrics = metrics
        self._last_write = 0.0

    def __call__(self, *, stage: str, step: int, total: int, metrics: dict | None = None) -> None:
        if metrics is not None:
            self.metrics.setdefault(stage, []).append(metrics)
        now = time.monotonic()
        # Per-step metrics are always written; bare progress ticks at most twice a second.
        if metrics is None and step not in (0, total) and now - self._last_write < 0.5:
            return
        self._last_write = now
        # update() touches only these columns: cancel_requested is the web's to write.
        TrainingRound.objects.filter(pk=self.round_id).update(
            progress_step=step, progress_total=total, metrics=self.metrics
        )

    def should_stop(self) -> bool:
        return TrainingRound.objects.filter(pk=self.round_id, cancel_requested=True).exists()


def _set_status(round_id: int, status: str, **fields) -> None:
    TrainingRound.objects.filter(pk=round_id).update(status=status, progress_step=0, progress_total=0, **fields)


def round_execute(round_id: int) -> TrainingRound | None:
    """Run a queued round to the end. Called by the worker; safe to call twice."""
    claimed = TrainingRound.objects.filter(
        pk=round_id, status=TrainingRound.Status.QUEUED, cancel_requested=False
    ).update(status=TrainingRound.Status.SNAPSHOT, started_at=timezone.now())
    if not claimed:
        logger.info("round %s: not queued any more (another worker got there first, or it was cancelled)", round_id)
        return None
    training_round = TrainingRound.objects.select_related("project").get(pk=round_id)
    project = training_round.project
    metrics: dict = {}
    progress = _RoundProgress(round_id, metrics)
    hooks = Hooks(report=progress, should_stop=progress.should_stop)
    timings: dict = {}
    stage_started = time.monotonic()

    def next_stage(status: str, **fields):
        nonlocal stage_started
        now = time.monotonic()
        timings[training_round.status] = round(now - stage_started, 2)
        stage_started = now
        training_round.status = status
        _set_status(round_id, status, timings=timings, **fields)

    try:
        config = training_round.config
        parent = active_policy(project)
        reference = reference_policy(project)
        if parent is None or reference is None:
            raise RoundError("project", "has no active policy checkpoint")
        records, snapshot = exports.preference_snapshot(project)
        TrainingRound.objects.filter(pk=round_id).update(snapshot=snapshot, parent_policy=parent)
        if len(records) < config["min_pairs"]:
            raise RoundError(
                "votes",
                f"only {len(records)} preference pair(s) so far; this round needs at least {config['min_pairs']} "
                "(votes for A or B; ties and both-bad do not count)",
            )
        hooks.check()

        next_stage(TrainingRound.Status.REWARD)
        from training.reward import train_reward_model

        previous_reward = latest_reward_model(project)
        reward_init = previous_reward.path if previous_reward else str(reward_base_path(project))
        reward_path = checkpoint_dir(project, f"round-{training_round.number:03d}-reward")
        reward_result = train_reward_model(
            records, reward_init, reward_path, config_from_dict(RewardConfig, config["reward"]), hooks,
            manifest={"round": training_round.number, "snapshot": snapshot},
        )
        reward_ckpt = checkpoint_register(
            project=project, kind=Checkpoint.Kind.REWARD, path=reward_path, name=f"reward r{training_round.number}",
            parent=previous_reward, produced_by=training_round, metrics=reward_result["summary"],
        )
        metrics["reward_summary"] = reward_result["summary"]
        TrainingRound.objects.filter(pk=round_id).update(reward_checkpoint=reward_ckpt, metrics=metrics)

        next_stage(TrainingRound.Status.PPO)
        from training.ppo import train_ppo

        policy_path = checkpoint_dir(project, f"round-{training_round.number:03d}-policy")
        ppo_result = train_ppo(
            parent.path, reference.path, reward_ckpt.path, exports.train_prompts(project), policy_path,
            config_from_dict(PPOConfig, config["ppo"]), hooks,
            manifest={"round": training_round.number, "parent_sha256": parent.sha256},
        )
        metrics["ppo_summary"] = ppo_result["summary"]
        hooks.check()
        policy_ckpt = checkpoint_register(
            project=project, kind=Checkpoint.Kind.POLICY, path=policy_path, name=f"round {training_round.number}",
            parent=parent, produced_by=training_round, metrics=ppo_result["summary"], activate=True,
        )
        TrainingRound.objects.filter(pk=round_id).update(policy_checkpoint=policy_ckpt, metrics=metrics)

        next_stage(TrainingRound.Status.GENERATING)
        from training.config import GenerationConfig

        comparisons = comparisons_generate(
            project=project,
            prompts=prompts_for_batch(project, config["next_batch_prompts"]),
            checkpoint_a=policy_ckpt, checkpoint_b=parent, batch=training_round.number,
            training_round=training_round, config=GenerationConfig(**config["generation"]), hooks=hooks,
        )
        metrics["next_batch"] = {"comparisons": len(comparisons)}
        next_stage(TrainingRound.Status.DONE, finished_at=timezone.now(), metrics=metrics)
    except Cancelled:
        next_stage(TrainingRound.Status.CANCELLED, finished_at=timezone.now(), error="cancelled on request")
    except Exception as exc:  # the round records any failure; the worker itself goes on
        logger.exception("round %s failed", round_id)
        message = str(exc) if isinstance(exc, RoundError) else f"{type(exc).__name__}: {exc}"
        next_stage(
            TrainingRound.Status.FAILED, finished_at=timezone.now(), error=message,
            metrics={**metrics, "traceback": traceback.format_exc()[-4000:]},
        )
    training_round.refresh_from_db()
    return training_round
