"""A policy checkpoint as a downloadable Hugging Face model: merged weights plus a model card.

The merged folder is written once per checkpoint (its sha256 names it) under the data
dir and reused; the model card is written at download time, because the human win-rate
keeps changing while annotators vote.
"""
import json
import math
from pathlib import Path

from django.conf import settings

from feedback.models import Checkpoint
from feedback.selectors.rounds import round_win_rate
from feedback.services.errors import FieldError


def export_folder(checkpoint: Checkpoint) -> Path:
    """The merged model folder of `checkpoint`, written on first use (seconds for a small model)."""
    from training.export import export_merged

    if checkpoint.kind != Checkpoint.Kind.POLICY:
        raise FieldError("checkpoint", "only policy checkpoints can be exported as a model")
    if not Path(checkpoint.path).is_dir():
        raise FieldError("checkpoint", f"its folder {checkpoint.path} is missing on this server")
    out = settings.DATA_DIR / "exports" / "models" / f"checkpoint-{checkpoint.pk}-{checkpoint.sha256[:16]}"
    if not out.exists():
        try:
            export_merged(checkpoint.path, out)
        except FileExistsError:
            pass  # another request merged it meanwhile; its rename was atomic
    return out


def wilson_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a win-rate (ties counted as half a win)."""
    if n <= 0:
        return None
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def lineage(checkpoint: Checkpoint) -> list[Checkpoint]:
    """The checkpoint and its ancestors, round 0 first."""
    chain = []
    node = checkpoint
    while node is not None:
        chain.append(node)
        node = node.parent
    return list(reversed(chain))


def _fmt(value, digits=3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def model_card(checkpoint: Checkpoint) -> str:
    """README.md of an exported model: where it came from and how each round went."""
    from training.export import GGUF_UNAVAILABLE, gguf_converter

    chain = lineage(checkpoint)
    project = checkpoint.project
    base = chain[0]
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-generation", "tags: [rlhf, ppo, rlhf-studio]", "---", "",
        f"# {project.name} — {checkpoint.name}", "",
        f"Exported by RLHF Studio from checkpoint {checkpoint.pk} (sha256 `{checkpoint.sha256}`), LoRA adapters "
        "merged into the base weights. Load it with "
        "`AutoModelForCausalLM.from_pretrained(folder)`; the tokenizer carries the chat template.", "",
        "## Base model", "",
        f"Round 0: `{Path(base.path).name}` (sha256 `{base.sha256[:16]}…`), "
        f"project base setting `{project.policy_base_model or 'bundled SmolLM2-135M-Instruct'}`.", "",
        "## Rounds", "",
        "| round | method | votes (pairs) in snapshot | snapshot sha256 | reward model held-out accuracy "
        "| KL to round 0 | human win-rate vs parent (95 % CI) | evaluation votes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    configs = []
    for node in chain[1:]:
        training_round = node.produced_by
        if training_round is None:
            lines.append(f"| ({node.name}) | – | – | – | – | – | – | – |")
            continue
        snapshot = training_round.snapshot or {}
        reward = (training_round.metrics or {}).get("reward_summary", {})
        ppo = (training_round.metrics or {}).get("ppo_summary", {}) or node.metrics
        dpo = (training_round.metrics or {}).get("dpo_summary") or {}
        win = round_win_rate(training_round)
        judged = win["new"] + win["old"] + win["tie"]
        interval = wilson_interval(win["new"] + 0.5 * win["tie"], judged)
        rate = "–" if win["win_rate"] is None else (
            f"{win['win_rate']:.2f} ({interval[0]:.2f}–{interval[1]:.2f})")
        lines.append(
            f"| {training_round.number} | {(training_round.config or {}).get('method', 'ppo')} "
            f"| {snapshot.get('votes', '–')} ({snapshot.get('pairs', '–')}) "
            f"| `{snapshot.get('vote_ids_sha256', '–')}` "
            f"| {_fmt(reward.get('eval_accuracy'))} | {_fmt(ppo.get('final_kl', dpo.get('kl_to_round0')))} "
            f"| {rate} | {win['votes']} |")
        configs.append((training_round.number, training_round.config))
    if len(chain) == 1:
        lines.append("| 0 | – | – | – | – | 0 | – | – |")
    lines += ["", "KL to round 0 is PPO's per-sequence KL to the frozen round-0 reference at the end of the "
              "round (for a DPO round, the same figure on its answers to held-out prompts; DPO has no reward model). Win-rate: annotators' votes on the round's samples against its parent's; ties count half.", ""]
    lines += ["## Training configs", ""]
    for number, config in configs:
        lines += [f"Round {number}:", "", "```json", json.dumps(config, indent=2, sort_keys=True, default=str),
                  "```", ""]
    if not configs:
        lines += ["None: this is the round-0 policy.", ""]
    lines += ["## GGUF", "", GGUF_UNAVAILABLE if gguf_converter() is None else
              f"A converter is installed here ({gguf_converter()}); this download holds safetensors only.", ""]
    return "\n".join(lines)


def checkpoint_export_stream(checkpoint: Checkpoint):
    """(file name, iterator of .tar bytes): the merged model folder plus its model card."""
    from training.export import tar_stream

    folder = export_folder(checkpoint)
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in checkpoint.project.name.lower()).strip("-")
    prefix = f"{slug or 'model'}-checkpoint-{checkpoint.pk}"
    card = model_card(checkpoint).encode()
    return f"{prefix}.tar", tar_stream(folder, prefix=prefix, extra={"README.md": card})
