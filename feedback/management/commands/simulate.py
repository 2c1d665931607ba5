"""Run N rounds of the real loop with a scripted annotator and report the oracle's win-rate.

    manage.py simulate --project "Demo assistant" --rule contains:please --rounds 3 --votes 100
    manage.py simulate ... --annotators accurate:2,noisy:1,left:1,random:1 --gold 20 --gold-rate 0.2

Each round: top up open comparisons from the active policy, let the oracle vote through
the queue, run a training round in this process (the same service the worker runs),
then measure on held-out prompts how often the oracle prefers the active policy to round 0,
and print the round's degeneration guards when it computed them. A round whose guards
held its policy back (`needs_review`) does not stop the run: the next round trains the
still-active parent again, as it would in the studio until someone reviews it.

With --annotators the votes come from a crowd of annotators of different quality, one
user each (sim-accurate-1, sim-left-1, ...): accurate (the rule's answer), noisy (flipped
with probability 0.3), left (always the response shown on the left) and random. --gold
gives that many open comparisons the rule's answer as gold and --gold-rate mixes them into
every queue, so gold accuracy can flag the bad annotators (shown after each round's votes).
"""
import json
import time

from django.core.management.base import BaseCommand, CommandError

from feedback.models import Project
from feedback.selectors.rounds import round_kl_to_round0
from feedback.services.rounds import RoundError, round_execute, round_launch
from feedback.services.generation import generation_config
from feedback.services.simulation import (
    ANNOTATOR_KINDS,
    RULES,
    RuleError,
    crowd_create,
    crowd_vote,
    describe_annotator,
    gold_from_oracle,
    describe_guards,
    guard_summary,
    ensure_open_comparisons,
    oracle_from_rule,
    oracle_vote,
    held_out_prompts,
    held_out_responses,
    oracle_compare,
    reference_and_active,
)
from training.progress import Hooks


class Command(BaseCommand):
    help = "Simulate annotators with a rule and run training rounds; prints the oracle win-rate per round."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--rule", required=True, help=RULES)
        parser.add_argument("--noise", type=float, default=0.0, help="probability of flipping a vote (label noise)")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--votes", type=int, default=100, help="oracle votes before each round")
        parser.add_argument("--samples-per-prompt", type=int, default=4,
                            help="responses per prompt when topping up comparisons; every pair is one (4 -> 6)")
        parser.add_argument("--eval-prompts", type=int, default=50, help="held-out prompts for the win-rate")
        parser.add_argument("--eval-samples", type=int, default=4, help="responses per held-out prompt and policy")
        parser.add_argument("--report", help="write the per-round figures to this JSON file")
        parser.add_argument("--round-config", default="{}", help='JSON round config, e.g. {"ppo": {"steps": 10}}')
        parser.add_argument("--generation", default="{}", help='JSON generation overrides, e.g. {"max_new_tokens": 48}')
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--annotators", help="a crowd instead of one oracle, e.g. accurate:2,noisy:1,left:1,random:1 "
                                                 f"(kinds: {', '.join(ANNOTATOR_KINDS)}); --votes is the crowd's total")
        parser.add_argument("--gold", type=int, default=0, help="open comparisons to give the rule's answer as gold")
        parser.add_argument("--gold-rate", type=float, help="set the project's gold rate (share of gold in each queue)")

    def handle(self, *args, **opts):
        try:
            project = Project.objects.get(name=opts["project"])
        except Project.DoesNotExist:
            raise CommandError(f"--project: no project named {opts['project']!r}") from None
        try:
            oracle = oracle_from_rule(opts["rule"], opts["noise"], opts["seed"])
            round_config = json.loads(opts["round_config"])
            generation = generation_config(project, json.loads(opts["generation"]))
        except (RuleError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        round_config.setdefault("generation", {}).update(json.loads(opts["generation"]))

        def report(*, stage, step, total, metrics=None):
            if step == total or step % 16 == 0:
                self.stdout.write(f"    {stage} {step}/{total}")

        hooks = Hooks(report=report)
        crowd = None
        if opts["annotators"]:
            try:
                crowd = crowd_create(project, opts["annotators"], opts["seed"])
            except RuleError as exc:
                raise CommandError(str(exc)) from None
        if opts["gold"] < 0:
            raise CommandError("--gold: must be 0 or more")
        if opts["gold_rate"] is not None:
            from feedback.services.gold import GoldError, project_quality_settings

            try:
                project_quality_settings(project=project, data={"gold_rate": opts["gold_rate"]})
            except GoldError as exc:
                raise CommandError(f"--gold-rate: {exc.message}") from None
        if opts["eval_samples"] < 1:
            raise CommandError("--eval-samples: must be at least 1")
        samples = opts["eval_samples"]
        reference, active = reference_and_active(project)
        try:
            prompts = held_out_prompts(project, opts["eval_prompts"])
        except RuleError as exc:
            raise CommandError(str(exc)) from None
        # round 0's responses are drawn once; every round is judged against the same ones
        baseline = held_out_responses(reference, prompts, samples, generation, hooks)
        sanity = oracle_compare(oracle, held_out_responses(active, prompts, samples, generation, hooks), baseline, samples)
        self.stdout.write(f"round 0: {self._describe(sanity)} (the active policy vs round 0 before training)")
        rounds = []
        for n in range(1, opts["rounds"] + 1):
            started = time.monotonic()
            try:
                made = ensure_open_comparisons(project, opts["votes"], generation, hooks, opts["samples_per_prompt"])
            except RuleError as exc:
                raise CommandError(str(exc)) from None
            if opts["gold"]:
                gold_from_oracle(project, oracle, opts["gold"])
            if crowd is None:
                counts = oracle_vote(project, oracle, opts["votes"])
                self.stdout.write(f"round {n}: generated {made} comparisons; oracle votes {counts}")
            else:
                counts = crowd_vote(project, oracle, crowd, opts["votes"])
                self.stdout.write(f"round {n}: generated {made} comparisons; votes per annotator {counts}")
                self._quality(project)
            try:
                training_round = round_launch(project=project, config=round_config)
            except RoundError as exc:
                raise CommandError(str(exc)) from None
            training_round = round_execute(training_round.pk)
            if training_round.status not in ("done", "needs_review"):
                raise CommandError(f"round {training_round.number} {training_round.status}: {training_round.error}")
            metrics = training_round.metrics
            reference, active = reference_and_active(project)
            result = oracle_compare(oracle, held_out_responses(active, prompts, samples, generation, hooks), baseline, samples)
            round_seconds = (training_round.finished_at - training_round.started_at).total_seconds()
            method = training_round.config.get("method", "ppo")
            rounds.append({
                "round": training_round.number, "method": method, "votes": counts, "eval": result,
                "kl_to_round0": round_kl_to_round0(metrics), "status": training_round.status,
                **_method_figures(metrics, method),
                "guards": guard_summary(metrics),
                "round_seconds": round_seconds, "stage_seconds": training_round.timings,
                "simulated_seconds": time.monotonic() - started,
            })
            self.stdout.write(self.style.SUCCESS(
                f"round {n} ({training_round.number}{', DPO' if method == 'dpo' else ''}): {self._describe(result)}; "
                f"{_describe_training(metrics, method)}; "
                f"round {round_seconds:.0f} s, with votes and evaluation {time.monotonic() - started:.0f} s"
            ))
            ppo = metrics.get("ppo_summary") or {}
            if ppo.get("final_kl_coef") is not None:
                self.stdout.write(f"    KL coefficient at the end {ppo['final_kl_coef']:.4f}"
                                  + (f"; stopped early: {ppo['stop_reason']}" if ppo.get("early_stopped") else "")
                                  + (f"; {ppo['kept_reason']}" if ppo.get("kept_reason") else ""))
            if rounds[-1]["guards"] is not None:
                self.stdout.write(f"    {describe_guards(rounds[-1]['guards'])}")
            if training_round.status == "needs_review":
                self.stdout.write(self.style.WARNING(
                    f"    round {training_round.number} needs review: its policy was registered, not activated"))
        if opts["report"]:
            with open(opts["report"], "w") as fh:
                json.dump({"rule": opts["rule"], "noise": opts["noise"], "round_0": sanity, "rounds": rounds,
                           "round_config": round_config}, fh, indent=2)

    def _quality(self, project) -> None:
        """The quality page's verdict on each simulated annotator, one line each."""
        from feedback.selectors.quality import project_quality

        for row in project_quality(project)["annotators"]:
            if row["username"].startswith("sim-"):
                self.stdout.write(f"    {describe_annotator(row)}")

    @staticmethod
    def _describe(result: dict) -> str:
        hits = "" if result["new_rule_hit_rate"] is None else (
            f", rule met by {result['new_rule_hit_rate']:.0%} vs {result['old_rule_hit_rate']:.0%}"
        )
        return (f"win-rate vs round 0 = {result['win_rate']:.2f} over {result['pairs']} pairs, "
                f"{result['prompts_preferring_new']:.0%} of {result['prompts']} held-out prompts prefer it{hits}")


def _method_figures(metrics: dict, method: str) -> dict:
    """The report's training figures of one round: the reward model and PPO's, or DPO's."""
    if method == "dpo":
        dpo = metrics.get("dpo_summary") or {}
        return {f"dpo_{k}": dpo.get(k) for k in ("train_accuracy", "train_margin", "eval_accuracy", "eval_margin",
                                                  "eval_loss", "eval_pairs", "kl_to_round0", "seconds")}
    reward, ppo = metrics.get("reward_summary") or {}, metrics.get("ppo_summary") or {}
    return {
        "reward_eval_accuracy": reward.get("eval_accuracy"), "reward_eval_pairs": reward.get("eval_pairs"),
        "ppo_mean_kl": ppo.get("mean_kl"), "ppo_final_kl": ppo.get("final_kl"), "ppo_mean_score": ppo.get("mean_score"),
        "ppo_final_kl_coef": ppo.get("final_kl_coef"), "ppo_early_stopped": ppo.get("early_stopped"),
        "ppo_stop_reason": ppo.get("stop_reason"), "ppo_kept_step": ppo.get("kept_step"),
        "ppo_updates": ppo.get("updates"), "ppo_kept_reason": ppo.get("kept_reason"),
    }


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _describe_training(metrics: dict, method: str) -> str:
    if method == "dpo":
        dpo = metrics.get("dpo_summary") or {}
        return (f"DPO held-out accuracy {_fmt(dpo.get('eval_accuracy'))} on {dpo.get('eval_pairs')} pairs, "
                f"margin {_fmt(dpo.get('eval_margin'))}, KL to round 0 {_fmt(dpo.get('kl_to_round0'))}")
    reward, ppo = metrics.get("reward_summary") or {}, metrics.get("ppo_summary") or {}
    return (f"RM held-out accuracy {reward.get('eval_accuracy')}, KL to round 0 {_fmt(ppo.get('final_kl'))} "
            f"(mean over steps {_fmt(ppo.get('mean_kl'))}), mean score {_fmt(ppo.get('mean_score'))}")
