"""Reads behind the studio's live pages: a round's status, the plan of a round, checkpoint lineage."""
import os
from pathlib import Path

from django.utils import timezone

from feedback.charts import DPO_SERIES, PPO_SERIES, REWARD_SERIES
from feedback.models import Checkpoint, CheckpointEvent, Project, Prompt, TrainingRound
from feedback.services import exports
from feedback.services.checkpoints import rollback_target
from feedback.services.rounds import round_config_resolve
from training.config import DPOConfig, GuardConfig, PPOConfig, RewardConfig

STAGES = [TrainingRound.Status.QUEUED, TrainingRound.Status.SNAPSHOT, TrainingRound.Status.REWARD,
          TrainingRound.Status.PPO, TrainingRound.Status.GENERATING, TrainingRound.Status.DONE]
DPO_STAGES = [TrainingRound.Status.QUEUED, TrainingRound.Status.SNAPSHOT, TrainingRound.Status.DPO,
              TrainingRound.Status.GENERATING, TrainingRound.Status.DONE]


def round_method(training_round: TrainingRound) -> str:
    """"ppo" or "dpo": how the round trains its policy (rounds from before DPO existed are PPO)."""
    return (training_round.config or {}).get("method", "ppo")


def round_stages(training_round: TrainingRound) -> list[str]:
    """The statuses a round of its method passes through, in order."""
    return DPO_STAGES if round_method(training_round) == "dpo" else STAGES
LOG_LINES = 12


def _number(value):
    """A JSON-safe float (NaN and infinities, which JSON cannot carry, become None)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _series(rows: list[dict], series: list[tuple[str, str]]) -> list[dict]:
    """Chart data of per-step metric rows: one entry per metric that has at least two numbers."""
    out = []
    steps = [row.get("step", i + 1) for i, row in enumerate(rows)]
    for key, title in series:
        values = [_number(row.get(key)) for row in rows]
        if sum(v is not None for v in values) >= 2:
            out.append({"key": key, "title": title, "x": steps, "y": values})
    return out


def _step_line(stage: str, row: dict) -> str:
    figures = " · ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in row.items() if k not in ("step",) and isinstance(v, (int, float)))
    return f"{stage} step {row.get('step', '?')}: {figures}"


def round_log(training_round: TrainingRound) -> list[str]:
    """The round's story so far as short lines, oldest first: what a worker log would say."""
    lines = [f"launched by {training_round.launched_by or 'a script'} at {training_round.created_at:%H:%M:%S}"]
    if training_round.started_at:
        lines.append(f"claimed by a worker at {training_round.started_at:%H:%M:%S}")
    snapshot = training_round.snapshot or {}
    if snapshot:
        lines.append(f"snapshot: {snapshot.get('votes', 0)} votes → {snapshot.get('pairs', 0)} preference pairs")
    for stage, seconds in (training_round.timings or {}).items():
        lines.append(f"{stage} finished in {seconds} s")
    metrics = training_round.metrics or {}
    summary = metrics.get("reward_summary")
    if summary:
        lines.append(f"reward model: held-out accuracy {summary.get('eval_accuracy', float('nan')):.3f} "
                     f"on {summary.get('eval_pairs', 0)} pairs after {summary.get('epochs', '?')} epochs")
    dpo = metrics.get("dpo_summary")
    if dpo:
        lines.append(f"DPO: held-out accuracy {_fmt(dpo.get('eval_accuracy'))} on {dpo.get('eval_pairs', 0)} pairs, "
                     f"margin {_fmt(dpo.get('eval_margin'))}, KL to round 0 {_fmt(dpo.get('kl_to_round0'))}")
    stage = next((s for s in ("dpo", "ppo") if metrics.get(s)), "reward")
    lines += [_step_line(stage, row) for row in (metrics.get(stage) or [])[-5:]]
    if metrics.get("next_batch"):
        lines.append(f"next batch: {metrics['next_batch'].get('comparisons', 0)} comparisons")
    if training_round.cancel_requested and training_round.is_active:
        lines.append("cancellation requested; the worker stops at its next step")
    if training_round.error:
        lines.append(f"error: {training_round.error}")
    return lines[-LOG_LINES:]


def _latest(training_round: TrainingRound) -> list[dict]:
    """The figures an admin watches, newest values: label, value and a note."""
    metrics = training_round.metrics or {}
    out = []
    reward = metrics.get("reward_summary") or {}
    if "eval_accuracy" in reward:
        out.append({"label": "RM held-out accuracy", "value": _number(reward["eval_accuracy"]),
                    "note": f"on {reward.get('eval_pairs', 0)} pairs (before {_fmt(reward.get('eval_accuracy_before'))})"})
    elif metrics.get("reward"):
        last = metrics["reward"][-1]
        out.append({"label": "RM train accuracy", "value": _number(last.get("accuracy")), "note": f"step {last.get('step')}"})
        out.append({"label": "RM loss", "value": _number(last.get("loss")), "note": f"step {last.get('step')}"})
    if metrics.get("ppo"):
        # the last step that trained (the closing check's figures are the summary's when it is kept)
        last = ([row for row in metrics["ppo"] if not row.get("check")] or metrics["ppo"])[-1]
        for key, label in (("score", "PPO mean score"), ("kl", "KL to reference"), ("entropy", "entropy"),
                           ("response_length", "response length")):
            if key in last:
                out.append({"label": label, "value": _number(last[key]), "note": f"step {last.get('step')}"})
        ppo_summary = metrics.get("ppo_summary") or {}
        if ppo_summary.get("final_kl") is not None:
            out.append({"label": "KL of the kept policy", "value": _number(ppo_summary["final_kl"]),
                        "note": f"measured at step {ppo_summary.get('kept_step')}, {ppo_summary.get('updates')} updates"})
    dpo = metrics.get("dpo_summary") or {}
    if "eval_accuracy" in dpo:
        out.append({"label": "DPO held-out accuracy", "value": _number(dpo["eval_accuracy"]),
                    "note": f"on {dpo.get('eval_pairs', 0)} pairs (before {_fmt(dpo.get('eval_accuracy_before'))})"})
        out.append({"label": "DPO held-out margin", "value": _number(dpo.get("eval_margin")), "note": "implicit reward"})
        if "kl_to_round0" in dpo:
            out.append({"label": "KL to round 0", "value": _number(dpo["kl_to_round0"]),
                        "note": f"on {dpo.get('kl_prompts')} held-out prompts"})
    elif metrics.get("dpo"):
        last = metrics["dpo"][-1]
        for key, label in (("loss", "DPO loss"), ("accuracy", "DPO train accuracy"), ("margin", "DPO margin")):
            out.append({"label": label, "value": _number(last.get(key)), "note": f"step {last.get('step')}"})
    return out


def _fmt(value) -> str:
    value = _number(value)
    return "—" if value is None else f"{value:.3f}"


def round_status(training_round: TrainingRound, *, now=None) -> dict:
    """Everything the live round page shows, as plain JSON-able data.

    ETA is for the current stage only, from its step rate so far: the stages run at
    very different speeds, so a whole-round estimate from one of them would mislead.
    """
    now = now or timezone.now()
    r = training_round
    started, finished = r.started_at, r.finished_at
    elapsed = ((finished or now) - started).total_seconds() if started else None
    stage_elapsed = eta = None
    if started and r.is_active:
        stage_started = started + timezone.timedelta(seconds=sum((r.timings or {}).values()))
        stage_elapsed = max(0.0, (now - stage_started).total_seconds())
        if r.progress_step and r.progress_total > r.progress_step and stage_elapsed > 0:
            eta = (r.progress_total - r.progress_step) * stage_elapsed / r.progress_step
    status = r.status
    order = round_stages(r)
    reached = order.index(status) if status in order else None
    stages = []
    for i, stage in enumerate(order[1:], 1):
        if reached is None:  # failed or cancelled: the stages with timings were finished
            state = "done" if stage in (r.timings or {}) else "skipped"
        else:
            state = "done" if i < reached or status == TrainingRound.Status.DONE else (
                "current" if i == reached else "pending")
        stages.append({"name": stage, "label": TrainingRound.Status(stage).label, "state": state})
    metrics = r.metrics or {}
    return {
        "id": r.pk,
        "number": r.number,
        "status": status,
        "status_display": r.get_status_display(),
        "final": status in TrainingRound.FINAL_STATUSES,
        "cancel_requested": r.cancel_requested,
        "step": r.progress_step,
        "total": r.progress_total,
        "elapsed_s": round(elapsed, 1) if elapsed is not None else None,
        "stage_elapsed_s": round(stage_elapsed, 1) if stage_elapsed is not None else None,
        "eta_s": round(eta, 1) if eta is not None else None,
        "stages": stages,
        "latest": _latest(r),
        "log": round_log(r),
        "error": r.error,
        "snapshot": {k: (r.snapshot or {}).get(k) for k in ("votes", "pairs", "sha256")},
        "policy_checkpoint": r.policy_checkpoint.name if r.policy_checkpoint_id else None,
        "parent_policy": r.parent_policy.name if r.parent_policy_id else None,
        "method": round_method(r),
        "charts": {
            "reward": _series(metrics.get("reward") or [], REWARD_SERIES),
            "ppo": _series(metrics.get("ppo") or [], PPO_SERIES),
            "dpo": _series(metrics.get("dpo") or [], DPO_SERIES),
        },
    }


def round_plan(project: Project, config: dict | None, *, pairs: int | None = None) -> dict:
    """What a round launched now with `config` would actually do.

    The reward model's epochs are raised by its minimum-steps rule on a small snapshot
    (`training.reward.training_schedule`); this computes that from the votes there are
    now, with the same held-out split the trainer makes. Raises RoundError naming a bad
    setting. `pairs` overrides the count of preference pairs (for a what-if).
    """
    from training.reward import select_training_records, split_records, training_schedule

    resolved = round_config_resolve(project, config)
    snapshot = None
    records = None
    if pairs is None:
        records, snapshot = exports.preference_snapshot(project)
        exports.records_mark_new(project, records)
        pairs = snapshot["pairs"]
    train_prompts = Prompt.objects.filter(project=project, split=Prompt.Split.TRAIN).count()
    next_prompts = min(resolved["next_batch_prompts"], train_prompts)
    plan = {
        "config": resolved,
        "method": resolved["method"],
        "pairs": pairs,
        "votes": snapshot["votes"] if snapshot else None,
        "enough_pairs": pairs >= resolved["min_pairs"],
        "min_pairs": resolved["min_pairs"],
        "next_batch": {"prompts": next_prompts, "samples": 2 * next_prompts,
                       "max_new_tokens": resolved["generation"]["max_new_tokens"]},
    }
    pair_items = records if records is not None else list(range(pairs))
    if resolved["method"] == "dpo":
        dpo = DPOConfig(**resolved["dpo"])
        # the trainer's own split (training/dpo.py trains on every pair that is not held out)
        train, held_out = split_records(pair_items, dpo.eval_fraction, dpo.seed)
        steps_per_epoch = -(-len(train) // dpo.batch_size)
        plan["dpo"] = {"train_pairs": len(train), "eval_pairs": len(held_out), "epochs": dpo.epochs,
                       "steps_per_epoch": steps_per_epoch, "steps": steps_per_epoch * dpo.epochs, "beta": dpo.beta,
                       "use_lora": dpo.use_lora, "kl_prompts": dpo.kl_prompts}
        return plan
    reward = RewardConfig(**resolved["reward"])
    # the trainer's own split and replay selection, so the plan's figures are the round's
    train, held_out = split_records(pair_items, reward.eval_fraction, reward.seed)
    if records is not None:
        train, _ = select_training_records(train, reward.replay_pairs, reward.seed)
    schedule = training_schedule(len(train), reward) if train else None
    ppo = PPOConfig(**resolved["ppo"])
    plan["reward"] = {
        "train_pairs": len(train), "eval_pairs": len(held_out),
        "configured_epochs": reward.epochs, "min_steps": reward.min_steps, "batch_size": reward.batch_size,
        **(schedule or {"steps_per_epoch": 0, "epochs": 0, "steps": 0, "raised_by_min_steps": False}),
    }
    plan["ppo"] = {
        "steps": ppo.steps, "episodes": ppo.steps * ppo.batch_size, "train_prompts": train_prompts,
        "gradient_steps": ppo.steps * ppo.ppo_epochs * (ppo.batch_size // ppo.mini_batch_size),
        "max_new_tokens": ppo.max_new_tokens, "use_lora": ppo.use_lora,
        # Rollouts shorter than the answers the project generates, with the EOS penalty on,
        # score an answer that needs more tokens as one that never ends: PPO then teaches
        # brevity nobody voted for (BENCHMARKS.md, issue 12's list:2:3 runs).
        "brevity_pressure": (ppo.missing_eos_penalty > 0
                             and ppo.max_new_tokens < resolved["generation"]["max_new_tokens"]),
    }
    # A KL target above the guards' KL limit: every policy PPO lets past the limit waits for review.
    guards = GuardConfig(**resolved["guards"])
    if guards.enforce and guards.kl_to_round0_max is not None and ppo.adaptive_kl \
            and ppo.kl_target > guards.kl_to_round0_max:
        plan["ppo"]["kl_target_over_guard"] = guards.kl_to_round0_max
    return plan


def directory_size(path: str | Path) -> int | None:
    """Bytes under `path` (None when it is gone): what a checkpoint costs on disk."""
    path = Path(path)
    if not path.is_dir():
        return None
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def checkpoints_overview(project: Project) -> dict:
    """The project's checkpoints with their lineage and size, the rollback target and the history."""
    checkpoints = list(Checkpoint.objects.filter(project=project).select_related("parent", "produced_by")
                       .order_by("-created_at", "-id"))
    rows = []
    for c in checkpoints:
        snapshot = (c.produced_by.snapshot or {}) if c.produced_by_id else {}
        rows.append({"checkpoint": c, "size": directory_size(c.path), "snapshot": snapshot,
                     "metrics": {k: v for k, v in (c.metrics or {}).items() if isinstance(v, (int, float))}})
    return {
        "policies": [row for row in rows if row["checkpoint"].kind == Checkpoint.Kind.POLICY],
        "rewards": [row for row in rows if row["checkpoint"].kind == Checkpoint.Kind.REWARD],
        "rollback_target": rollback_target(project),
        "events": list(CheckpointEvent.objects.filter(project=project).select_related("checkpoint", "previous", "by")[:50]),
    }

