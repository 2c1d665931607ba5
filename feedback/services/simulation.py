"""Scripted annotators: run the real loop with an oracle instead of people.

The oracle votes through the same services the annotate page uses (assignment_next,
vote_submit), so a simulation exercises the queue, the snapshot, the reward model and
PPO exactly as real votes would. Between rounds it measures, on held-out prompts, how
often the oracle prefers the current policy's response over the round-0 policy's.
"""
import random
import re
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

    def choose(self, text_a: str, text_b: str) -> str:
        sa, sb = self.score(text_a), self.score(text_b)
        choice = "tie" if sa == sb else ("a" if sa > sb else "b")
        if choice != "tie" and self.rng.random() < self.noise:
            choice = "b" if choice == "a" else "a"  # label noise flips the preference
        return choice


RULES = "contains:WORD, shorter, question, list:ITEMS:WORDS or short:N"

_REAL_WORD = re.compile(r"\b[^\W\d_]{2,}\b")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*+•])\s+(.*)$")


def real_words(text: str) -> list[str]:
    """Words of two or more letters and nothing else: "****", "2." and "s" are not words."""
    return _REAL_WORD.findall(text)


def list_rule_met(text: str, items: int, words: int) -> bool:
    """A list of at least `items` items (numbered or bulleted lines) of at least `words` real words each."""
    good = 0
    for line in text.splitlines():
        match = _LIST_ITEM.match(line)
        if match and len(real_words(match.group(1))) >= words:
            good += 1
    return good >= items


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
    with a full stop)."""
    if not 0.0 <= noise < 0.5:
        raise RuleError("noise: must be in [0, 0.5)")
    rng = random.Random(seed)
    if rule.startswith("list:"):
        parts = rule.split(":")
        if len(parts) != 3:
            raise RuleError("rule: list needs items and words, e.g. list:3:4")
        items, words = _positive_int(parts[1], "list items"), _positive_int(parts[2], "words per item")
        return Oracle(rule, lambda text: float(list_rule_met(text, items, words)), noise, rng)
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
        sum(oracle.score(t) > 0 for t in new) / len(new), sum(oracle.score(t) > 0 for t in old) / len(old)
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
                           ("repeated_ngram_share", "repeated n-grams"), ("eos_rate", "EOS rate"),
                           ("mean_length", "length"), ("nll", "round-0 NLL"))
        if new.get(key) is not None and ref.get(key) is not None
    )
    verdict = "passed" if summary.get("passed") else f"TRIPPED {', '.join(summary.get('tripped') or [])}"
    if not summary.get("passed") and not summary.get("enforced"):
        verdict += " (not enforced)"
    return f"guards {verdict}: {figures} (new vs round 0)"


def reference_and_active(project: Project) -> tuple[Checkpoint, Checkpoint]:
    return reference_policy(project), active_policy(project)

