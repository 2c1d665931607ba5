"""Does leaving flagged annotators out make a better reward model? A mixed crowd votes, then
the reward model is trained twice on the same votes: all annotators vs `exclude_flagged`.

    RLHF_DATA_DIR=/tmp/aq .venv/bin/python manage.py demo_setup      # once: demo project, models
    RLHF_DATA_DIR=/tmp/aq .venv/bin/python bench/annotator_quality.py --rule shorter --votes 600 \
        --annotators accurate:2,noisy:1,left:1,random:1 --gold 30 --gold-rate 0.2

Tops the project up to `--votes` open comparisons (the active policy's responses, every
pair of 4 per prompt), gives `--gold` of them the rule's answer as gold, lets the crowd
vote through the queue (annotators taking turns; feedback/services/simulation.py), prints
the quality page's figures and flags per annotator, then trains the reward model twice with
the round's settings from the same base (training/reward.py, as a round calls it) and
reports each one's accuracy against the rule's own labels on the same held-out comparisons
(`--eval-share` of the voted, non-gold ones, left out of both trainings).
Votes, users and gold answers stay in the project: use a scratch data dir.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings")

import django  # noqa: E402

django.setup()

from feedback.models import Project  # noqa: E402
from feedback.services.simulation import annotator_quality_run, RuleError  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="Demo assistant")
    parser.add_argument("--rule", required=True, help="the oracle's rule, as manage.py simulate takes it")
    parser.add_argument("--annotators", default="accurate:2,noisy:1,left:1,random:1")
    parser.add_argument("--votes", type=int, default=600, help="votes of the whole crowd")
    parser.add_argument("--gold", type=int, default=30, help="comparisons given the rule's answer as gold")
    parser.add_argument("--gold-rate", type=float, default=0.2, help="the project's gold rate during the run")
    parser.add_argument("--samples-per-prompt", type=int, default=4)
    parser.add_argument("--eval-share", type=float, default=0.2)
    parser.add_argument("--reward", default="{}", help='RewardConfig overrides as JSON, e.g. {"epochs": 2}')
    parser.add_argument("--generation", default="{}", help='generation overrides as JSON, e.g. {"max_new_tokens": 48}')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", help="also write the figures to this JSON file")
    args = parser.parse_args()
    try:
        project = Project.objects.get(name=args.project)
    except Project.DoesNotExist:
        sys.exit(f"--project: no project named {args.project!r}")
    started = time.monotonic()
    try:
        result = annotator_quality_run(
            project, rule=args.rule, annotators=args.annotators, votes=args.votes, gold=args.gold,
            gold_rate=args.gold_rate, samples_per_prompt=args.samples_per_prompt, eval_share=args.eval_share,
            reward=json.loads(args.reward), generation=json.loads(args.generation), seed=args.seed,
            log=print,
        )
    except (RuleError, ValueError) as exc:
        sys.exit(str(exc))
    result["seconds"] = round(time.monotonic() - started, 1)
    for name in ("all", "exclude_flagged"):
        r = result["reward"][name]
        print(f"{name:>16}: {r['train_pairs']} training pairs (labels agree with the rule {r['label_accuracy']:.1%}), "
              f"held-out accuracy vs the rule {r['oracle_accuracy']:.3f} on {result['reward']['eval_pairs']} pairs "
              f"(vs the votes' own held-out split {r['vote_eval_accuracy']})")
    print(f"excluded: {result['reward']['exclude_flagged']['excluded_annotators']} ({result['seconds']:.0f} s in all)")
    if args.report:
        Path(args.report).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
