"""One PPO round against a rule, outside the loop: how far do given PPO settings move the policy?

    RLHF_DATA_DIR=/tmp/sim manage.py demo_setup   # once: demo project, SmolLM2, first comparisons
    RLHF_DATA_DIR=/tmp/sim .venv/bin/python bench/ppo_rule.py --rule contains:you \
        --ppo '{"steps": 10, "learning_rate": 3e-4, "ppo_epochs": 4, "missing_eos_penalty": 0, "lam": 1.0}'
    ... --oracle-reward     # score rollouts with the rule itself instead of a reward model

Without --oracle-reward a reward model is first trained (default RewardConfig) on the
project's existing comparisons, labelled by the rule (ties dropped). PPO then starts from
round 0, and the oracle compares the new policy with round 0 on the held-out prompts
(4 responses each, the same round-0 draw for every run with the same seed).
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings")

import django  # noqa: E402

django.setup()

import torch  # noqa: E402

from feedback.models import Comparison, Project  # noqa: E402
from feedback.selectors.checkpoints import reference_policy  # noqa: E402
from feedback.services import exports  # noqa: E402
from feedback.services.model_paths import reward_base_path  # noqa: E402
from feedback.services.simulation import held_out_prompts, oracle_compare, oracle_from_rule  # noqa: E402
from training import ppo as ppo_module  # noqa: E402
from training.config import GenerationConfig, PPOConfig, RewardConfig  # noqa: E402
from training.generation import generate_responses  # noqa: E402
from training.reward import train_reward_model  # noqa: E402


def rule_labelled_pairs(project, oracle) -> list[dict]:
    records = []
    for c in Comparison.objects.filter(project=project).select_related("prompt", "sample_a", "sample_b"):
        choice = oracle.choose(c.sample_a.text, c.sample_b.text)
        if choice == "tie":
            continue
        chosen, rejected = (c.sample_a, c.sample_b) if choice == "a" else (c.sample_b, c.sample_a)
        records.append({"prompt": c.prompt.messages, "chosen": chosen.text, "rejected": rejected.text,
                        "margin": 1.0, "agreement": 1.0, "comparison_id": c.pk})
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="Demo assistant")
    parser.add_argument("--rule", required=True)
    parser.add_argument("--ppo", default="{}", help="PPOConfig fields as JSON")
    parser.add_argument("--oracle-reward", action="store_true")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    project = Project.objects.get(name=args.project)
    oracle = oracle_from_rule(args.rule)
    base = reference_policy(project)
    work = Path(tempfile.mkdtemp(prefix="ppo-rule-"))
    generation = GenerationConfig(max_new_tokens=48, batch_size=30, seed=args.seed)
    prompts = held_out_prompts(project, 50)
    messages = [p.messages for p in prompts for _ in range(args.samples)]
    old = [r.text for r in generate_responses(base.path, messages, generation)]

    if args.oracle_reward:
        reward_path = base.path  # unused: the rule scores the rollouts
        ppo_module.reward_score = lambda model, tok, prompts, texts, *_: torch.tensor([oracle.score(t) for t in texts])
        reward_summary = {"oracle": True}
    else:
        records = rule_labelled_pairs(project, oracle)
        reward_path = work / "reward"
        reward_summary = train_reward_model(records, reward_base_path(project), reward_path, RewardConfig())["summary"]
    print("reward:", json.dumps(reward_summary))

    started = time.monotonic()
    result = ppo_module.train_ppo(base.path, base.path, reward_path, exports.train_prompts(project), work / "policy",
                                  PPOConfig(**json.loads(args.ppo)))
    seconds = time.monotonic() - started
    for m in result["steps"]:  # the last row is the check (or the stop): a rollout without an update
        print({k: round(m[k], 3) for k in ("step", "score", "kl", "approx_kl", "clipfrac", "episodes_per_s") if k in m})
    new = [r.text for r in generate_responses(str(work / "policy"), messages, GenerationConfig(
        max_new_tokens=48, batch_size=30, seed=args.seed + 1))]
    figures = oracle_compare(oracle, new, old, args.samples)
    print(f"PPO {seconds:.0f} s, final KL {result['summary']['final_kl']:.2f}; vs round 0:", json.dumps(figures))


if __name__ == "__main__":
    main()
