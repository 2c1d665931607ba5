"""Direct preference optimisation from the round's votes (Rafailov et al. 2023).

https://arxiv.org/abs/2305.18290 — the policy is trained on the preference pairs
directly, with no reward model and no sampling during training: for a pair (x, y_w, y_l)
the loss is

    -log σ( β·[log π(y_w|x) − log π_ref(y_w|x)] − β·[log π(y_l|x) − log π_ref(y_l|x)] )

and β·log(π/π_ref) of a response is its "implicit reward" (`dpo_loss`).

Why an own loop rather than TRL's DPOTrainer: the loss is a dozen lines, the rest is the
same tokenization, device placement, LoRA handling and checkpoint format as PPO's
(training/ppo.py), with progress and cancellation between steps, which a Trainer would
hide behind callbacks; on a CPU with a few hundred pairs there is nothing a Trainer would
add but start-up time and a datasets round trip.

The reference is round 0, not the parent. A round's snapshot holds every vote so far,
so with the parent as reference each round would push the old pairs' margins up once
more, and the policy would drift further from round 0 with every round on the same
votes. With round 0 the objective is the same one each round (on more data): the round
starts from the parent, and the pairs the parent already learned have a small loss and
push little. It is also the reference of PPO's KL penalty and of the degeneration guards,
so "KL to round 0" means the same for both methods; and with LoRA over round 0's weights
its logprobs are the parent with its adapters disabled, computed once before training.

Sequences are laid out as PPO's: the prompt through the chat template, left-padded, then
the response right-padded; EOS is appended to a response that ended with EOS (`*_finished`
in the record; a response cut at the token limit gets none, so the policy is not taught to
stop where the limit happened to cut). Logprobs are at temperature 1: DPO's objective is
about the policy's own distribution.

Records are the reward model's: {"prompt", "chosen", "rejected", "agreement" (optional;
weights the pair's loss), "chosen_finished"/"rejected_finished" (optional, default True)}.
"""
import random
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from training import device as placement
from training.checkpoints import atomic_directory, write_manifest
from training.config import DPOConfig
from training.generation import eos_id, make_generator, render_prompt, response_logits, sample
from training.models import policy_manifest, prepare_trainable_policy
from training.ppo import VALUE_HEAD_FILE, logprobs_of, sequence_kl
from training.progress import NO_HOOKS, Hooks
from training.reward import NotEnoughData, split_records

def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float, weight: torch.Tensor | None = None):
    """The sigmoid DPO loss over sequence logprobs; returns (loss, chosen_rewards, rejected_rewards).

    The rewards are the implicit ones, β·(log π − log π_ref), detached. `weight` weighs each
    pair's loss (a pair 2 of 3 annotators agreed on counts less than a unanimous one).
    """
    chosen_rewards = beta * (policy_chosen - ref_chosen)
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    per_pair = -F.logsigmoid(chosen_rewards - rejected_rewards)
    if weight is None:
        loss = per_pair.mean()
    else:
        loss = (per_pair * weight).sum() / weight.sum().clamp(min=1e-8)
    return loss, chosen_rewards.detach(), rejected_rewards.detach()


def pair_figures(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> dict:
    """Implicit rewards, their margin and the share of pairs where chosen is strictly above rejected."""
    margin = chosen_rewards - rejected_rewards
    return {
        "chosen_reward": float(chosen_rewards.mean()),
        "rejected_reward": float(rejected_rewards.mean()),
        "margin": float(margin.mean()),
        "accuracy": float((margin > 0).float().mean()),
    }


def encode_pairs(tokenizer, records: list[dict], config: DPOConfig, device) -> dict:
    """Rows 0..n-1 are the chosen responses, n..2n-1 the rejected ones, each after its prompt.

    Returns {"query", "query_mask"} (left-padded) and {"responses", "response_mask"}
    (right-padded), as PPO lays out its rollouts.
    """
    eos = eos_id(tokenizer)
    queries, responses = [], []
    for side in ("chosen", "rejected"):
        for record in records:
            # keep the end of a long prompt: it holds the question and the opened assistant turn
            query = tokenizer(render_prompt(tokenizer, record["prompt"]),
                              add_special_tokens=False)["input_ids"][-config.max_prompt_length:]
            response = tokenizer(record[side], add_special_tokens=False)["input_ids"]
            if record.get(f"{side}_finished", True):
                response = response + [eos]
            response = response[:config.max_length - len(query)] or [eos]
            queries.append(query)
            responses.append(response)
    pad = tokenizer.pad_token_id
    q_width = max(len(q) for q in queries)
    r_width = max(len(r) for r in responses)
    query = torch.full((len(queries), q_width), pad, dtype=torch.long)
    query_mask = torch.zeros_like(query)
    response = torch.full((len(responses), r_width), pad, dtype=torch.long)
    response_mask = torch.zeros_like(response)
    for row, (q, r) in enumerate(zip(queries, responses)):
        query[row, q_width - len(q):] = torch.tensor(q)
        query_mask[row, q_width - len(q):] = 1
        response[row, :len(r)] = torch.tensor(r)
        response_mask[row, :len(r)] = 1
    return {"query": query.to(device), "query_mask": query_mask.to(device),
            "responses": response.to(device), "response_mask": response_mask.to(device)}


def response_logprobs(model, batch: dict, temperature: float = 1.0) -> torch.Tensor:
    """Per-token logprobs of the response tokens (0 on padding), shape (rows, response width)."""
    return logprobs_of(response_logits(model, batch, temperature), batch["responses"]) * batch["response_mask"]


def _reference(model, reference, batch: dict, temperature: float, of=response_logprobs) -> torch.Tensor:
    """`of` (logprobs or logits) under the reference: round 0, or the LoRA policy with its adapters off."""
    with torch.no_grad():
        if reference is None:
            with model.disable_adapter():
                return of(model, batch, temperature)
        return of(reference, batch, temperature)


def _batches(records: list, size: int):
    for start in range(0, len(records), size):
        yield records[start:start + size]


def _weights(records: list[dict], device) -> torch.Tensor:
    return torch.tensor([float(r.get("agreement", 1.0)) for r in records], device=device)


def evaluate(model, tokenizer, records: list[dict], ref_logprobs: list[torch.Tensor], config: DPOConfig) -> dict:
    """Loss, implicit rewards, margin and accuracy of `records` under `model` (no gradients).

    `ref_logprobs[i]` is the reference's (chosen, rejected) sequence logprob of record i.
    """
    if not records:
        return {"pairs": 0}
    where = placement.device()
    losses, chosen, rejected, weights = [], [], [], []
    with torch.no_grad():
        for start in range(0, len(records), config.batch_size):
            batch_records = records[start:start + config.batch_size]
            n = len(batch_records)
            seq = response_logprobs(model, encode_pairs(tokenizer, batch_records, config, where)).sum(1)
            ref = torch.stack(ref_logprobs[start:start + n]).to(where)
            weight = _weights(batch_records, where)
            loss, c, r = dpo_loss(seq[:n], seq[n:], ref[:, 0], ref[:, 1], config.beta, weight)
            losses.append(float(loss) * float(weight.sum()))
            weights.append(float(weight.sum()))
            chosen.append(c)
            rejected.append(r)
    return {"pairs": len(records), "loss": sum(losses) / max(sum(weights), 1e-8),
            **pair_figures(torch.cat(chosen), torch.cat(rejected))}


def measure_kl(model, tokenizer, reference, prompts: list, config: DPOConfig) -> dict:
    """KL of the policy to the reference on its own answers to `prompts`, as PPO measures it.

    One answer per prompt at `kl_temperature`; the figure is PPO's `kl`: per answer, the
    exact KL over the vocabulary summed over the answer's positions (`ppo.sequence_kl`),
    averaged over answers. It is never negative, unlike the sampled k1 estimate (reported as
    `kl_k1`), which on a handful of answers can read below zero.
    """
    where = next(model.parameters()).device
    generator = make_generator(config.seed, device=where)
    kls, k1s, lengths, ended_all = [], [], [], []
    with torch.no_grad():
        for batch_prompts in _batches(prompts, config.batch_size):
            query, query_mask, responses, response_mask, ended = sample(
                model, tokenizer, batch_prompts, max_new_tokens=config.kl_max_new_tokens,
                temperature=config.kl_temperature, generator=generator,
            )
            batch = {"query": query, "query_mask": query_mask, "responses": responses, "response_mask": response_mask}
            logits = response_logits(model, batch, config.kl_temperature)
            ref_logits = _reference(model, reference, batch, config.kl_temperature, of=response_logits)
            kls.append(sequence_kl(logits, ref_logits, response_mask))
            k1 = logprobs_of(logits, responses) - logprobs_of(ref_logits, responses)
            k1s.append((k1 * response_mask).sum(1))
            del logits, ref_logits
            lengths.append(response_mask.sum(1).float())
            ended_all.append(ended.float())
    return {"kl_to_round0": float(torch.cat(kls).mean()), "kl_k1": float(torch.cat(k1s).mean()),
            "kl_prompts": len(prompts), "kl_response_length": float(torch.cat(lengths).mean()),
            "kl_eos_fraction": float(torch.cat(ended_all).mean())}


def train_dpo(
    policy_path: str | Path,
    reference_path: str | Path,
    records: list[dict],
    out_dir: str | Path,
    config: DPOConfig | None = None,
    hooks: Hooks = NO_HOOKS,
    manifest: dict | None = None,
    kl_prompts: list | None = None,
) -> dict:
    """Train the policy at `policy_path` on the pairs `records`; write it to `out_dir` atomically.

    `reference_path` is round 0 (see the module's note). `kl_prompts` (held-out prompts) are
    answered by the new policy to measure its KL to the reference; up to `config.kl_prompts`
    of them are used. Returns {"steps": [per-step metrics], "summary": {...}}; the summary
    has the train and held-out figures after training (`train_*`, `eval_*`), the held-out
    ones of the parent (`eval_*_before`) and the KL.
    """
    config = (config or DPOConfig()).validate()
    if not records:
        raise NotEnoughData("no preference pairs to train the policy on")
    policy_path, reference_path = Path(policy_path), Path(reference_path)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    train, held_out = split_records(records, config.eval_fraction, config.seed)
    model, tokenizer, reference, policy_base = prepare_trainable_policy(
        policy_path, reference_path, use_lora=config.use_lora, lora_r=config.lora_r, lora_alpha=config.lora_alpha)
    where = placement.device()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    steps_per_epoch = -(-len(train) // config.batch_size)
    total = steps_per_epoch * config.epochs
    started = time.monotonic()
    hooks.progress("dpo", 0, total)

    # The reference never changes: its sequence logprobs are computed once, before training.
    ref_train, ref_eval = [], []
    for part, out in ((train, ref_train), (held_out, ref_eval)):
        for batch_records in _batches(part, config.batch_size):
            hooks.check()
            n = len(batch_records)
            seq = _reference(model, reference, encode_pairs(tokenizer, batch_records, config, where), 1.0).sum(1)
            out.extend(torch.stack([seq[:n], seq[n:]], dim=1).cpu())
    before = evaluate(model, tokenizer, held_out, ref_eval, config)

    rng = random.Random(config.seed)
    step_metrics = []
    for epoch in range(1, config.epochs + 1):
        order = list(range(len(train)))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            hooks.check()
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            batch_records = [train[i] for i in idx]
            n = len(batch_records)
            seq = response_logprobs(model, encode_pairs(tokenizer, batch_records, config, where)).sum(1)
            ref = torch.stack([ref_train[i] for i in idx]).to(where)
            loss, chosen, rejected = dpo_loss(seq[:n], seq[n:], ref[:, 0], ref[:, 1], config.beta,
                                              _weights(batch_records, where))
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            metrics = {"step": len(step_metrics) + 1, "epoch": epoch, "loss": float(loss.detach()),
                       **pair_figures(chosen, rejected), "grad_norm": float(grad_norm)}
            step_metrics.append(metrics)
            hooks.progress("dpo", len(step_metrics), total, metrics)

    hooks.check()
    after_train = evaluate(model, tokenizer, train, ref_train, config)
    after = evaluate(model, tokenizer, held_out, ref_eval, config)
    kl = {}
    if config.kl_prompts and kl_prompts:
        hooks.check()
        kl = measure_kl(model, tokenizer, reference, list(kl_prompts)[:config.kl_prompts], config)
    summary = {
        "train_pairs": len(train),
        "eval_pairs": len(held_out),
        "epochs": config.epochs,
        "steps": len(step_metrics),
        "beta": config.beta,
        **{f"train_{k}": v for k, v in after_train.items() if k != "pairs"},
        **{f"eval_{k}": v for k, v in after.items() if k != "pairs"},
        **{f"eval_{k}_before": v for k, v in before.items() if k in ("loss", "accuracy", "margin")},
        **kl,
        "seconds": round(time.monotonic() - started, 2),
    }
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # A later PPO round starts its value head from the parent's, as it would after PPO.
        if (policy_path / VALUE_HEAD_FILE).exists():
            shutil.copyfile(policy_path / VALUE_HEAD_FILE, tmp / VALUE_HEAD_FILE)
        write_manifest(tmp, policy_manifest(config, policy_base=policy_base, policy_path=policy_path,
                                            reference_path=reference_path, summary=summary, extra=manifest,
                                            method="dpo"))
    return {"steps": step_metrics, "summary": summary}
