"""A `manage.py simulate --report` file as the Markdown table BENCHMARKS.md records.

    .venv/bin/python bench/sim_report.py sim12-with.json [more.json ...]

One row per round: oracle votes, the reward model's held-out accuracy (PPO) or DPO's,
the KL to round 0 at the end and how many updates the kept policy had, the final KL
coefficient, the oracle's win-rate and share of held-out prompts preferring the new
policy over round 0, the rule's hit rate, the round's status and guard figures (new vs
round 0), and the round's seconds by stage. Reads only the JSON; imports nothing of the app.
"""
import json
import sys


def _f(value, digits=2, pct=False):
    if value is None:
        return "–"
    return f"{value:.0%}" if pct else f"{value:.{digits}f}"


def _guards(guards: dict | None) -> str:
    if not guards:
        return "–"
    new, ref = guards.get("new", {}), guards.get("reference", {})
    figures = ", ".join(
        f"{label} {_f(new.get(key), digits)} vs {_f(ref.get(key), digits)}"
        for label, key, digits in (("EOS", "eos_rate", 2), ("length", "mean_length", 0), ("distinct-2", "distinct_2", 2),
                                   ("rep. 3-grams", "repeated_ngram_share", 2), ("rep. lines", "repeated_line_share", 2),
                                   ("looping", "looping_answer_share", 2),
                                   ("NLL", "nll", 2))
        if new.get(key) is not None or ref.get(key) is not None)  # older reports lack newer figures
    verdict = "passed" if guards.get("passed") else "**TRIPPED: " + ", ".join(guards.get("tripped", [])) + "**"
    if not guards.get("enforced", True):
        verdict += " (not enforced)"
    if new.get("kl_to_round0") is not None:
        figures += f"; held-out KL {new['kl_to_round0']:.2f}"
    return f"{verdict}: {figures}"


def _seconds(r: dict) -> str:
    stages = r.get("stage_seconds") or {}
    parts = " + ".join(f"{stages[k]:.0f}" for k in ("reward", "ppo", "dpo", "generating") if k in stages)
    return f"{r['round_seconds']:.0f} ({parts})" if r.get("round_seconds") is not None else "–"


def table(report: dict) -> str:
    lines = [
        f"rule `{report['rule']}`; round config {json.dumps(report.get('round_config') or {})}",
        "",
        "| round | votes A / B / tie | held-out accuracy (pairs) | KL to round 0 at the end (updates kept) "
        "| final KL coef | win-rate vs round 0 | prompts preferring new | rule: new vs round 0 | status | guards "
        "(new vs round 0) | seconds: round (stages) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    r0 = report.get("round_0") or {}
    lines.append(f"| 0 vs itself | | | | | {_f(r0.get('win_rate'))} | {_f(r0.get('prompts_preferring_new'), pct=True)} "
                 f"| {_f(r0.get('new_rule_hit_rate'), pct=True)} vs {_f(r0.get('old_rule_hit_rate'), pct=True)} | | | |")
    for r in report["rounds"]:
        votes = r.get("votes") or {}
        ev = r.get("eval") or {}
        if r.get("method") == "dpo":
            accuracy = f"{_f(r.get('dpo_eval_accuracy'))} ({r.get('dpo_eval_pairs')})"
            kl, coef = _f(r.get("dpo_kl_to_round0")), "–"
        else:
            accuracy = f"{_f(r.get('reward_eval_accuracy'))} ({r.get('reward_eval_pairs')})"
            kl = _f(r.get("ppo_final_kl"))
            if r.get("ppo_updates") is not None:
                kl += f" ({r['ppo_updates']})"
            if r.get("ppo_early_stopped"):
                kl += ", stopped at kl_max"
            coef = _f(r.get("ppo_final_kl_coef"), 3)
        lines.append(
            f"| {r['round']} | {votes.get('a', 0)} / {votes.get('b', 0)} / {votes.get('tie', 0)} | {accuracy} | {kl} "
            f"| {coef} | {_f(ev.get('win_rate'))} | {_f(ev.get('prompts_preferring_new'), pct=True)} "
            f"| {_f(ev.get('new_rule_hit_rate'), pct=True)} vs {_f(ev.get('old_rule_hit_rate'), pct=True)} "
            f"| {r.get('status')} | {_guards(r.get('guards'))} | {_seconds(r)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        with open(path) as fh:
            print(table(json.load(fh)))
        print()
