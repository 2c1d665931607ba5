"""Bradley–Terry reward model.

Why an own loop rather than TRL's RewardTrainer: a round trains on a few hundred pairs,
and the loop below is the whole algorithm in ~40 readable lines (one `logsigmoid`
line, a margin from vote strength, a centering term) with progress and cancellation
hooks between steps, which the app needs and which a Trainer would hide behind
callbacks. Inputs are encoded as a text pair (prompt, response) with the reward
model's own tokenizer: for BERT-style encoders such as MiniLM this ends on [SEP],
which plays the role of the EOS token TRL would append.

Score normalization (on by default, `RewardConfig.normalize_scores`): after training,
the model scores every response in its training pairs, and the mean and standard
deviation go into the checkpoint's manifest as a shift and a scale. `normalized_score`
applies them, so PPO sees scores with mean 0 and std 1 on the policy's own responses,
as the N+ paper normalizes its reward model on SFT samples. Without it the scale is
whatever the Bradley–Terry margins made it (std 3.3 after one simulated round): the
value loss was 4.5 on PPO's first step instead of ~0.2, sharing one clipped gradient
with the policy loss, and the same `kl_coef` would mean something different every
round. The weights are left raw, so the next round's reward model starts from them.

Records are plain dicts: {"prompt": [messages] | str, "chosen": str, "rejected": str,
"margin": float (optional), "agreement": float (optional; weights the pair's loss),
"new": bool (optional; False for a pair the warm-start model already trained on, which is
then only replayed in a sample, see `select_training_records`)}. Ties and both-bad votes never reach this module: they
carry no ordering (the export layer drops them and says so).
"""
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from training import device as placement
from training import distributed
from training.checkpoints import atomic_directory, read_manifest, write_manifest
from training.config import RewardConfig, config_to_dict
from training.models import load_reward_model
from training.progress import NO_HOOKS, Hooks


class NotEnoughData(ValueError):
    """Too few preference pairs to train on."""


def prompt_as_text(prompt) -> str:
    """A conversation flattened for the reward model: one line per turn."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def encode_pairs(tokenizer, prompts: list, responses: list[str], max_length: int) -> dict:
    """Tokenized (prompt, response) pairs on the configured device."""
    enc = tokenizer(
        [prompt_as_text(p) for p in prompts],
        responses,
        padding=True,
        truncation="longest_first",
        max_length=max_length,
        return_tensors="pt",
    )
    return {k: v.to(placement.device()) for k, v in enc.items()}


def score(model, tokenizer, prompts: list, responses: list[str], max_length: int = 256, batch_size: int = 32) -> torch.Tensor:
    """Reward of each (prompt, response), without gradients."""
    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            enc = encode_pairs(tokenizer, prompts[i:i + batch_size], responses[i:i + batch_size], max_length)
            with placement.autocast():
                out.append(model(**enc).logits.squeeze(-1).float())
    return torch.cat(out) if out else torch.zeros(0, device=placement.device())


def score_normalization(path: str | Path) -> tuple[float, float]:
    """(shift, scale) saved with a reward model; (0, 1) for a model trained without it."""
    normalization = read_manifest(path).get("normalization") or {}
    return float(normalization.get("shift", 0.0)), float(normalization.get("scale", 1.0))


def normalized_score(model, tokenizer, prompts: list, responses: list[str], max_length: int,
                     normalization: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    shift, scale = normalization
    return (score(model, tokenizer, prompts, responses, max_length) - shift) / scale


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None,
                       center_coefficient: float = 0.0, weight: torch.Tensor | None = None, *,
                       weight_total: float | None = None, pairs_total: int | None = None) -> torch.Tensor:
    """-log σ(r_c - r_r - margin), weighted per pair, plus a term pulling rewards towards zero mean.

    `weight_total` / `pairs_total` are the denominators of the means when these pairs are one
    rank's shard of a batch (the whole batch's weight and size): the shards' losses then
    add up to the loss of the whole batch. By default, these pairs' own.
    """
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin
    per_pair = -F.logsigmoid(diff)
    pairs = pairs_total or per_pair.numel()
    if weight is not None:
        # a pair that 2 of 3 annotators agreed on counts less than a unanimous one
        total = weight.sum() if weight_total is None else torch.tensor(weight_total, device=weight.device)
        loss = (per_pair * weight).sum() / total.clamp(min=1e-8)
    else:
        loss = per_pair.sum() / pairs
    if center_coefficient:
        loss = loss + center_coefficient * ((r_chosen + r_rejected) ** 2).sum() / pairs
    return loss


def split_records(records: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    n_eval = 0
    if eval_fraction > 0 and len(shuffled) >= 5:
        n_eval = max(1, int(round(len(shuffled) * eval_fraction)))
    return shuffled[n_eval:], shuffled[:n_eval]


def select_training_records(records: list[dict], replay_pairs: int, seed: int) -> tuple[list[dict], dict]:
    """Every new pair plus a seeded sample of `replay_pairs` old ones (0: every old one).

    A record is old when it carries `"new": False` (the round marks the pairs the warm-start
    model already trained on); records without the flag count as new, so callers that do
    not mark them train on everything. Returns (selected, counts).
    """
    new = [r for r in records if r.get("new", True)]
    old = [r for r in records if not r.get("new", True)]
    replayed = old if replay_pairs == 0 or len(old) <= replay_pairs else random.Random(seed).sample(old, replay_pairs)
    return new + replayed, {"new_pairs": len(new), "old_pairs": len(old), "replayed_pairs": len(replayed)}


def evaluate(model, tokenizer, records: list[dict], max_length: int) -> dict:
    """Pairwise accuracy, mean margin and reward spread on held-out pairs."""
    if not records:
        return {"eval_pairs": 0}
    prompts = [r["prompt"] for r in records]
    rc = score(model, tokenizer, prompts, [r["chosen"] for r in records], max_length)
    rr = score(model, tokenizer, prompts, [r["rejected"] for r in records], max_length)
    both = torch.cat([rc, rr])
    return {
        "eval_pairs": len(records),
        "eval_accuracy": float((rc > rr).float().mean()),
        "eval_mean_margin": float((rc - rr).mean()),
        "eval_reward_mean": float(both.mean()),
        "eval_reward_std": float(both.std()) if both.numel() > 1 else 0.0,
    }


def training_schedule(train_pairs: int, config: RewardConfig) -> dict:
    """How many epochs and optimizer steps training on `train_pairs` pairs will take.

    `epochs` is raised until `min_steps` steps are reached (a small snapshot is one batch
    an epoch); the studio shows this figure before a round is launched.
    """
    steps_per_epoch = max(1, math.ceil(train_pairs / config.batch_size))
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    return {"steps_per_epoch": steps_per_epoch, "epochs": epochs, "steps": steps_per_epoch * epochs,
            "raised_by_min_steps": epochs > config.epochs}


def train_reward_model(
    records: list[dict],
    base_path: str | Path,
    out_dir: str | Path,
    config: RewardConfig | None = None,
    hooks: Hooks = NO_HOOKS,
    manifest: dict | None = None,
) -> dict:
    """Train on `records`, starting from `base_path`; write the model to `out_dir` atomically.

    Returns {"steps": [per-step metrics], "summary": {...}}.

    Data-parallel under torchrun (training/launch.py): every rank draws the same batches,
    trains on its shard of each (`distributed.shard`) and averages gradients, so a step
    sees the same pairs as in one process and the losses of the shards add up to the
    batch's; rank 0 alone evaluates, normalizes and writes the checkpoint (the other
    ranks return an empty summary).
    """
    config = (config or RewardConfig()).validate()
    if not records:
        raise NotEnoughData("no preference pairs to train the reward model on")
    torch.manual_seed(config.seed)
    # held out from all votes; trained on the new pairs and a replay sample of the old
    train, held_out = split_records(records, config.eval_fraction, config.seed)
    train, replay = select_training_records(train, config.replay_pairs, config.seed)
    model, tokenizer = load_reward_model(base_path, trainable=True)
    model.train()
    # dropout stays off even in train(): load_reward_model set every p to 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    distributed.broadcast_parameters(trainable)  # a freshly initialised score head must start equal everywhere
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    world = distributed.world_size()
    rng = random.Random(config.seed)
    schedule = training_schedule(len(train), config)
    steps_per_epoch, epochs, total = schedule["steps_per_epoch"], schedule["epochs"], schedule["steps"]
    before = evaluate(model, tokenizer, held_out if distributed.is_main() else [], config.max_length)
    step_metrics = []
    started = time.monotonic()
    hooks.progress("reward", 0, total)
    for epoch in range(epochs):
        order = list(train)
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            hooks.check()
            whole = order[b * config.batch_size:(b + 1) * config.batch_size]
            batch = distributed.shard(whole)
            n = len(batch)
            optimizer.zero_grad()
            sums = {"loss": 0.0, "accuracy": 0.0, "margin": 0.0}
            if n:  # a rank whose shard of a short last batch is empty adds a zero gradient
                prompts = [r["prompt"] for r in batch] * 2
                responses = [r["chosen"] for r in batch] + [r["rejected"] for r in batch]
                enc = encode_pairs(tokenizer, prompts, responses, config.max_length)
                with placement.autocast():
                    rewards = model(**enc).logits.squeeze(-1).float()
                r_chosen, r_rejected = rewards[:n], rewards[n:]
                margin = None
                if config.use_margin:
                    margin = torch.tensor([float(r.get("margin") or 0.0) for r in batch], device=rewards.device)
                weight = torch.tensor([float(r.get("agreement", 1.0)) for r in batch], device=rewards.device)
                loss = bradley_terry_loss(
                    r_chosen, r_rejected, margin, config.center_rewards_coefficient, weight,
                    weight_total=sum(float(r.get("agreement", 1.0)) for r in whole), pairs_total=len(whole),
                )
                # gradients are averaged over the ranks: scaled by `world`, the average is the whole batch's
                (loss * world).backward()
                with torch.no_grad():
                    sums = {"loss": float(loss), "accuracy": float((r_chosen > r_rejected).float().sum()),
                            "margin": float((r_chosen - r_rejected).sum())}
            distributed.average_gradients(trainable)
            optimizer.step()
            sums = distributed.sum_over_ranks(sums)
            metrics = {
                "step": len(step_metrics) + 1,
                "epoch": epoch + 1,
                "loss": sums["loss"],
                "accuracy": sums["accuracy"] / len(whole),
                "margin": sums["margin"] / len(whole),
            }
            step_metrics.append(metrics)
            hooks.progress("reward", len(step_metrics), total, metrics)
    model.eval()
    if not distributed.is_main():
        return {"steps": step_metrics, "summary": {}}
    after = evaluate(model, tokenizer, held_out, config.max_length)
    normalization = {"shift": 0.0, "scale": 1.0}
    if config.normalize_scores:
        normalization = _normalization(model, tokenizer, train, config.max_length)
    summary = {
        "train_pairs": len(train),
        **replay,
        "epochs": epochs,
        **after,
        "eval_accuracy_before": before.get("eval_accuracy"),
        "score_shift": normalization["shift"],
        "score_scale": normalization["scale"],
        "seconds": round(time.monotonic() - started, 2),
    }
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, {
            "kind": "reward",
            "format": "full",
            "initialised_from": str(base_path),
            "config": config_to_dict(config),
            "metrics": summary,
            "normalization": {**normalization, "over": "responses of the training pairs"},
            **(manifest or {}),
        })
    return {"steps": step_metrics, "summary": summary}


def _normalization(model, tokenizer, records: list[dict], max_length: int) -> dict:
    """Mean and std of the scores of every distinct response in `records`."""
    seen, prompts, responses = set(), [], []
    for r in records:
        for text in (r["chosen"], r["rejected"]):
            key = (prompt_as_text(r["prompt"]), text)
            if key not in seen:
                seen.add(key)
                prompts.append(r["prompt"])
                responses.append(text)
    scores = score(model, tokenizer, prompts, responses, max_length)
    std = float(scores.std()) if scores.numel() > 1 else 0.0
    return {"shift": float(scores.mean()), "scale": std if std > 1e-6 else 1.0}
