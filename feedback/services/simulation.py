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
from feedback.services.generation import comparisons_generate, prompts_for_batch
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


def oracle_from_rule(rule: str, noise: float = 0.0, seed: int = 0) -> Oracle:
    """`contains:WORD`, `shorter` or `question` (prefers responses ending with a question)."""
    if not 0.0 <= noise < 0.5:
        raise RuleError("noise: must be in [0, 0.5)")
    rng = random.Random(seed)
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
    raise RuleError(f"rule: unknown rule {rule!r}; use contains:WORD, shorter or question")


def simulated_annotator(name: str = "sim-oracle"):
    user, _ = get_user_model().objects.get_or_create(username=name, defaults={"is_active": True})
    return user


def ensure_open_comparisons(project: Project, count: int, config: GenerationConfig, hooks: Hooks = NO_HOOKS) -> int:
    """Generate comparisons from the active policy until `count` are open; returns how many were made."""
    open_now = Comparison.objects.filter(project=project, status=Comparison.Status.OPEN).count()
    missing = count - open_now
    if missing <= 0:
        return 0
    checkpoint = active_policy(project)
    batch = latest_batch(project)
    made = 0
    while made < missing:  # more comparisons than prompts: prompts come round again
        prompts = prompts_for_batch(project, missing - made)
        if not prompts:
            break
        made += len(comparisons_generate(
            project=project, prompts=prompts, checkpoint_a=checkpoint, checkpoint_b=checkpoint,
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


def oracle_win_rate(project: Project, oracle: Oracle, checkpoint: Checkpoint, baseline: Checkpoint,
                    config: GenerationConfig, max_prompts: int = 50, hooks: Hooks = NO_HOOKS) -> dict:
    """How often the oracle prefers `checkpoint` over `baseline` on held-out prompts (ties count half)."""
    from training.generation import generate_responses

    prompts = list(Prompt.objects.filter(project=project, split=Prompt.Split.HELD_OUT).order_by("id")[:max_prompts])
    if not prompts:
        raise RuleError("project: has no held-out prompts to evaluate on")
    messages = [p.messages for p in prompts]
    new = generate_responses(checkpoint.path, messages, config, hooks)
    old = generate_responses(baseline.path, messages, config, hooks)
    wins = ties = 0
    for n, o in zip(new, old):
        sn, so = oracle.score(n.text), oracle.score(o.text)
        wins += sn > so
        ties += sn == so
    oracle_hits = sum(oracle.score(n.text) > 0 for n in new) if oracle.name != "shorter" else None
    return {
        "prompts": len(prompts),
        "win_rate": (wins + 0.5 * ties) / len(prompts),
        "wins": wins,
        "ties": ties,
        "new_mean_length": sum(len(n.text) for n in new) / len(new),
        "old_mean_length": sum(len(o.text) for o in old) / len(old),
        "new_rule_hits": oracle_hits,
    }


def reference_and_active(project: Project) -> tuple[Checkpoint, Checkpoint]:
    return reference_policy(project), active_policy(project)

