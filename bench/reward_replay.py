"""Reward-model replay against a full retrain, on the same votes, round by round.

Each round warm-starts the reward model from the previous round's and trains it on the new
pairs plus a seeded sample of `reward.replay_pairs` older ones (issue 14). This bench takes
the votes of a finished `manage.py simulate` run (or any project), cuts them into `--rounds`
rounds of equal vote counts in the order they were cast, and trains one chain of reward
models per replay size — `0` is every old pair, the full retrain — each warm-started from
its own previous round, as the loop does. Every chain sees the same snapshot per round and
the same held-out pairs (drawn from all votes so far, with the round's seed), so their
held-out accuracies compare directly; the seconds are `train_reward_model`'s own.

    RLHF_DATA_DIR=/tmp/sim12-with .venv/bin/python bench/reward_replay.py \\
        --project "Demo assistant" --rounds 5 --replay 0 256 64 [--report replay.json]

Nothing is written to the project: the models go to a temporary folder.
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

from feedback.models import Project, Vote  # noqa: E402
from feedback.services import exports  # noqa: E402
from feedback.services.model_paths import reward_base_path  # noqa: E402
from feedback.services.rounds import round_config_resolve  # noqa: E402
from training.config import RewardConfig, config_from_dict  # noqa: E402
from training.reward import train_reward_model  # noqa: E402


def round_boundaries(project: Project, rounds: int) -> list[int]:
    """The last vote id of each of `rounds` rounds of (nearly) equal vote counts, in casting order."""
    ids = list(Vote.objects.filter(comparison__project=project).order_by("id").values_list("id", flat=True))
    if len(ids) < rounds:
        raise SystemExit(f"--rounds: the project has {len(ids)} votes, fewer than {rounds} rounds")
    return [ids[round(len(ids) * (k + 1) / rounds) - 1] for k in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replay", type=int, nargs="+", default=[0, 256],
                        help="replay sizes to compare; 0 is every old pair (the full retrain)")
    parser.add_argument("--reward", default="{}", help="reward settings over the project's defaults (JSON)")
    parser.add_argument("--report", help="write the figures as JSON here")
    args = parser.parse_args()

    project = Project.objects.get(name=args.project)
    base = round_config_resolve(project, {"reward": json.loads(args.reward)})["reward"]
    boundaries = round_boundaries(project, args.rounds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; project {project.name!r}, "
          f"{len(boundaries)} rounds ending at votes {boundaries}; reward settings {base}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        previous = {replay: str(reward_base_path(project)) for replay in args.replay}
        for number, last_vote in enumerate(boundaries, start=1):
            records, _ = exports.preference_snapshot(project, up_to_vote_id=last_vote)
            # new: a vote since the previous round's last (training reads the records, never changes them)
            exports.records_mark_new_after(project, records, boundaries[number - 2] if number > 1 else None,
                                           up_to=last_vote)
            row = {"round": number, "votes_up_to": last_vote, "pairs": len(records), "arms": {}}
            for replay in args.replay:
                config = config_from_dict(RewardConfig, {**base, "replay_pairs": replay})
                out = Path(tmp) / f"replay-{replay}-round-{number}"
                start = time.perf_counter()
                summary = train_reward_model(records, previous[replay], out, config)["summary"]
                seconds = time.perf_counter() - start
                previous[replay] = str(out)
                row["arms"][replay] = {"seconds": round(seconds, 1), **{k: summary.get(k) for k in (
                    "train_pairs", "new_pairs", "old_pairs", "replayed_pairs", "epochs", "eval_pairs",
                    "eval_accuracy", "eval_mean_margin")}}
                print(f"round {number}: replay {replay or 'all'}: trained on {summary['train_pairs']} pairs "
                      f"({summary['new_pairs']} new + {summary['replayed_pairs']} of {summary['old_pairs']} old), "
                      f"{summary['epochs']} epochs, {seconds:.1f} s; held-out accuracy "
                      f"{summary['eval_accuracy']:.3f} on {summary['eval_pairs']} pairs", flush=True)
            rows.append(row)

    print("\n| round | pairs so far | " + " | ".join(
        f"replay {r or 'all'}: pairs trained, s, held-out acc." for r in args.replay) + " |")
    print("|---|---|" + "---|" * len(args.replay))
    for row in rows:
        cells = [f"{a['train_pairs']}, {a['seconds']:.0f} s, {a['eval_accuracy']:.3f}" for a in row["arms"].values()]
        print(f"| {row['round']} | {row['pairs']} | " + " | ".join(cells) + " |")
    if args.report:
        Path(args.report).write_text(json.dumps({"project": project.name, "rounds": rows}, indent=1))


if __name__ == "__main__":
    main()
