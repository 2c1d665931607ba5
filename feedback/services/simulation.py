"""Scripted annotators: run the real loop with an oracle instead of people.

The oracle votes through the same services the annotate page uses (assignment_next,
vote_submit), so a simulation exercises the queue, the snapshot, the reward model and
PPO exactly as real votes would. Between rounds it measures, on held-out prompts, how
often the oracle prefers the current policy's response over the round-0 policy's.
"""
import random
import re
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

from django.contrib.auth import get_user_model

from feedback.models import Checkpoint, Comparison, Project, Prompt
from feedback.selectors.checkpoints import active_policy, reference_policy
from feedback.selectors.comparisons import latest_batch
from feedback.services.assignment import assignment_next
from feedback.services.generation import comparisons_all_pairs, prompts_for_batch
from feedback.services.votes import vote_submit
from training.config import GenerationConfig
from training.progress import NO_HOOKS, Hooks


class RuleError(ValueError):
    """An oracle rule that cannot be parsed."""


@dataclass
class Oracle:
    """Scores a response; the higher score wins, equal scores tie."""

    name: str
    score: Callable[[str], float]
    noise: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    met: Callable[[str], bool] | None = None  # whether a response meets the rule; default: a score above 0

    def meets(self, text: str) -> bool:
        return self.met(text) if self.met is not None else self.score(text) > 0

    def truth(self, text_a: str, text_b: str) -> str:
        """The rule's own answer, without label noise: a, b or tie."""
        sa, sb = self.score(text_a), self.score(text_b)
        return "tie" if sa == sb else ("a" if sa > sb else "b")

    def choose(self, text_a: str, text_b: str) -> str:
        choice = self.truth(text_a, text_b)
        if choice != "tie" and self.rng.random() < self.noise:
            choice = "b" if choice == "a" else "a"  # label noise flips the preference
        return choice


RULES = "contains:WORD, shorter, question, list:ITEMS:WORDS or short:N"

_REAL_WORD = re.compile(r"\b[^\W\d_]{2,}\b")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*+•])\s+(.*)$")


def real_words(text: str) -> list[str]:
    """Words of two or more letters and nothing else: "****", "2." and "s" are not words."""
    return _REAL_WORD.findall(text)


def list_items(text: str, words: int) -> int:
    """How many list items (numbered or bulleted lines) of at least `words` real words `text` holds."""
    return sum(1 for line in text.splitlines()
               if (match := _LIST_ITEM.match(line)) and len(real_words(match.group(1))) >= words)


def list_rule_met(text: str, items: int, words: int) -> bool:
    """A list of at least `items` items (numbered or bulleted lines) of at least `words` real words each."""
    return list_items(text, words) >= items


def short_rule_met(text: str, limit: int) -> bool:
    """Under `limit` words, at least one of them a real word, ending with a full stop (not "...")."""
    text = text.strip()
    return (len(text.split()) < limit and bool(real_words(text))
            and text.endswith(".") and not text.endswith(".."))


def _positive_int(value: str, what: str) -> int:
    """A rule's number, or a RuleError naming `what`."""
    if not value.isdigit() or int(value) < 1:
        raise RuleError(f"rule: {what} must be a whole number of at least 1, not {value!r}")
    return int(value)


def oracle_from_rule(rule: str, noise: float = 0.0, seed: int = 0) -> Oracle:
    """`contains:WORD`, `shorter`, `question` (prefers responses ending with a question), or
    the strict rules a degenerate answer cannot meet: `list:ITEMS:WORDS` (a list of at least
    ITEMS items of at least WORDS real words each) and `short:N` (under N words, ending
    with a full stop).

    The list rule is graded, as a person asking for a list would judge: of two answers that
    both fall short, the one with more good items wins (counted up to ITEMS, so two answers
    that both meet it tie); an item without WORDS real words counts for nothing."""
    if not 0.0 <= noise < 0.5:
        raise RuleError("noise: must be in [0, 0.5)")
    rng = random.Random(seed)
    if rule.startswith("list:"):
        parts = rule.split(":")
        if len(parts) != 3:
            raise RuleError("rule: list needs items and words, e.g. list:3:4")
        items, words = _positive_int(parts[1], "list items"), _positive_int(parts[2], "words per item")
        return Oracle(rule, lambda text: float(min(list_items(text, words), items)), noise, rng,
                      met=lambda text: list_rule_met(text, items, words))
    if rule.startswith("short:"):
        limit = _positive_int(rule.split(":", 1)[1], "short's word limit")
        if limit < 2:
            raise RuleError("rule: short's word limit must be at least 2 (an answer has at least one word)")
        return Oracle(rule, lambda text: float(short_rule_met(text, limit)), noise, rng)
    if rule.startswith("contains:"):
        word = rule.split(":", 1)[1].strip().lower()
        if not word:
            raise RuleError("rule: contains: needs a word, e.g. contains:please")
        pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
        return Oracle(rule, lambda text: float(bool(pattern.search(text))), noise, rng)
    if rule == "shorter":
        return Oracle(rule, lambda text: -float(len(text)), noise, rng)
    if rule == "question":
        return Oracle(rule, lambda text: float(text.rstrip().endswith("?")), noise, rng)
    raise RuleError(f"rule: unknown rule {rule!r}; use {RULES}")


def simulated_annotator(name: str = "sim-oracle"):
    user, _ = get_user_model().objects.get_or_create(username=name, defaults={"is_active": True})
    return user


def ensure_open_comparisons(project: Project, count: int, config: GenerationConfig, hooks: Hooks = NO_HOOKS,
                            samples_per_prompt: int = 2) -> int:
    """Generate comparisons from the active policy until `count` are open; returns how many were made.

    Each prompt gets `samples_per_prompt` responses and every pair of them is a comparison,
    as a batch job makes them: 4 samples give 6 comparisons where 2 give 1.
    """
    if samples_per_prompt < 2:
        raise RuleError("samples_per_prompt: must be at least 2 (a comparison needs two responses)")
    open_now = Comparison.objects.filter(project=project, status=Comparison.Status.OPEN).count()
    missing = count - open_now
    if missing <= 0:
        return 0
    checkpoint = active_policy(project)
    batch = latest_batch(project)
    per_prompt = samples_per_prompt * (samples_per_prompt - 1) // 2
    made = 0
    while made < missing:  # more comparisons than prompts: prompts come round again
        prompts = prompts_for_batch(project, -(-(missing - made) // per_prompt))
        if not prompts:
            break
        made += len(comparisons_all_pairs(
            project=project, prompts=prompts, checkpoint=checkpoint, samples_per_prompt=samples_per_prompt,
            batch=batch, config=config, hooks=hooks,
        ))
    return made


def oracle_vote(project: Project, oracle: Oracle, votes: int, annotator=None) -> dict:
    """Vote on up to `votes` comparisons through the queue; returns counts per choice."""
    annotator = annotator or simulated_annotator()
    counts = {"a": 0, "b": 0, "tie": 0}
    for _ in range(votes):
        assignment = assignment_next(annotator=annotator, project=project)
        if assignment is None:
            break
        c = assignment.comparison
        choice = oracle.choose(c.sample_a.text, c.sample_b.text)
        vote_submit(annotator=annotator, assignment_id=assignment.pk, choice=choice, strength=2 if choice != "tie" else None)
        counts[choice] += 1
    return counts


def held_out_prompts(project: Project, max_prompts: int = 50) -> list[Prompt]:
    prompts = list(Prompt.objects.filter(project=project, split=Prompt.Split.HELD_OUT).order_by("id")[:max_prompts])
    if not prompts:
        raise RuleError("project: has no held-out prompts to evaluate on")
    return prompts


def held_out_responses(checkpoint: Checkpoint, prompts: list[Prompt], samples: int, config: GenerationConfig,
                       hooks: Hooks = NO_HOOKS) -> list[str]:
    """`samples` responses per prompt, prompt-major: [p0 s0, p0 s1, ..., p1 s0, ...]."""
    from training.generation import generate_responses

    messages = [p.messages for p in prompts for _ in range(samples)]
    return [r.text for r in generate_responses(checkpoint.path, messages, config, hooks)]


def oracle_compare(oracle: Oracle, new: list[str], old: list[str], samples: int) -> dict:
    """Pair the i-th new response with the i-th old one (same prompt) and let the oracle judge.

    `win_rate` is over all pairs, ties counting half. A prompt prefers the new policy when
    its own pairs' win-rate is above one half; `prompts_preferring_new` is the share of
    prompts that do. Length and rule-hit figures describe both sides.
    """
    if len(new) != len(old) or not new or len(new) % samples:
        raise ValueError("new and old must be equal, non-empty lists of `samples` responses per prompt")
    outcomes = []
    for n, o in zip(new, old):
        sn, so = oracle.score(n), oracle.score(o)
        outcomes.append(1.0 if sn > so else 0.5 if sn == so else 0.0)
    per_prompt = [sum(outcomes[i:i + samples]) / samples for i in range(0, len(outcomes), samples)]
    hits = None if oracle.name == "shorter" else (
        sum(map(oracle.meets, new)) / len(new), sum(map(oracle.meets, old)) / len(old)
    )
    return {
        "prompts": len(per_prompt),
        "pairs": len(outcomes),
        "win_rate": sum(outcomes) / len(outcomes),
        "wins": outcomes.count(1.0),
        "ties": outcomes.count(0.5),
        "prompts_preferring_new": sum(r > 0.5 for r in per_prompt) / len(per_prompt),
        "new_mean_chars": sum(map(len, new)) / len(new),
        "old_mean_chars": sum(map(len, old)) / len(old),
        "new_rule_hit_rate": hits and hits[0],
        "old_rule_hit_rate": hits and hits[1],
    }


def guard_summary(metrics: dict | None) -> dict | None:
    """The guard figures a round stored in its metrics (under "guards"), without the samples; None if none."""
    guards = (metrics or {}).get("guards")
    if not guards:
        return None
    return {
        "passed": guards.get("passed"), "tripped": guards.get("tripped", []), "enforced": guards.get("enforced"),
        "new": guards.get("figures", {}).get("new"), "reference": guards.get("figures", {}).get("reference"),
    }


def describe_guards(summary: dict) -> str:
    """One line: the verdict, then each figure as new vs round 0."""
    new, ref = summary.get("new") or {}, summary.get("reference") or {}
    figures = ", ".join(
        f"{label} {new[key]:.2f} vs {ref[key]:.2f}"
        for key, label in (("distinct_2", "distinct-2"), ("repeated_line_share", "repeated lines"),
                           ("repeated_ngram_share", "repeated n-grams"),
                           ("looping_answer_share", "looping answers"), ("eos_rate", "EOS rate"),
                           ("mean_length", "length"), ("nll", "round-0 NLL"))
        if new.get(key) is not None and ref.get(key) is not None
    )
    verdict = "passed" if summary.get("passed") else f"TRIPPED {', '.join(summary.get('tripped') or [])}"
    if not summary.get("passed") and not summary.get("enforced"):
        verdict += " (not enforced)"
    kl = f"; KL to round 0 on these prompts {new['kl_to_round0']:.2f}" if new.get("kl_to_round0") is not None else ""
    return f"guards {verdict}: {figures} (new vs round 0){kl}"


def reference_and_active(project: Project) -> tuple[Checkpoint, Checkpoint]:
    return reference_policy(project), active_policy(project)



# --- a crowd of simulated annotators of different quality ------------------------------

ANNOTATOR_KINDS = {
    "accurate": "votes as the rule says",
    "noisy": "votes as the rule says, flipped with probability 0.3",
    "left": "always picks the response shown on the left",
    "random": "picks A or B at random",
}
NOISY_FLIP = 0.3


@dataclass
class SimulatedAnnotator:
    """One scripted person: a user account of its own and a way of voting."""

    user: object
    kind: str
    rng: random.Random

    def choose(self, oracle: Oracle, assignment) -> str:
        """A, B or tie for the comparison behind `assignment`, as this kind of annotator answers."""
        if self.kind == "left":
            return "a" if assignment.left_is_a else "b"  # the side on screen, whichever sample it is
        if self.kind == "random":
            return self.rng.choice(("a", "b"))
        c = assignment.comparison
        choice = oracle.truth(c.sample_a.text, c.sample_b.text)
        if self.kind == "noisy" and choice != "tie" and self.rng.random() < NOISY_FLIP:
            choice = "b" if choice == "a" else "a"
        return choice


def crowd_parse(spec: str) -> list[tuple[str, int]]:
    """`accurate:2,noisy:1,left:1,random:1` as [(kind, count), ...]; a RuleError names what is wrong."""
    kinds = ", ".join(ANNOTATOR_KINDS)
    crowd = []
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        kind, _, count = part.partition(":")
        if kind not in ANNOTATOR_KINDS:
            raise RuleError(f"annotators: unknown kind {kind!r}; use {kinds}, e.g. accurate:2,noisy:1,left:1,random:1")
        count = count or "1"
        if not count.isdigit() or int(count) < 1:
            raise RuleError(f"annotators: the number of {kind} annotators must be a whole number of at least 1, "
                            f"not {count!r}")
        crowd.append((kind, int(count)))
    if not crowd:
        raise RuleError(f"annotators: name at least one, e.g. accurate:2,noisy:1 (kinds: {kinds})")
    return crowd


def crowd_create(project: Project, spec: str, seed: int = 0) -> list[SimulatedAnnotator]:
    """One user per annotator (`sim-noisy-1`, ...), a member of `project`, voting through the queue."""
    from feedback.services.projects import membership_add

    crowd = []
    for kind, count in crowd_parse(spec):
        for i in range(1, count + 1):
            user = simulated_annotator(f"sim-{kind}-{i}")
            membership_add(project=project, user=user)
            crowd.append(SimulatedAnnotator(user, kind, random.Random(f"{seed}:{kind}:{i}")))
    return crowd


def crowd_vote(project: Project, oracle: Oracle, crowd: list[SimulatedAnnotator], votes: int) -> dict:
    """Up to `votes` votes in all, the annotators taking turns, each through assignment_next and
    vote_submit as a person's browser would; returns {username: votes cast}."""
    counts = {a.user.username: 0 for a in crowd}
    waiting = list(crowd)
    cast = 0
    while cast < votes and waiting:
        for annotator in list(waiting):
            if cast >= votes:
                break
            assignment = assignment_next(annotator=annotator.user, project=project)
            if assignment is None:
                waiting.remove(annotator)  # nothing left that this annotator has not seen
                continue
            choice = annotator.choose(oracle, assignment)
            vote_submit(annotator=annotator.user, assignment_id=assignment.pk, choice=choice,
                        strength=2 if choice != "tie" else None,
                        time_spent_ms=annotator.rng.randint(4_000, 30_000))
            counts[annotator.user.username] += 1
            cast += 1
    return counts


def gold_from_oracle(project: Project, oracle: Oracle, count: int) -> int:
    """Give up to `count` open, unvoted comparisons the oracle's answer as their gold answer
    (only where the rule prefers one side: a tie would be a question without a right answer).
    Returns how many comparisons are gold now."""
    have = Comparison.objects.filter(project=project).exclude(gold_choice="").count()
    candidates = (Comparison.objects.filter(project=project, status=Comparison.Status.OPEN, gold_choice="",
                                            votes__isnull=True)
                  .select_related("sample_a", "sample_b").order_by("id"))
    for comparison in candidates.iterator(chunk_size=200):
        if have >= count:
            break
        answer = oracle.truth(comparison.sample_a.text, comparison.sample_b.text)
        if answer != "tie":
            Comparison.objects.filter(pk=comparison.pk).update(gold_choice=answer)
            have += 1
    return have


def oracle_eval_pairs(project: Project, oracle: Oracle, share: float, seed: int = 0) -> list[dict]:
    """A seeded `share` of the voted, non-gold comparisons, labelled by the oracle (ties left out):
    the held-out pairs on which reward models trained on different votes are compared."""
    if not 0.0 < share < 1.0:
        raise RuleError("eval_share: must be between 0 and 1 (exclusive)")
    ids = sorted(set(Comparison.objects.filter(project=project, votes__isnull=False, gold_choice="")
                     .exclude(status=Comparison.Status.RETIRED).values_list("id", flat=True)))
    chosen_ids = sorted(random.Random(seed).sample(ids, round(len(ids) * share)))
    records = []
    for c in Comparison.objects.filter(pk__in=chosen_ids).select_related("prompt", "sample_a", "sample_b").order_by("id"):
        answer = oracle.truth(c.sample_a.text, c.sample_b.text)
        if answer == "tie":
            continue
        chosen, rejected = (c.sample_a, c.sample_b) if answer == "a" else (c.sample_b, c.sample_a)
        records.append({"comparison_id": c.pk, "prompt": c.prompt.messages, "chosen": chosen.text,
                        "rejected": rejected.text})
    return records


def reward_accuracy_by_exclusion(project: Project, oracle: Oracle, *, reward: dict | None = None,
                                 eval_share: float = 0.2, seed: int = 0, hooks: Hooks = NO_HOOKS) -> dict:
    """Train the reward model twice on the project's votes as they stand, from the same base and
    with the round's settings (`reward` overrides them): once on every annotator's votes, once
    without the gold-flagged annotators'. Both are scored on the same held-out comparisons
    against the oracle's labels; those comparisons are left out of both trainings.
    """
    import shutil
    import tempfile

    from feedback.services import exports
    from feedback.services.model_paths import reward_base_path
    from feedback.services.rounds import RoundError, round_config_resolve
    from training.config import RewardConfig, config_from_dict
    from training.models import load_reward_model
    from training.reward import evaluate, train_reward_model

    try:
        config = config_from_dict(RewardConfig, round_config_resolve(project, {"reward": reward or {}})["reward"])
    except RoundError as exc:
        raise RuleError(f"{exc.field}: {exc.message}") from None
    held_out = oracle_eval_pairs(project, oracle, eval_share, seed)
    if not held_out:
        raise RuleError("votes: no voted comparison where the rule prefers a side, nothing to evaluate on")
    held_ids = {r["comparison_id"] for r in held_out}
    base = reward_base_path(project)
    folder = Path(tempfile.mkdtemp(prefix="annotator-quality-"))
    result = {"eval_pairs": len(held_out), "reward_base": str(base)}
    try:
        for name, exclude in (("all", False), ("exclude_flagged", True)):
            records, snapshot = exports.preference_snapshot(project, exclude_flagged=exclude)
            records = [r for r in records if r["comparison_id"] not in held_ids]
            if not records:
                raise RuleError(f"votes: no preference pairs to train on ({name.replace('_', ' ')})")
            trained = train_reward_model(records, base, folder / name, config, hooks)
            model, tokenizer = load_reward_model(folder / name)
            model.eval()
            names = dict(get_user_model().objects.filter(pk__in=snapshot["excluded_annotators"])
                         .values_list("pk", "username"))
            result[name] = {
                "excluded_annotators": [names.get(pk, pk) for pk in snapshot["excluded_annotators"]],
                "votes": snapshot["votes"],
                "train_pairs": len(records),
                # how many training pairs the oracle agrees with: the labels' own quality
                "label_accuracy": (sum(oracle.truth(r["chosen"], r["rejected"]) == "a" for r in records) / len(records)
                                   if records else None),
                "oracle_accuracy": evaluate(model, tokenizer, held_out, config.max_length)["eval_accuracy"],
                "vote_eval_accuracy": trained["summary"].get("eval_accuracy"),
            }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def describe_annotator(row: dict) -> str:
    """One line from a row of selectors.quality.project_quality: the figures that flag, and the flags."""
    gold = (f"gold {row['gold_correct']}/{row['gold_votes']}" if row["gold_votes"] else "no gold votes")
    left = f"left picks {row['left_share']:.0%}" if row["left_share"] is not None else "no A/B votes"
    agreement = f"agreement {row['loo_agreement']:.0%}" if row["loo_agreement"] is not None else "agreement n/a"
    verdict = "FLAGGED: " + "; ".join(row["flags"]) if row["flagged"] else "not flagged"
    return f"{row['username']}: {row['votes']} votes, {gold}, {left}, {agreement}; {verdict}"


def annotator_quality_run(project: Project, *, rule: str, annotators: str, votes: int, gold: int, gold_rate: float,
                          samples_per_prompt: int = 4, eval_share: float = 0.2, reward: dict | None = None,
                          generation: dict | None = None, seed: int = 0, hooks: Hooks = NO_HOOKS,
                          log: Callable[[str], None] = lambda line: None) -> dict:
    """bench/annotator_quality.py: a mixed crowd votes `votes` times, the quality page judges each
    annotator, and reward_accuracy_by_exclusion says what leaving the flagged ones out is worth."""
    from feedback.selectors.quality import project_quality
    from feedback.services.generation import generation_config
    from feedback.services.gold import GoldError, project_quality_settings
    from training.config import ConfigError

    oracle = oracle_from_rule(rule, seed=seed)
    if votes < 1:
        raise RuleError("votes: must be at least 1")
    if gold < 0:
        raise RuleError("gold: must be 0 or more")
    try:
        config = generation_config(project, generation)
    except ConfigError as exc:
        raise RuleError(f"{exc.path('generation')}: {exc.reason}") from None
    crowd = crowd_create(project, annotators, seed)
    try:
        project_quality_settings(project=project, data={"gold_rate": gold_rate})
    except GoldError as exc:
        raise RuleError(f"gold_rate: {exc.message}") from None
    made = ensure_open_comparisons(project, votes, config, hooks, samples_per_prompt)
    gold_now = gold_from_oracle(project, oracle, gold)
    log(f"{made} comparisons generated, {gold_now} gold; {len(crowd)} annotators vote")
    cast = crowd_vote(project, oracle, crowd, votes)
    kinds = {a.user.username: a.kind for a in crowd}
    rows = []
    for row in project_quality(project)["annotators"]:
        if row["username"] in kinds:
            log(describe_annotator(row))
            rows.append({"username": row["username"], "kind": kinds[row["username"]], **{
                k: row[k] for k in ("votes", "gold_votes", "gold_correct", "gold_accuracy", "left_share", "left_p",
                                    "loo_agreement", "flags", "flagged")}})
    result = reward_accuracy_by_exclusion(project, oracle, reward=reward, eval_share=eval_share, seed=seed,
                                          hooks=hooks)
    return {"rule": rule, "annotators": annotators, "votes": cast, "gold": gold_now, "gold_rate": gold_rate,
            "overlap": project.votes_per_comparison, "quality": rows, "reward": result}
