"""Simulated training rounds with training/ alone (no Django, no database): what a GPU worker does.

    python3 bench/gpu_rounds.py --device cuda             # SmolLM2-135M / MiniLM shapes, random weights
    .venv/bin/python bench/gpu_rounds.py --device cpu --quick   # tiny models, small sizes: a smoke run

Each round: sample two answers per prompt with the current policy; a rule labels each
pair (the shorter answer wins, ties dropped — a stand-in for annotators); the reward
model is trained on all pairs so far (warm-started from the previous round's, as the
app does); PPO runs from the current policy with the round-0 policy as reference. Every
stage is timed; the figures printed are the ones the app records in a round's timings.
The models are built here from their configs with random weights, so the run needs
torch, transformers and peft and nothing else (bench/gpu_check.sh).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from training import device as placement  # noqa: E402
from training.config import GenerationConfig, PPOConfig, RewardConfig  # noqa: E402
from training.generation import generate_responses  # noqa: E402
from training.models import load_policy  # noqa: E402
from training.ppo import train_ppo  # noqa: E402
from training.reward import train_reward_model  # noqa: E402

TOPICS = ["the sky", "a cat", "bread", "rain", "a bicycle", "the moon", "tea", "a library", "snow", "a garden",
          "music", "the sea", "a clock", "coffee", "a train", "a forest"]
TEMPLATES = ["Describe {} in one sentence.", "Write a short poem about {}.", "Why do people like {}?",
             "Explain {} to a child."]


def make_prompts(n: int) -> list[str]:
    """`n` distinct prompts from the topics and templates above."""
    prompts = [t.format(topic) for t in TEMPLATES for topic in TOPICS]
    return prompts[:n]


def label_by_rule(prompts: list[str], a: list, b: list) -> list[dict]:
    """Preference records from two answers per prompt: the shorter text wins; equal lengths are dropped."""
    records = []
    for prompt, x, y in zip(prompts, a, b):
        if len(x.text) == len(y.text):
            continue
        chosen, rejected = (x, y) if len(x.text) < len(y.text) else (y, x)
        records.append({"prompt": prompt, "chosen": chosen.text, "rejected": rejected.text})
    return records


def build_models(root: Path, quick: bool, prompts: list[str]) -> tuple[Path, Path]:
    """(policy, reward base) with random weights: tiny ones with --quick, else the default models' shapes."""
    words = sorted({w.strip(".,?") for p in prompts for w in p.split()} | {"good", "bad"})
    if quick:
        from training.tiny import build_tiny_policy, build_tiny_reward

        return build_tiny_policy(root / "policy-0", words), build_tiny_reward(root / "reward-base", words)
    from training.tiny import build_minilm_shaped_reward, build_smollm2_shaped_policy

    return build_smollm2_shaped_policy(root / "policy-0", words), build_minilm_shaped_reward(root / "reward-base", words)


def _mean(values: list[float]) -> float:
    """Mean of the values, 0 for none (the PPO rows that made an update carry episodes/s)."""
    return sum(values) / len(values) if values else 0.0


def _sync() -> None:
    if placement.device().type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (as RLHF_DEVICE)")
    parser.add_argument("--dtype", default="auto", help="auto, fp32 or bf16 (as RLHF_DTYPE)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny models and small sizes (a CPU smoke run)")
    parser.add_argument("--prompts", type=int, help="prompts per round (default 64, 8 with --quick)")
    args = parser.parse_args()
    placement.configure(args.device, args.dtype)
    where = placement.describe()
    n_prompts = args.prompts or (8 if args.quick else 64)
    prompts = make_prompts(n_prompts)
    if args.quick:
        generation = GenerationConfig(max_new_tokens=8, batch_size=8)
        ppo = PPOConfig(steps=2, batch_size=4, mini_batch_size=2, max_new_tokens=8)
        reward = RewardConfig(epochs=1, min_steps=4, batch_size=8)
    else:  # the app's defaults, with the PPO and reward lengths a round uses
        generation = GenerationConfig(max_new_tokens=48, batch_size=64)
        ppo, reward = PPOConfig(), RewardConfig()
    print(f"torch {torch.__version__}, device {where['device']} ({where['gpu_name'] or 'CPU'}), "
          f"compute {where['dtype']}, {'tiny models' if args.quick else 'SmolLM2-135M + MiniLM-L6 shapes, random weights'}"
          f", {n_prompts} prompts, PPO {ppo.steps} steps x {ppo.batch_size} episodes")
    root = Path(tempfile.mkdtemp(prefix="gpu-rounds-"))
    started = time.perf_counter()
    policy, reward_base = build_models(root, args.quick, prompts)
    print(f"built the models in {time.perf_counter() - started:.1f} s")
    reference, reward_init = policy, reward_base
    records: list[dict] = []
    totals = []
    for number in range(1, args.rounds + 1):
        timings = {}
        _sync()
        t0 = time.perf_counter()
        loaded = load_policy(policy)
        a = generate_responses(policy, prompts, GenerationConfig(**{**generation.__dict__, "seed": 2 * number}),
                               model_and_tokenizer=loaded)
        b = generate_responses(policy, prompts, GenerationConfig(**{**generation.__dict__, "seed": 2 * number + 1}),
                               model_and_tokenizer=loaded)
        del loaded
        _sync()
        timings["generate"] = time.perf_counter() - t0
        new = label_by_rule(prompts, a, b)
        records.extend(new)
        tokens = sum(s.token_count for s in a + b)

        t0 = time.perf_counter()
        reward_dir = root / f"round-{number}-reward"
        reward_result = train_reward_model(records, reward_init, reward_dir, reward)
        _sync()
        timings["reward"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        policy_dir = root / f"round-{number}-policy"
        ppo_result = train_ppo(policy, reference, reward_dir, prompts, policy_dir, ppo)
        _sync()
        timings["ppo"] = time.perf_counter() - t0
        policy, reward_init = policy_dir, reward_dir
        total = sum(timings.values())
        totals.append(total)
        summary = ppo_result["summary"]
        print(f"round {number}: generate {timings['generate']:.1f} s ({2 * len(prompts)} answers, "
              f"{tokens / timings['generate']:.0f} tok/s) | reward {timings['reward']:.1f} s "
              f"({reward_result['summary']['train_pairs']} pairs of {len(records)}, {len(reward_result['steps'])} steps, "
              f"held-out acc {reward_result['summary'].get('eval_accuracy', float('nan')):.2f}) | "
              f"ppo {timings['ppo']:.1f} s ({summary['steps']} steps, "
              f"{_mean([s['episodes_per_s'] for s in ppo_result['steps'] if 'episodes_per_s' in s]):.1f} "
              f"episodes/s, kl {summary['mean_kl']:.3f}) | round {total:.1f} s")
    memory = ""
    if placement.device().type == "cuda":
        memory = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    print(f"{args.rounds} rounds in {sum(totals):.1f} s (slowest {max(totals):.1f} s){memory}; "
          f"whole run {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
