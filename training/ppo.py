"""PPO for RLHF, following "The N+ Implementation Details of RLHF with PPO" (Huang et al. 2024).

https://arxiv.org/abs/2403.17031 — the details, and where each one lives below:
- queries are left-padded so all responses start in the same column (`encode_prompts`);
  position ids are derived from the attention mask, as `generate` does;
- logprobs are recomputed from logits divided by the sampling temperature, for the
  rollout policy, the reference and every update (`_forward`);
- the reward is a per-token KL penalty (k1: logp - logp_ref) against a frozen reference,
  plus the reward model's score on the last real token;
- the KL a rollout *reports*, and that the KL controller, the keep bound and the ceiling
  decide on, is the full-distribution KL at every response position, summed over the
  answer (`sequence_kl`): the same expectation as the summed k1 (chain rule), without the
  noise of the sampled token, and never negative (k1 of a 16-episode rollout measured one
  policy at 11.0 and then 15.4: BENCHMARKS.md); k1's own sum is reported as `kl_k1`;
- responses are truncated after their first EOS; one that never emitted EOS has
  `missing_eos_penalty` subtracted from its score;
- the score comes from the reward model on decoded text, through the reward model's own
  tokenizer (it may differ from the policy's), shifted and scaled to mean 0 and std 1 on
  the responses the reward model was trained on (the paper's reward normalization; the
  shift and scale come with the reward model, see training/reward.py);
- the KL coefficient is steered towards a KL target by the adaptive controller of
  Ziegler et al. (2019) (training/kl.py), and a rollout whose KL passes the hard
  ceiling `kl_max` ends PPO early (see `train_ppo`);
- GAE (the paper's gamma=1, lambda=0.95; lambda is 1.0 here by default, see PPOConfig);
  advantages whitened; optional reward whitening;
- clipped surrogate policy loss and clipped value loss; several epochs of minibatches;
- dropout off everywhere.

Value head: a linear layer on the policy's last hidden state, sharing the trunk (and the
LoRA adapters). The reward model uses another tokenizer, so its weights cannot seed a
value network over policy tokens; instead the head starts at zero (every value 0), which
is the expected return of a centred reward model, and it is carried to the next round
inside the checkpoint.
"""
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from training import device as placement
from training import distributed
from training.checkpoints import atomic_directory, write_manifest
from training.config import PPOConfig
from training.generation import decode_responses, decoder_states_and_logits, sample
from training.kl import kl_controller
from training.models import load_reward_model, policy_manifest, prepare_trainable_policy
from training.progress import NO_HOOKS, Hooks
from training.reward import normalized_score as reward_score, score_normalization

VALUE_HEAD_FILE = "value_head.safetensors"


# --- small numerical pieces (tested against hand-computed values) -------------------

def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    # Bessel's correction, as in the reference implementations
    return var * n / (n - 1).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return torch.gather(F.log_softmax(logits, dim=-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation over response tokens; padding contributes nothing.

    Returns (advantages, returns) with returns = advantages + values.
    """
    rewards, values = rewards * mask, values * mask
    T = rewards.shape[1]
    last = torch.zeros(rewards.shape[0], device=rewards.device)
    advs = []
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advs.append(last)
    advantages = torch.stack(advs[::-1], dim=1) * mask
    return advantages, (advantages + values) * mask


def sequence_kl(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per episode, the sum over response positions of KL(policy || reference) over the whole vocabulary.

    `logits` and `ref_logits` are (batch, positions, vocab) at the sampling temperature; one
    episode at a time, so the (positions, vocab) temporaries stay small.
    """
    out = []
    for row, ref_row, row_mask in zip(logits, ref_logits, mask):
        logp, ref_logp = F.log_softmax(row.float(), dim=-1), F.log_softmax(ref_row.float(), dim=-1)
        out.append(((logp.exp() * (logp - ref_logp)).sum(-1) * row_mask).sum())
    return torch.stack(out)


def policy_loss(new_logprobs, old_logprobs, advantages, mask, cliprange: float):
    """Clipped surrogate objective; returns (loss, clipfrac, approx_kl)."""
    logratio = new_logprobs - old_logprobs
    ratio = torch.exp(logratio)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(pg_loss1, pg_loss2), mask)
    clipfrac = masked_mean((pg_loss2 > pg_loss1).float(), mask)
    approx_kl = 0.5 * masked_mean(logratio ** 2, mask)
    return loss, clipfrac, approx_kl


def value_loss(vpred, old_values, returns, mask, cliprange_value: float):
    """Clipped value loss; returns (loss, clipfrac)."""
    vpred_clipped = old_values + torch.clamp(vpred - old_values, -cliprange_value, cliprange_value)
    v_loss_unclipped = (vpred - returns) ** 2
    v_loss_clipped = (vpred_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(v_loss_unclipped, v_loss_clipped), mask)
    clipfrac = masked_mean((v_loss_clipped > v_loss_unclipped).float(), mask)
    return loss, clipfrac


# --- the trainer ---------------------------------------------------------------------

class PolicyAndValue(torch.nn.Module):
    """The policy plus a scalar value head on its last hidden state."""

    def __init__(self, policy, hidden_size: int):
        super().__init__()
        self.policy = policy
        self.value_head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, logits_to_keep: int = 0):
        """fp32 logits of the last `logits_to_keep` positions (0: all) and values at every position."""
        hidden, logits = decoder_states_and_logits(self.policy, input_ids, attention_mask, logits_to_keep)
        # the head and everything after it in fp32: values, logprobs and the losses are
        # small differences of large numbers, which bf16's 8 bits of mantissa would round away
        return logits, self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)


def _forward(module, query, query_mask, responses, response_mask, temperature):
    """Logprobs of the response tokens at `temperature`, values, and the scaled logits.

    Only the positions that predict response tokens go through the LM head (its 49k-way
    projection dominates the cost of a small policy), which halves the work of the
    forward and backward passes when queries are as long as responses.
    """
    input_ids = torch.cat([query, responses], dim=1)
    attention_mask = torch.cat([query_mask, response_mask], dim=1)
    logits, values = module(input_ids, attention_mask, logits_to_keep=responses.shape[1] + 1)
    context = query.shape[1]
    logits = logits[:, :-1] / temperature
    values = values[:, context - 1:-1]
    return logprobs_of(logits, responses), values, logits


def _prepare_policy(policy_path: Path, reference_path: Path, config: PPOConfig):
    """Trainable policy, and how to get reference logprobs (adapters off, or a frozen copy)."""
    return prepare_trainable_policy(policy_path, reference_path, use_lora=config.use_lora,
                                    lora_r=config.lora_r, lora_alpha=config.lora_alpha)


def ppo_minibatch_update(module: PolicyAndValue, optimizer, trainable: list, mb: dict, config: PPOConfig) -> dict:
    """One gradient step of PPO on a minibatch of rollout tensors; returns its statistics."""
    new_logprobs, vpred, logits = _forward(
        module, mb["query"], mb["query_mask"], mb["responses"], mb["response_mask"], config.temperature,
    )
    m = mb["response_mask"].float()
    pg_loss, clipfrac, approx_kl = policy_loss(new_logprobs, mb["old_logprobs"], mb["advantages"], m, config.cliprange)
    vf_loss, vf_clipfrac = value_loss(vpred, mb["old_values"], mb["returns"], m, config.cliprange_value)
    loss = pg_loss + config.vf_coef * vf_loss
    optimizer.zero_grad()
    loss.backward()
    # data-parallel: every rank's minibatch is an equal share, so the plain mean of the
    # gradients is the whole minibatch's; clipping then sees the same norm on every rank
    distributed.average_gradients(trainable)
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
    optimizer.step()
    with torch.no_grad():
        return {
            "pg_loss": float(pg_loss), "vf_loss": float(vf_loss), "clipfrac": float(clipfrac),
            "vf_clipfrac": float(vf_clipfrac), "approx_kl": float(approx_kl),
            "entropy": float(masked_mean(entropy_from_logits(logits), m)),
            "grad_norm": float(grad_norm),
        }


def check_shares(config: PPOConfig, processes: int) -> None:
    """Every rank must take the same number of episodes and minibatches, or the ranks' all-reduces would not pair up."""
    for name in ("batch_size", "mini_batch_size"):
        if getattr(config, name) % processes:
            raise ValueError(f"ppo.{name}: {getattr(config, name)} cannot be shared equally by {processes} "
                             "training processes; make it a multiple of RLHF_TRAIN_PROCESSES")


def train_ppo(
    policy_path: str | Path,
    reference_path: str | Path,
    reward_path: str | Path,
    prompts: list,
    out_dir: str | Path,
    config: PPOConfig | None = None,
    hooks: Hooks = NO_HOOKS,
    manifest: dict | None = None,
) -> dict:
    """Run PPO from the policy at `policy_path` and write the new policy to `out_dir` atomically.

    `reference_path` is the frozen policy the KL penalty is measured against (round 0).
    Returns {"steps": [per-step metrics], "summary": {...}}.

    What is saved: step t's rollout measures the KL of the policy after t-1 updates, and
    after the last update one more rollout (a check, no update) measures the trained
    policy. The saved policy is the last one whose own rollout measured at most the keep
    bound: `kl_target` with `keep_under_target` (adaptive KL), else `kl_max` (a copy of the
    trainable weights is taken at each rollout under the bound; they are LoRA adapters and
    the value head by default). So no saved policy was ever measured over it; when none
    measured under it, the parent is saved unchanged (`kept_reason` says so).
    Early stop: a rollout that passes `kl_max` ends PPO at once, with the same choice of
    weights. The summary says `early_stopped` and why (`stop_reason`), `kept_step`, and
    its `final_*` figures describe the kept policy's own rollout.

    Data-parallel under torchrun (training/launch.py): every rank draws the same prompts,
    samples and scores its shard of them (`batch_size / world` episodes, with its own
    sampling seed), and averages gradients before each step. The rollout's figures (score,
    KL) are averaged over all ranks, so the KL controller and the early stop decide the same
    everywhere; advantages are whitened per rank, over its own episodes. Rank 0 alone writes
    the checkpoint (the other ranks return an empty summary).
    """
    config = (config or PPOConfig()).validate()
    if not prompts:
        raise ValueError("prompts: PPO needs at least one prompt")
    world = distributed.world_size()
    check_shares(config, world)
    policy_path, reference_path = Path(policy_path), Path(reference_path)
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    model, tokenizer, reference, policy_base = _prepare_policy(policy_path, reference_path, config)
    where = placement.device()
    module = PolicyAndValue(model, model.config.hidden_size).to(where)
    head_file = policy_path / VALUE_HEAD_FILE
    if head_file.exists():
        module.value_head.load_state_dict(load_file(str(head_file), device=str(where)))
    ref_module = None if reference is None else PolicyAndValue(reference, reference.config.hidden_size).to(where)
    reward_model, reward_tokenizer = load_reward_model(reward_path)
    reward_model.requires_grad_(False)
    normalization = score_normalization(reward_path)

    trainable = [p for p in module.parameters() if p.requires_grad]
    if world > 1:
        distributed.broadcast_parameters(trainable)  # fresh LoRA adapters start equal on every rank
        torch.manual_seed(config.seed + distributed.rank())  # but each rank samples its own responses
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, eps=1e-5)
    order = list(range(len(prompts)))
    random.shuffle(order)
    cursor = 0
    step_metrics = []
    kl_ctl = kl_controller(kl_coef=config.kl_coef, adaptive=config.adaptive_kl, target=config.kl_target,
                           horizon=config.kl_horizon)
    keep_bound = _keep_bound(config)
    parent_weights = _copy_trainable(module)
    kept_weights = None  # trainable weights of the last policy measured at most keep_bound
    kept_step = None  # the step whose rollout measured that policy
    stop_reason = kept_reason = None
    started = time.monotonic()
    hooks.progress("ppo", 0, config.steps)

    def next_prompts() -> list:
        nonlocal cursor
        batch_prompts = []
        for _ in range(config.batch_size):
            if cursor == len(order):
                random.shuffle(order)
                cursor = 0
            batch_prompts.append(prompts[order[cursor]])
            cursor += 1
        return distributed.shard(batch_prompts)

    def rollout(step: int, batch_prompts: list, closing: bool):
        """Sample the current policy on `batch_prompts`, score it; tensors for the update and its figures.

        The closing check reports the rollout's entropy (a step that updates reports its minibatches')."""
        query, query_mask, responses, response_mask, ended = sample(
            model, tokenizer, batch_prompts, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
        )
        mask = response_mask.float()
        with torch.no_grad():
            old_logprobs, old_values, logits = _forward(module, query, query_mask, responses, response_mask,
                                                        config.temperature)
            entropy = {"entropy": float(masked_mean(entropy_from_logits(logits), mask))} if closing else {}
            if reference is None:
                with model.disable_adapter():
                    ref_logprobs, _, ref_logits = _forward(module, query, query_mask, responses, response_mask,
                                                           config.temperature)
            else:
                ref_logprobs, _, ref_logits = _forward(ref_module, query, query_mask, responses, response_mask,
                                                       config.temperature)
            exact_kl = sequence_kl(logits, ref_logits, mask)
            del logits, ref_logits
            texts = decode_responses(tokenizer, responses, response_mask)
            scores = reward_score(reward_model, reward_tokenizer, batch_prompts, texts, config.reward_max_length,
                                  normalization)
            scores = torch.where(ended, scores, scores - config.missing_eos_penalty)
            kl = (old_logprobs - ref_logprobs) * mask
            non_score_reward = -kl_ctl.value * kl
        figures = {
            "step": step,
            "score": float(scores.mean()),
            "kl": float(exact_kl.mean()),
            "kl_k1": float(kl.sum(1).mean()),
            "kl_coef": kl_ctl.value,
            "non_score_reward": float(non_score_reward.sum(1).mean()),
            **entropy,
            "response_length": float(response_mask.sum(1).float().mean()),
            "eos_fraction": float(ended.float().mean()),
        }
        if world > 1:  # equal shards: the mean of the ranks' means is the batch's
            averaged = distributed.sum_over_ranks({k: v for k, v in figures.items() if k not in ("step", "kl_coef")})
            figures.update({k: v / world for k, v in averaged.items()})
        tensors = {"query": query, "query_mask": query_mask, "responses": responses, "response_mask": response_mask,
                   "old_logprobs": old_logprobs, "old_values": old_values, "scores": scores, "kl": kl,
                   "non_score_reward": non_score_reward}
        return tensors, figures

    for step in range(1, config.steps + 2):
        hooks.check()
        t0 = time.monotonic()
        closing = step == config.steps + 1  # measures the trained policy; no update
        tensors, figures = rollout(step, next_prompts(), closing)
        if not closing and config.kl_max is not None and figures["kl"] > config.kl_max:
            stop_reason = (f"KL to the reference {figures['kl']:.2f} passed kl_max {config.kl_max:g} at step {step}; "
                           + _kept_phrase(kept_step))
            _restore_trainable(module, kept_weights or parent_weights)
            step_metrics.append({**figures, "stopped": True})
            hooks.progress("ppo", min(step, config.steps), config.steps, step_metrics[-1])
            break
        if figures["kl"] <= keep_bound:
            kept_weights, kept_step = (None, step) if closing else (_copy_trainable(module), step)
        if closing:
            step_metrics.append({**figures, "check": True})
            hooks.progress("ppo", config.steps, config.steps, step_metrics[-1])
            if kept_step != step:
                bound = "kl_max" if keep_bound == config.kl_max else "kl_target"
                kept_reason = (f"the trained policy measured KL {figures['kl']:.2f} over {bound} {keep_bound:g}; "
                               + _kept_phrase(kept_step))
                _restore_trainable(module, kept_weights or parent_weights)
            break

        # --- rewards, advantages and the PPO epochs over minibatches -----------------
        mask = tensors["response_mask"].float()
        with torch.no_grad():
            rewards = tensors["non_score_reward"].clone()
            last = (tensors["response_mask"].sum(1) - 1).clamp(min=0)
            rewards[torch.arange(rewards.shape[0], device=rewards.device), last] += tensors["scores"].to(rewards.device)
            if config.whiten_rewards:
                rewards = masked_whiten(rewards, mask, shift_mean=False)
            advantages, returns = compute_gae(rewards, tensors["old_values"], mask, config.gamma, config.lam)
            advantages = masked_whiten(advantages, mask)
        stats = {k: [] for k in ("pg_loss", "vf_loss", "clipfrac", "vf_clipfrac", "approx_kl", "entropy", "grad_norm")}
        query = tensors["query"]
        n = query.shape[0]
        mini_batch_size = config.mini_batch_size // world
        for _ in range(config.ppo_epochs):
            perm = torch.randperm(n).to(query.device)
            for start in range(0, n, mini_batch_size):
                idx = perm[start:start + mini_batch_size]
                minibatch = {k: tensors[k][idx] for k in ("query", "query_mask", "responses", "response_mask",
                                                          "old_logprobs", "old_values")}
                step_stats = ppo_minibatch_update(module, optimizer, trainable, {
                    **minibatch, "advantages": advantages[idx], "returns": returns[idx]}, config)
                for key, value in step_stats.items():
                    stats[key].append(value)

        kl_ctl.update(figures["kl"], n * world)
        elapsed = time.monotonic() - t0
        update = {key: _avg(values) for key, values in stats.items()}
        if world > 1:
            update = {k: v / world for k, v in distributed.sum_over_ranks(update).items()}
        metrics = {
            **figures,
            **{k: update[k] for k in ("entropy", "clipfrac", "approx_kl", "pg_loss", "vf_loss", "vf_clipfrac",
                                      "grad_norm")},
            "episodes_per_s": n * world / elapsed if elapsed > 0 else 0.0,
        }
        step_metrics.append(metrics)
        hooks.progress("ppo", step, config.steps, metrics)

    trained = [m for m in step_metrics if not m.get("stopped") and not m.get("check")]
    # the kept policy is the one step `kept_step` sampled from, after kept_step - 1 updates
    final = step_metrics[kept_step - 1] if kept_step else step_metrics[0]
    summary = {
        "steps": len(trained),
        "updates": kept_step - 1 if kept_step else 0,
        "kept_step": kept_step,
        "seconds": round(time.monotonic() - started, 2),
        **{f"final_{k}": final.get(k) for k in ("score", "kl", "entropy", "response_length", "eos_fraction")},
        "mean_score": _avg([m["score"] for m in trained]),
        "mean_kl": _avg([m["kl"] for m in trained]),
        "final_kl_coef": kl_ctl.value,
        "kl_target": config.kl_target if config.adaptive_kl else None,
        "kl_max": config.kl_max,
        "keep_under_target": config.adaptive_kl and config.keep_under_target,
        "early_stopped": stop_reason is not None,
        "stop_reason": stop_reason,
        "kept_reason": kept_reason,
    }
    if not distributed.is_main():
        return {"steps": step_metrics, "summary": {}}
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        save_file({k: v.detach().cpu().contiguous() for k, v in module.value_head.state_dict().items()},
                  str(tmp / VALUE_HEAD_FILE))
        write_manifest(tmp, policy_manifest(config, policy_base=policy_base, policy_path=policy_path,
                                            reference_path=reference_path, summary=summary, extra=manifest,
                                            reward_model=str(reward_path)))
    return {"steps": step_metrics, "summary": summary}


def _keep_bound(config: PPOConfig) -> float:
    """The most KL to round 0 a saved policy may have measured: kl_target when PPO keeps under it, else kl_max."""
    bounds = [config.kl_max] if config.kl_max is not None else []
    if config.adaptive_kl and config.keep_under_target:
        bounds.append(config.kl_target)
    return min(bounds, default=float("inf"))


def _kept_phrase(kept_step: int | None) -> str:
    """What a round saved instead of its last weights: the policy a step measured, or the parent."""
    return f"kept the policy measured at step {kept_step}" if kept_step else "kept the parent unchanged"


def _copy_trainable(module: torch.nn.Module) -> dict:
    """A detached copy of every trainable tensor, by parameter name."""
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


def _restore_trainable(module: torch.nn.Module, weights: dict) -> None:
    """Put back the tensors `_copy_trainable` took."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in weights:
                p.copy_(weights[name])


def _avg(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
