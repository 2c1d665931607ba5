"""Training rounds: launch, cancel, and the loop itself (run by a Celery worker).

A round moves queued → snapshot → reward → ppo → generating → done, or, when its config
says `"method": "dpo"`, queued → snapshot → dpo → generating → done (no reward model: the
policy trains on the same preference pairs directly, training/dpo.py); or it ends failed
(with the error) or cancelled. Its lifecycle (claim, heartbeat, cancel, reaping) is the
one of every run, in services/runs.py. Its new policy is registered after PPO (or DPO) but becomes
the active policy only in the transaction that stores the next batch and marks it done,
so a round that fails or is cancelled never leaves its policy live.
"""
import logging
import shutil
import time
from dataclasses import asdict

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from feedback.models import Checkpoint, Project, TrainingRound
from feedback.selectors.checkpoints import active_policy, latest_reward_model, reference_policy
from feedback.services import exports
from feedback.services.checkpoints import checkpoint_activate, checkpoint_register, checkpoint_verify
from feedback.services.errors import FieldError, int_in_range
from feedback.services.generation import comparisons_generate_parts, generation_config, round_batch_parts
from feedback.services.model_paths import checkpoint_dir, reward_base_path
from feedback.services.guards import guards_hold_back, round_guards_evaluate
from feedback.services.runs import (
    RunLost, RunProgress, reap_quietly, run_cancel, run_enqueue, run_execute, run_finish, run_set_stage,
)
from training.config import ConfigError, DPOConfig, GuardConfig, PPOConfig, RewardConfig, config_from_dict
from training.progress import Cancelled

logger = logging.getLogger(__name__)

ROUND_DEFAULTS = {"min_pairs": 4, "next_batch_prompts": 16}
# The settings sections each training method uses; the other method's are checked, not kept.
METHOD_SECTIONS = {"ppo": ("reward", "ppo"), "dpo": ("dpo",)}


class RoundError(FieldError):
    """A round cannot be launched or run."""


def round_config_resolve(project: Project, config: dict | None) -> dict:
    """Fill defaults and validate; every error names the field (e.g. `ppo.steps`, `dpo.beta`).

    `method` is "ppo" (reward model then PPO, the default) or "dpo". Sections of the other
    method are validated too (a bad value is still refused, naming it) but not kept in the
    resolved config, which holds only what the round will use.
    """
    config = dict(config or {})
    known = {"method", "reward", "ppo", "dpo", "guards", "generation", "aggregation", *ROUND_DEFAULTS}
    unknown = sorted(set(config) - known)
    if unknown:
        raise RoundError(unknown[0], f"unknown setting; known: {', '.join(sorted(known))}")
    method = config.get("method", "ppo")
    if not isinstance(method, str) or method not in METHOD_SECTIONS:
        raise RoundError("method", f"must be one of {', '.join(METHOD_SECTIONS)}")
    resolved = {"method": method}
    for key, default in ROUND_DEFAULTS.items():
        value = config.get(key, default)
        if not int_in_range(value, 1, 100_000):
            raise RoundError(key, "must be an integer between 1 and 100000")
        resolved[key] = value
    # The project's guard limits are the base a round's own settings override.
    config["guards"] = {**(project.guard_settings or {}), **(config.get("guards") or {})}
    for key, cls in (("reward", RewardConfig), ("ppo", PPOConfig), ("dpo", DPOConfig), ("guards", GuardConfig)):
        try:
            section = asdict(config_from_dict(cls, config.get(key)))
        except ConfigError as exc:
            raise RoundError(exc.path(key), exc.reason) from None
        if key == "guards" or key in METHOD_SECTIONS[method]:
            resolved[key] = section
    resolved["aggregation"] = exports.AGGREGATION_RULE
    try:
        resolved["generation"] = asdict(generation_config(project, config.get("generation")))
    except ConfigError as exc:
        raise RoundError(exc.path("generation"), exc.reason) from None
    return resolved


def round_launch(*, project: Project, launched_by: AbstractUser | None = None, config: dict | None = None) -> TrainingRound:
    """Queue a new round for `project`; its task is sent once the row is committed.

    Raises QueueUnavailable (→ 503) when the broker refuses the task; the row is then gone.
    """
    if project.archived_at is not None:
        raise RoundError("project", "is archived; unarchive it first")
    resolved = round_config_resolve(project, config)
    if active_policy(project) is None:
        raise RoundError("project", "has no active policy checkpoint yet; run the set-up first")
    # A round whose worker died must not block this launch with "already running".
    reap_quietly(project_id=project.pk)
    try:
        with transaction.atomic():
            number = (TrainingRound.objects.filter(project=project).aggregate(m=Max("number"))["m"] or 0) + 1
            training_round = TrainingRound.objects.create(
                project=project, number=number, config=resolved, launched_by=launched_by,
            )
            run_enqueue(training_round)
    except IntegrityError:
        raise RoundError("project", "a round is already running for this project; wait for it or cancel it") from None
    return training_round


def round_retry(*, training_round: TrainingRound, launched_by: AbstractUser | None = None) -> TrainingRound:
    """Launch a new round with the settings of a failed, cancelled or discarded one."""
    if training_round.status not in (TrainingRound.Status.FAILED, TrainingRound.Status.CANCELLED,
                                     TrainingRound.Status.DISCARDED):
        raise RoundError("round", f"is {training_round.get_status_display()}; only a failed, cancelled or "
                                  "discarded round can be retried")
    config = {k: v for k, v in (training_round.config or {}).items() if k != "aggregation"}
    return round_launch(project=training_round.project, launched_by=launched_by, config=config)


def round_cancel(*, training_round: TrainingRound) -> TrainingRound:
    """Ask a round to stop. A queued round, or one whose worker is gone, stops at once; a running one at its next step."""
    return run_cancel(training_round)


def round_rollback_unfinished(training_round: TrainingRound) -> None:
    """What a round that did not finish must not leave behind.

    Its policy must not be active (the parent becomes active again), and checkpoint folders
    it wrote but never registered (a worker killed between the rename and the insert, or
    mid-write: `.tmp-` folders) are removed, so disk and database agree.
    """
    training_round.refresh_from_db()
    policy = training_round.policy_checkpoint
    if policy is not None and Checkpoint.objects.filter(pk=policy.pk, is_active=True).exists():
        if training_round.parent_policy is not None:
            checkpoint_activate(checkpoint=training_round.parent_policy)
        logger.warning("round %s ended unfinished: its policy %s is no longer active", training_round.pk, policy.pk)
    folder = checkpoint_dir(training_round.project, "x").parent
    if not folder.is_dir():
        return
    registered = set(Checkpoint.objects.filter(project=training_round.project).values_list("path", flat=True))
    prefix = f"round-{training_round.number:03d}-"
    for path in folder.iterdir():
        if path.name.startswith((prefix, f".tmp-{prefix}")) and str(path) not in registered:
            shutil.rmtree(path, ignore_errors=True)
            logger.warning("round %s: removed unregistered folder %s", training_round.pk, path)


def round_execute(round_id: int) -> TrainingRound | None:
    """Run a queued round to the end. Called by the worker; a second call does nothing."""
    metrics: dict = {}
    return run_execute(TrainingRound, round_id, first_status=TrainingRound.Status.SNAPSHOT,
                       body=lambda run, progress: _round_body(run, progress, metrics), metrics=metrics)


def _round_body(training_round: TrainingRound, progress: RunProgress, metrics: dict) -> dict:
    """The round's stages; returns the fields of its final status (see runs.run_execute)."""
    project = training_round.project
    round_id = training_round.pk
    hooks = progress.hooks()
    timings: dict = {}
    stage_started = time.monotonic()

    def next_stage(status: str, **fields):
        nonlocal stage_started
        now = time.monotonic()
        ended = training_round.status
        timings[ended] = round(now - stage_started, 2)
        stage_started = now
        # the worker log is where an operator looks first: one line per stage, with its figures
        figures = {"snapshot": training_round.snapshot, "reward": metrics.get("reward_summary"),
                   "ppo": metrics.get("ppo_summary"), "dpo": metrics.get("dpo_summary")}.get(ended) or {}
        logger.info("round %s of %s: %s ended after %.1f s %s; %s starts", training_round.number, project,
                    ended, timings[ended], {k: v for k, v in figures.items() if not isinstance(v, (dict, list, str))},
                    status)
        run_set_stage(training_round, status, timings=timings, **fields)

    config = training_round.config
    parent = active_policy(project)
    reference = reference_policy(project)
    if parent is None or reference is None:
        raise RoundError("project", "has no active policy checkpoint")
    # the files this worker is about to train from must be the ones that were registered
    for used in (parent, reference):
        checkpoint_verify(used)
    from training.device import describe as device_describe

    # which hardware ran the round (host:pid is in claimed_by): device, dtype and GPU name
    metrics["device"] = device_describe()
    records, snapshot = exports.preference_snapshot(project)
    # pairs the warm-start reward model already saw are only replayed in a sample (RewardConfig.replay_pairs)
    snapshot["new_after_vote_id"] = exports.records_mark_new(project, records)
    TrainingRound.objects.filter(pk=round_id).update(snapshot=snapshot, parent_policy=parent)
    training_round.parent_policy, training_round.snapshot = parent, snapshot
    if len(records) < config["min_pairs"]:
        raise RoundError(
            "votes",
            f"only {len(records)} preference pair(s) so far; this round needs at least {config['min_pairs']} "
            "(votes for A or B; ties and both-bad do not count)",
        )
    hooks.check()

    policy_path = checkpoint_dir(project, f"round-{training_round.number:03d}-policy")
    if config.get("method", "ppo") == "dpo":
        next_stage(TrainingRound.Status.DPO)
        policy_summary = _train_policy_dpo(training_round, records, parent, reference, policy_path, hooks, metrics)
    else:
        policy_summary = _train_policy_ppo(training_round, records, parent, reference, policy_path, hooks, metrics,
                                           next_stage)
    hooks.check()
    # Registered, not active: the policy goes live only in the transaction that ends the round.
    policy_ckpt = checkpoint_register(
        project=project, kind=Checkpoint.Kind.POLICY, path=policy_path, name=f"round {training_round.number}",
        parent=parent, produced_by=training_round, metrics=policy_summary,
    )
    training_round.policy_checkpoint = policy_ckpt
    TrainingRound.objects.filter(pk=round_id).update(policy_checkpoint=policy_ckpt, metrics=metrics)

    # Degeneration guards on held-out prompts, against round 0: a policy that games the
    # reward model (repetition, no EOS, ...) is kept for review instead of going live.
    from training.config import GenerationConfig

    generation = GenerationConfig(**config["generation"])
    guards = round_guards_evaluate(
        project=project, parent_path=parent.path, new_policy_path=policy_ckpt.path, reference_path=reference.path,
        config=config_from_dict(GuardConfig, config.get("guards")), hooks=hooks, generation=generation,
    )
    metrics["guards"] = guards
    TrainingRound.objects.filter(pk=round_id).update(metrics=metrics)
    hooks.check()
    if guards_hold_back(guards):
        timings[training_round.status] = round(time.monotonic() - stage_started, 2)
        tripped = ", ".join(guards["tripped"])
        return {"status": TrainingRound.Status.NEEDS_REVIEW, "metrics": metrics, "timings": timings,
                "error": f"held for review: the new policy tripped the degeneration guard(s) {tripped}; "
                         "it is registered but not active. Promote or discard it."}

    next_stage(TrainingRound.Status.GENERATING)

    def complete(comparisons: list) -> None:
        # In the transaction that stores the next batch: lock the round, make sure it is
        # still ours and not cancelled, then activate its policy and mark it done together.
        locked = TrainingRound.objects.select_for_update().get(pk=round_id)
        if locked.status != TrainingRound.Status.GENERATING or locked.claimed_by != training_round.claimed_by:
            raise RunLost(f"round {round_id} was ended by someone else ({locked.status})")
        if locked.cancel_requested:
            raise Cancelled("cancelled on request")
        checkpoint_activate(checkpoint=policy_ckpt)
        metrics["next_batch"] = {"comparisons": len(comparisons)}
        timings[TrainingRound.Status.GENERATING] = round(time.monotonic() - stage_started, 2)
        if not run_finish(training_round, TrainingRound.Status.DONE, metrics=metrics, timings=timings):
            raise RunLost(f"round {round_id} is no longer this worker's")

    # the next batch also measures this policy: against its parent and against round 0 on
    # held-out prompts (the project's eval shares); all of it stored as the policy goes live
    parts = round_batch_parts(project=project, count=config["next_batch_prompts"], new=policy_ckpt,
                              parent=parent, reference=reference)
    metrics["next_batch_parts"] = [
        {"split": part.prompts[0].split, "a": part.checkpoint_a.name, "b": part.checkpoint_b.name,
         "comparisons": len(part.prompts)} for part in parts if part.prompts]
    comparisons_generate_parts(
        project=project, parts=parts, batch=training_round.number,
        training_round=training_round, config=generation, hooks=hooks,
        finalize=complete,
    )
    return None  # complete() ended the round


def _train_stage(stage: str, spec: dict, hooks) -> dict:
    """The reward or PPO stage: in this worker, or data-parallel in RLHF_TRAIN_PROCESSES processes
    (training/launch.py starts torchrun, relays rank 0's progress and ends the ranks on cancel)."""
    from training.launch import run_stage

    return run_stage(stage, spec, hooks, processes=settings.RLHF_TRAIN_PROCESSES,
                     launcher_args=settings.RLHF_TORCHRUN_ARGS)


def _train_policy_ppo(training_round: TrainingRound, records: list[dict], parent: Checkpoint, reference: Checkpoint,
                      policy_path, hooks, metrics: dict, next_stage) -> dict:
    """Reward model on the pairs, then PPO against it; returns PPO's summary (the policy's metrics)."""
    project, round_id = training_round.project, training_round.pk
    config = training_round.config
    next_stage(TrainingRound.Status.REWARD)
    previous_reward = latest_reward_model(project)
    reward_init = checkpoint_verify(previous_reward) if previous_reward else str(reward_base_path(project))
    reward_path = checkpoint_dir(project, f"round-{training_round.number:03d}-reward")
    reward_result = _train_stage("reward", {
        "records": records, "base_path": str(reward_init), "out_dir": str(reward_path),
        "config": config["reward"], "manifest": {"round": training_round.number, "snapshot": training_round.snapshot},
    }, hooks)
    reward_ckpt = checkpoint_register(
        project=project, kind=Checkpoint.Kind.REWARD, path=reward_path, name=f"reward r{training_round.number}",
        parent=previous_reward, produced_by=training_round, metrics=reward_result["summary"],
    )
    metrics["reward_summary"] = reward_result["summary"]
    TrainingRound.objects.filter(pk=round_id).update(reward_checkpoint=reward_ckpt, metrics=metrics)

    next_stage(TrainingRound.Status.PPO)
    ppo_result = _train_stage("ppo", {
        "policy_path": parent.path, "reference_path": reference.path, "reward_path": reward_ckpt.path,
        "prompts": exports.train_prompts(project), "out_dir": str(policy_path), "config": config["ppo"],
        "manifest": {"round": training_round.number, "parent_sha256": parent.sha256},
    }, hooks)
    metrics["ppo_summary"] = ppo_result["summary"]
    return ppo_result["summary"]


def _train_policy_dpo(training_round: TrainingRound, records: list[dict], parent: Checkpoint, reference: Checkpoint,
                      policy_path, hooks, metrics: dict) -> dict:
    """DPO on the pairs, from the parent with round 0 as the reference; returns DPO's summary.
    It runs in this worker (RLHF_TRAIN_PROCESSES applies to the reward and PPO stages).

    Every pair of the snapshot trains (no replay sample as for the reward model): with round 0
    as the reference the objective is the same each round, see training/dpo.py. Its KL to
    round 0 is measured on the prompts the guards answer.
    """
    from feedback.selectors.prompts import guard_prompts
    from training.dpo import train_dpo

    config = config_from_dict(DPOConfig, training_round.config["dpo"])
    kl_prompts = [p.messages for p in guard_prompts(training_round.project, config.kl_prompts)[0]]
    result = train_dpo(
        parent.path, reference.path, records, policy_path, config, hooks,
        manifest={"round": training_round.number, "parent_sha256": parent.sha256,
                  "snapshot": training_round.snapshot},
        kl_prompts=kl_prompts,
    )
    metrics["dpo_summary"] = result["summary"]
    return result["summary"]


def round_review(*, training_round: TrainingRound, decision: str, user: AbstractUser | None = None,
                 reason: str = "") -> TrainingRound:
    """Staff decide on a round its guards held back: promote its policy (round done) or discard it."""
    from feedback.services.checkpoints import checkpoint_promote

    if decision not in ("promote", "discard"):
        raise RoundError("decision", "must be promote or discard")
    with transaction.atomic():
        # Lock the round: two reviewers clicking at once must not both act.
        locked = TrainingRound.objects.select_for_update().get(pk=training_round.pk)
        if locked.status != TrainingRound.Status.NEEDS_REVIEW:
            raise RoundError("round", f"is {locked.get_status_display()}; only a round that needs review can be reviewed")
        metrics = dict(locked.metrics or {})
        metrics["review"] = {"decision": decision, "by": getattr(user, "username", None), "reason": reason,
                             "at": timezone.now().isoformat()}
        if decision == "promote":
            if locked.policy_checkpoint is None:
                raise RoundError("round", "has no policy checkpoint to promote")
            checkpoint_promote(checkpoint=locked.policy_checkpoint, user=user,
                               reason=reason or f"round {locked.number} promoted after review of its guards")
            status = TrainingRound.Status.DONE
        else:
            status = TrainingRound.Status.DISCARDED
        TrainingRound.objects.filter(pk=locked.pk).update(status=status, metrics=metrics)
    training_round.refresh_from_db()
    return training_round
