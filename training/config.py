"""Dataclass configs for generation, reward-model training, PPO, DPO and the degeneration guards.

Each config is saved inside every checkpoint it produced (`rlhf_checkpoint.json`), so a
checkpoint always says how it was made. Defaults are sized so that one demo round with
SmolLM2-135M finishes in minutes on a laptop CPU.
"""
import functools
import math
import threading
import types
import typing
from dataclasses import asdict, dataclass, fields

SEED_MAX = 2**63 - 1
"""Seeds are stored as JSON and handed to torch: non-negative and within 64 bits."""


class ConfigError(ValueError):
    """A config field has a value that cannot work; `field` names it, `reason` says why."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def path(self, prefix: str) -> str:
        """The field as seen from a larger settings object: `ppo.steps`, or `ppo` itself."""
        return f"{prefix}.{self.field}" if self.field else prefix


def _check(cond: bool, name: str, reason: str) -> None:
    if not cond:
        raise ConfigError(name, reason)


@dataclass
class GenerationConfig:
    """How samples are drawn from a policy."""

    max_new_tokens: int = 96
    """Upper bound on response length, in tokens."""
    temperature: float = 0.7
    """Sampling temperature; PPO recomputes logprobs at this same temperature."""
    top_p: float = 1.0
    """Nucleus sampling; 1.0 keeps the full distribution (PPO needs the true policy)."""
    batch_size: int = 8
    """Prompts per `generate` call (left-padded)."""
    seed: int | None = None
    """Seed for reproducible samples; None draws a fresh one."""

    def validate(self) -> "GenerationConfig":
        _check(1 <= self.max_new_tokens <= 4096, "max_new_tokens", "must be between 1 and 4096")
        _check(0.0 < self.temperature <= 5.0, "temperature", "must be in (0, 5]")
        _check(0.0 < self.top_p <= 1.0, "top_p", "must be in (0, 1]")
        _check(1 <= self.batch_size <= 512, "batch_size", "must be between 1 and 512")
        _check(self.seed is None or 0 <= self.seed <= SEED_MAX, "seed", f"must be between 0 and {SEED_MAX} (or null)")
        return self


@dataclass
class RewardConfig:
    """Training of the Bradley–Terry reward model."""

    epochs: int = 3
    """Passes over the training pairs. The model starts from the previous round's, and
    `min_steps` raises the passes on a small snapshot: 3 passes (at least 40 steps) at 1e-4
    reached held-out accuracy 0.93-1.0 in every round of BENCHMARKS.md's three-round runs
    in 63-83 s, where 8 passes over all pairs so far took up to 173 s a round. (3 passes at
    5e-5 without the minimum left MiniLM at 0.67 on 40 pairs.)"""
    batch_size: int = 16
    """Pairs per optimizer step."""
    min_steps: int = 40
    """At least this many optimizer steps: on a small snapshot (an early round has a few
    dozen pairs, one batch an epoch) `epochs` is raised until they are reached. 8 epochs
    of 14 pairs were 8 steps and left the model where it started (held-out accuracy 0.5)."""
    learning_rate: float = 1e-4
    """AdamW learning rate (encoders like MiniLM tolerate more than LMs)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_length: int = 256
    """Tokens of prompt+response fed to the reward model; longer inputs are truncated from the prompt side."""
    eval_fraction: float = 0.2
    """Share of pairs held out for pairwise accuracy (at least one pair when there are 5 or more)."""
    center_rewards_coefficient: float = 0.01
    """Weight of the (r_chosen + r_rejected)^2 term that keeps rewards centred on zero."""
    use_margin: bool = True
    """Subtract a margin taken from vote strength inside the logsigmoid."""
    normalize_scores: bool = True
    """Save a shift and scale with the model so that PPO's scores have mean 0 and std 1
    on the responses it was trained on (see training/reward.py)."""
    seed: int = 0
    """Seed for the split, shuffling and head initialisation."""
    replay_pairs: int = 256
    """Pairs older than the warm-start model's snapshot trained on again, sampled (seeded)
    from all of them; the new pairs are always trained on. Keeps a round's cost from
    growing with every vote ever cast (the model already learnt the old ones; the sample
    keeps it from forgetting them). 0 trains on every old pair again. Held-out accuracy is
    still measured on pairs from all votes."""

    def validate(self) -> "RewardConfig":
        _check(1 <= self.epochs <= 100, "epochs", "must be between 1 and 100")
        _check(1 <= self.batch_size <= 1024, "batch_size", "must be between 1 and 1024")
        _check(0 <= self.min_steps <= 100_000, "min_steps", "must be between 0 and 100000")
        _check(0 < self.learning_rate < 1, "learning_rate", "must be in (0, 1)")
        _check(0.0 <= self.eval_fraction < 1.0, "eval_fraction", "must be in [0, 1)")
        _check(16 <= self.max_length <= 8192, "max_length", "must be between 16 and 8192")
        _check(0 <= self.weight_decay < 1, "weight_decay", "must be in [0, 1)")
        _check(0 <= self.replay_pairs <= 1_000_000, "replay_pairs", "must be between 0 and 1000000 (0: all old pairs)")
        _check(0 <= self.center_rewards_coefficient <= 100, "center_rewards_coefficient", "must be between 0 and 100")
        _check(0 <= self.seed <= SEED_MAX, "seed", f"must be between 0 and {SEED_MAX}")
        return self


@dataclass
class PPOConfig:
    """PPO on the policy, after "The N+ Implementation Details of RLHF with PPO" (Huang et al. 2024)."""

    steps: int = 12
    """Rollout/update iterations; each samples `batch_size` prompts. 12 x 16 episodes is
    what the simulated rounds of BENCHMARKS.md ran (PPO ~420 s a round on 2 CPU cores);
    6 steps learned too little to pass the goal in three rounds. The KL controller and
    `kl_max` keep the extra steps from drifting."""
    batch_size: int = 16
    """Prompts (episodes) per rollout. On a CPU, sampling 16 costs little more than
    sampling 8 and the update costs the same per episode: a step of 16 took ~36 s where
    one of 8 took ~28 s with SmolLM2-135M, so twice the samples for 30 % more time
    (BENCHMARKS.md)."""
    mini_batch_size: int = 4
    """Episodes per gradient step inside a PPO epoch."""
    ppo_epochs: int = 2
    """Passes over each rollout."""
    learning_rate: float = 3e-4
    """AdamW learning rate for the trainable weights (LoRA adapters and value head). 3e-4
    is what the simulated rounds of BENCHMARKS.md learned with (1e-3 was unstable); it
    suits LoRA adapters. For full fine-tuning (`use_lora` off) use ~1e-5."""
    max_new_tokens: int = 48
    """Response length during rollouts."""
    temperature: float = 0.7
    """Sampling temperature; logprobs of rollout, reference and update all use it."""
    kl_coef: float = 0.05
    """Per-token KL penalty (k1 estimator) against the frozen reference; with `adaptive_kl`
    the starting value of the coefficient, which the controller then moves every step."""
    adaptive_kl: bool = True
    """Steer `kl_coef` towards `kl_target` with the adaptive controller of Ziegler et al.
    (2019) (training/kl.py). Off: `kl_coef` stays fixed, as before."""
    kl_target: float = 12.0
    """KL to round 0 (nats per response, summed over tokens) the controller aims at in every
    round, and with `keep_under_target` the most a saved policy may have measured. The
    reference is round 0, so this bounds the total drift, not a round's step. Measured in
    BENCHMARKS.md (issue 12): under "contains with", the policy preferred on 93 % of held-out
    prompts measured KL 11.2 with fluent answers, and one bounded at about 7 won 53 %; the
    collapses seen came at 28-35."""
    kl_horizon: float = 32.0
    """Episodes over which the controller closes the gap to the target (K_beta = batch /
    horizon). Ziegler et al. use 10,000 for runs some six times longer; a round here is
    ~100-200 episodes, so 32 keeps that ratio and lets the coefficient move up to x1.1
    per step of 16 episodes."""
    kl_max: float | None = 20.0
    """Hard ceiling on the KL to round 0: a rollout that measures more stops PPO at once
    (the round keeps the last policy measured under the keep bound). None turns the
    ceiling off. 20 is well below the KL at which BENCHMARKS.md's policies collapsed (28-35)."""
    keep_under_target: bool = True
    """With `adaptive_kl`, the policy saved is the last one whose own rollout measured a KL
    to round 0 of at most `kl_target`: after the last update one more rollout measures the
    trained policy (no update), and when it is over the target the round keeps the last
    policy measured under it (the parent, if none was). The controller alone only steers
    towards the target: a simulated run that learned ended its rounds at KL 7.4, 7.4, 11.2
    with a target of 6 (BENCHMARKS.md), and the weights after the last update were never
    measured (the next round measured them at 15.9). Off: the target only steers, and
    `kl_max` alone bounds what is saved."""
    missing_eos_penalty: float = 0.0
    """Subtracted from the score of a response that never emitted EOS (the N+ paper's
    penalty). Off by default: at 48 rollout tokens SmolLM2 finishes only a quarter of its
    answers, so the penalty rewards brevity nobody voted for; with it on, simulated rounds
    on `contains:with` fell to 7 % of held-out prompts and `list:2:3` could not learn,
    where without it `contains:with` reached 67 % in 3 rounds (BENCHMARKS.md, issue 12).
    Worth turning on when rollouts are as long as the project's answers and annotators
    mark cut-off answers down."""
    whiten_rewards: bool = False
    """Whiten the per-token rewards before GAE."""
    gamma: float = 1.0
    """Discount; 1.0 as in the paper (episodes are short)."""
    lam: float = 1.0
    """GAE lambda. The value head starts at zero (see training/ppo.py), so until it has
    learned, lambda < 1 passes only lambda^(T-t) of the final score back to token t: early
    tokens get almost no credit in a first short round. 1.0 (Monte-Carlo returns minus the
    value) nearly doubled the effect of a round in BENCHMARKS.md and every simulated run
    there used it; 0.95 is the paper's."""
    cliprange: float = 0.2
    """Policy ratio clip."""
    cliprange_value: float = 0.2
    """Value prediction clip around the rollout values."""
    vf_coef: float = 0.1
    """Weight of the value loss (the value head shares the policy trunk)."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    use_lora: bool = True
    """Train LoRA adapters (peft) instead of all weights: less memory and time on CPU;
    the reference is then the base with adapters disabled."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    reward_max_length: int = 256
    """Tokens of prompt+response given to the reward model when scoring."""
    seed: int = 0
    """Seed for prompt order and sampling."""

    def validate(self) -> "PPOConfig":
        _check(1 <= self.steps <= 10_000, "steps", "must be between 1 and 10000")
        _check(1 <= self.batch_size <= 1024, "batch_size", "must be between 1 and 1024")
        _check(1 <= self.mini_batch_size <= self.batch_size, "mini_batch_size", "must be between 1 and batch_size")
        _check(self.batch_size % self.mini_batch_size == 0, "mini_batch_size", "must divide batch_size")
        _check(1 <= self.ppo_epochs <= 16, "ppo_epochs", "must be between 1 and 16")
        _check(0 < self.learning_rate < 1, "learning_rate", "must be in (0, 1)")
        _check(1 <= self.max_new_tokens <= 2048, "max_new_tokens", "must be between 1 and 2048")
        _check(0 < self.temperature <= 5, "temperature", "must be in (0, 5]")
        _check(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        _check(self.kl_target > 0, "kl_target", "must be > 0")
        _check(self.kl_horizon > 0, "kl_horizon", "must be > 0")
        _check(self.kl_max is None or self.kl_max > 0, "kl_max", "must be > 0, or null for no ceiling")
        _check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        _check(0 <= self.lam <= 1, "lam", "must be in [0, 1]")
        _check(0 < self.cliprange < 1, "cliprange", "must be in (0, 1)")
        _check(self.cliprange_value > 0, "cliprange_value", "must be > 0")
        _check(0 <= self.missing_eos_penalty <= 100, "missing_eos_penalty", "must be between 0 and 100")
        _check(self.kl_coef <= 100, "kl_coef", "must be between 0 and 100")
        _check(self.cliprange_value <= 100, "cliprange_value", "must be in (0, 100]")
        _check(0 <= self.vf_coef <= 100, "vf_coef", "must be between 0 and 100")
        _check(0 < self.max_grad_norm <= 1000, "max_grad_norm", "must be in (0, 1000]")
        _check(1 <= self.lora_r <= 1024, "lora_r", "must be between 1 and 1024")
        _check(1 <= self.lora_alpha <= 4096, "lora_alpha", "must be between 1 and 4096")
        _check(16 <= self.reward_max_length <= 8192, "reward_max_length", "must be between 16 and 8192")
        _check(0 <= self.seed <= SEED_MAX, "seed", f"must be between 0 and {SEED_MAX}")
        return self


@dataclass
class DPOConfig:
    """Direct preference optimisation on the policy (Rafailov et al. 2023), instead of a reward
    model and PPO: the same vote snapshot, trained into the policy in one supervised pass.

    The defaults are first values for LoRA on a small policy, measured on simulated rounds
    beside PPO since (BENCHMARKS.md, "PPO vs DPO")."""

    beta: float = 0.1
    """The paper's beta: how far the policy may move from the reference (round 0) for a given
    preference; the implicit reward of a response is beta x log(pi / pi_ref). 0.1 is the
    value the paper used for dialogue; larger keeps the policy closer to round 0."""
    learning_rate: float = 1e-4
    """AdamW learning rate of the trainable weights (LoRA adapters by default). LoRA wants
    more than the paper's 1e-6 for full fine-tuning; 1e-4 is a first value, between the
    reward model's and PPO's."""
    epochs: int = 3
    """Passes over the training pairs."""
    batch_size: int = 8
    """Pairs per optimizer step (each is a chosen and a rejected response)."""
    eval_fraction: float = 0.2
    """Share of the pairs held out to measure accuracy and margins after training (none with
    fewer than 5 pairs)."""
    max_prompt_length: int = 256
    """Prompt tokens kept (after the chat template); longer prompts lose their beginning."""
    max_length: int = 512
    """Prompt plus response tokens; longer responses are cut at the end."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    use_lora: bool = True
    """Train LoRA adapters (peft) instead of all weights, as PPO does: the checkpoint is an
    adapter over the base, and round 0's logprobs are the base with adapters off."""
    lora_r: int = 16
    """LoRA rank (when the parent has no adapters yet; a parent's adapters keep their own)."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    kl_prompts: int = 8
    """Held-out prompts the new policy answers after training to measure its KL to round 0
    (the figure PPO reports as `kl`); 0 skips the measurement."""
    kl_max_new_tokens: int = 48
    """Answer length for that measurement (PPO's default response length)."""
    kl_temperature: float = 0.7
    """Sampling temperature for that measurement; logprobs use it too, as PPO's KL does."""
    seed: int = 0
    """Seed for the split, the pair order and the KL samples."""

    def validate(self) -> "DPOConfig":
        _check(0 < self.beta <= 10, "beta", "must be in (0, 10]")
        _check(0 < self.learning_rate < 1, "learning_rate", "must be in (0, 1)")
        _check(1 <= self.epochs <= 100, "epochs", "must be between 1 and 100")
        _check(1 <= self.batch_size <= 1024, "batch_size", "must be between 1 and 1024")
        _check(0.0 <= self.eval_fraction < 1.0, "eval_fraction", "must be in [0, 1)")
        _check(8 <= self.max_prompt_length <= 8192, "max_prompt_length", "must be between 8 and 8192")
        _check(self.max_prompt_length < self.max_length <= 16384, "max_length",
               "must be more than max_prompt_length and at most 16384")
        _check(0 < self.max_grad_norm <= 1000, "max_grad_norm", "must be in (0, 1000]")
        _check(1 <= self.lora_r <= 1024, "lora_r", "must be between 1 and 1024")
        _check(1 <= self.lora_alpha <= 4096, "lora_alpha", "must be between 1 and 4096")
        _check(0 <= self.kl_prompts <= 256, "kl_prompts", "must be between 0 and 256")
        _check(1 <= self.kl_max_new_tokens <= 2048, "kl_max_new_tokens", "must be between 1 and 2048")
        _check(0 < self.kl_temperature <= 5, "kl_temperature", "must be in (0, 5]")
        _check(0 <= self.seed <= SEED_MAX, "seed", f"must be between 0 and {SEED_MAX}")
        return self


@dataclass
class GuardConfig:
    """Degeneration guards: figures of a new policy's answers against round 0's on the same
    held-out prompts, and the limits that hold a checkpoint back (training/guards.py).

    A limit of None turns that guard off. The defaults pass fluent, varied answers and
    fail the collapse seen in issue 12 (every answer "Here's a rough guide:" and numbered
    lines of asterisks to the token limit). Measured since on simulated rounds
    (BENCHMARKS.md, issue 12): every healthy round passed all but the KL guard, and the
    guards-off run's reward hacking (stock "I'm sorry ... happy to help you with" answers
    at KL 29) tripped the KL and EOS guards, while its text stayed fluent (NLL) and varied
    enough for distinct-2 (0.62 against 0.85).
    """

    enforce: bool = True
    """Hold back a checkpoint that trips a guard. Off: the figures are still computed and
    reported, and the round activates its policy whatever they say."""
    prompts: int = 8
    """Held-out prompts answered by each policy (one answer each)."""
    max_new_tokens: int | None = None
    """Answer length limit; None uses the project's generation setting."""
    seed: int = 0
    """Sampling seed, so that every round's guards sample the same way."""
    repeat_ngram: int = 3
    """n of the repeated n-gram share: word 3-grams rarely recur inside a fluent answer."""
    distinct_1_min_ratio: float | None = 0.5
    """New distinct-1 may not fall below this share of round 0's."""
    distinct_2_min_ratio: float | None = 0.6
    """New distinct-2 may not fall below this share of round 0's."""
    repeated_line_max_increase: float | None = 0.2
    """Share of repeated lines may not rise more than this above round 0's."""
    repeated_ngram_max_increase: float | None = 0.2
    """Share of repeated n-grams may not rise more than this above round 0's."""
    looping_answer_min_repeat: float = 0.5
    """An answer loops when at least this share of its word n-grams (`repeat_ngram`) repeat
    an earlier one of the same answer. Round 0 (SmolLM2) reached 0.38 at most on the demo's
    held-out prompts (a translation it cannot do), healthy rounds 0.62 once on the same
    prompt; "SmolLM: SmolLM: ..." reads 0.91."""
    looping_answers_max_increase: float | None = 0.15
    """Share of answers that loop may not rise more than this above round 0's. On the 8
    prompts one more looping answer than round 0's passes and two trip: a `short:20` round
    (BENCHMARKS.md, issue 12, session 11) looped on 2 of 8 prompts ("SmolLM: SmolLM: ...")
    and answered the rest well, which the averaged repeated n-gram share (+0.16) let through."""
    eos_rate_min_ratio: float | None = 0.5
    """Share of answers that finish (EOS) may not fall below this share of round 0's."""
    eos_rate_floor: float = 0.1
    """Below this round-0 EOS rate the EOS guard does not apply: when round 0 hardly ever
    finishes inside the limit, a new policy that does not either says nothing."""
    length_min_ratio: float | None = 0.2
    """Mean answer length (tokens) may not fall below this share of round 0's (collapse
    to empty answers)."""
    length_max_ratio: float | None = 2.0
    """Mean answer length may not rise above this multiple of round 0's."""
    kl_to_round0_max: float | None = 14.0
    """The new policy's exact KL to round 0 on these prompts (nats per answer, at the
    project's temperature) may not exceed this: drift past it waits for review. PPO keeps
    a policy only when its own rollout measured at most `ppo.kl_target` (12), but on its
    training prompts: the same policies read 0.7-1.5 nats higher on these held-out ones
    (-0.4 once), so a limit equal to the target held back about half of the healthy
    policies PPO keeps near it (BENCHMARKS.md, issue 12, session 10: `short:20` round 2,
    PPO 11.5, here 12.2). 14 leaves that margin and still holds what over-optimisation
    looks like: the guards-off run read 16.0 when its answers began to turn into stock
    refusals and 36.8 when they all had. The same prompts with the same seed every round,
    so a kept parent reads what it read when it was accepted; DPO rounds, which have no
    target of their own, are held to it too."""
    kl_answers_per_prompt: int = 4
    """Answers per prompt the KL figure averages over: the first is the one every other
    figure reads, the rest are drawn for the KL alone (seed + 1). One answer on each of 8
    prompts read the same policy 7.7-10.2 over four seeds (sd 1.1) and flagged a policy
    whose mean over seeds was 11.3; four cut the spread by half (BENCHMARKS.md, issue 12)."""
    nll_max_increase: float | None = 1.0
    """Round 0's per-token negative log-likelihood of the new answers may not exceed its
    NLL of its own answers by more than this many nats (fluency). A policy at the KL
    ceiling moves the per-token NLL by roughly KL / length, ~0.3 nats at 15 over 48
    tokens; 1.0 leaves room for that and catches text round 0 finds implausible
    (gibberish). It does not catch repetition: SmolLM2 gave its own answers 1.14
    nats/token, the collapse of issue 12 0.38 (repetition is likely), and hand-written
    fluent answers 3.0-3.3, so human text would trip it (BENCHMARKS.md, issue 12)."""

    def validate(self) -> "GuardConfig":
        _check(isinstance(self.enforce, bool), "enforce", "must be true or false")
        _check(1 <= self.prompts <= 256, "prompts", "must be between 1 and 256")
        _check(self.max_new_tokens is None or 1 <= self.max_new_tokens <= 4096, "max_new_tokens",
               "must be between 1 and 4096, or null for the project's setting")
        _check(1 <= self.repeat_ngram <= 10, "repeat_ngram", "must be between 1 and 10")
        _check(1 <= self.kl_answers_per_prompt <= 32, "kl_answers_per_prompt", "must be between 1 and 32")
        for name in ("distinct_1_min_ratio", "distinct_2_min_ratio", "eos_rate_min_ratio", "length_min_ratio"):
            value = getattr(self, name)
            _check(value is None or 0 <= value <= 1, name, "must be in [0, 1], or null to turn the guard off")
        _check(0 < self.looping_answer_min_repeat <= 1, "looping_answer_min_repeat", "must be in (0, 1]")
        for name in ("repeated_line_max_increase", "repeated_ngram_max_increase", "looping_answers_max_increase"):
            value = getattr(self, name)
            _check(value is None or 0 <= value <= 1, name, "must be in [0, 1], or null to turn the guard off")
        _check(self.length_max_ratio is None or self.length_max_ratio >= 1, "length_max_ratio",
               "must be >= 1, or null to turn the guard off")
        _check(self.nll_max_increase is None or self.nll_max_increase >= 0, "nll_max_increase",
               "must be >= 0, or null to turn the guard off")
        _check(self.kl_to_round0_max is None or 0 < self.kl_to_round0_max <= 1000, "kl_to_round0_max",
               "must be in (0, 1000], or null to turn the guard off")
        _check(0 <= self.eos_rate_floor <= 1, "eos_rate_floor", "must be in [0, 1]")
        return self


def config_from_dict(cls, data: dict | None):
    """Build a config from a (possibly partial) dict, checking the type and range of every field.

    Settings arrive as JSON from a client: a string where a number belongs, a seed
    beyond 64 bits or a NaN must be refused here, naming the field, not fail in a worker
    minutes later. Unknown keys are an error naming them; a ConfigError with an empty
    field means `data` itself is not an object.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", f"must be an object of {cls.__name__} settings")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ConfigError(", ".join(unknown), f"unknown {cls.__name__} field(s); known: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        _check_type(name, value, hints[name])
    return cls(**data).validate()


def _check_type(name: str, value, hint) -> None:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        _check(type(None) in allowed, name, "must not be null")
    elif bool in allowed:
        _check(isinstance(value, bool), name, "must be true or false")
    elif int in allowed:
        # bool is an int to Python; True as a batch size is a client bug, not 1
        _check(isinstance(value, int) and not isinstance(value, bool), name, "must be an integer")
    elif float in allowed:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), name, "must be a number")
        _check(math.isfinite(value), name, "must be a finite number")
    else:  # a field type this checker does not know: refuse rather than pass it unchecked
        raise ConfigError(name, f"has an unsupported type {hint!r}")


def config_to_dict(config) -> dict:
    return asdict(config)



_help_lock = threading.Lock()


def field_help(cls) -> dict[str, str]:
    """Each field's docstring (the string literal under it in the class body), by field name.

    The docstrings are the one place a setting is explained; the studio's launch form
    shows them as help text rather than keeping a second copy. Parsed once per class:
    Python 3.11's `ast.parse` is not safe to run in two threads at once (it raised
    "AST constructor recursion depth mismatch" under the threaded test server), so the
    first parse happens under a lock and every later call reads the cache.
    """
    with _help_lock:
        return dict(_parse_field_help(cls))


@functools.cache
def _parse_field_help(cls) -> dict[str, str]:
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    help_texts = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            help_texts[node.target.id] = " ".join(after.value.value.split())
    return help_texts
