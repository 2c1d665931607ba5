"""The one place that turns database rows into the plain records `training/` consumes.

Aggregation rule ("majority"): per comparison, the A-or-B side with more votes wins;
ties and both-bad votes carry no ordering, so they count towards the total but are
never pairs. A comparison whose A and B votes are level gives no pair. The record's
`agreement` is the winning side's share of all votes on the comparison, and its
`margin` grows with the winners' mean strength (slightly 0, clearly 0.5, much 1.0).
"""
import hashlib
from collections import defaultdict

from feedback.models import Comparison, Project, Vote

AGGREGATION_RULE = "majority (A/B votes; ties and both-bad never pairs; level A/B gives no pair)"
_STRENGTH_MARGIN = {None: 0.0, 1: 0.0, 2: 0.5, 3: 1.0}


def preference_snapshot(project: Project, *, up_to_vote_id: int | None = None) -> tuple[list[dict], dict]:
    """Preference pairs from the project's votes, and a description of the snapshot.

    Returns (records, snapshot): records are {prompt, chosen, rejected, margin,
    agreement, comparison_id}; snapshot names the votes used (count, max id, sha256 of
    their ids) so a round can say exactly what it trained on.
    """
    votes = Vote.objects.filter(comparison__project=project)
    if up_to_vote_id is not None:
        votes = votes.filter(id__lte=up_to_vote_id)
    votes = votes.order_by("id").values_list("id", "comparison_id", "choice", "strength")

    by_comparison: dict[int, list[tuple]] = defaultdict(list)
    digest = hashlib.sha256()
    vote_count = 0
    max_id = 0
    for vote_id, comparison_id, choice, strength in votes.iterator(chunk_size=2000):
        by_comparison[comparison_id].append((choice, strength))
        digest.update(f"{vote_id},".encode())
        vote_count += 1
        max_id = vote_id

    comparisons = Comparison.objects.filter(pk__in=list(by_comparison)).select_related("prompt", "sample_a", "sample_b")
    records = []
    dropped = {"tie_or_both_bad_only": 0, "level": 0}
    for comparison in comparisons.iterator(chunk_size=500):
        cast = by_comparison[comparison.pk]
        a = [s for c, s in cast if c == Comparison.Choice.A]
        b = [s for c, s in cast if c == Comparison.Choice.B]
        if not a and not b:
            dropped["tie_or_both_bad_only"] += 1
            continue
        if len(a) == len(b):
            dropped["level"] += 1
            continue
        winners, chosen, rejected = (a, comparison.sample_a, comparison.sample_b) if len(a) > len(b) else (
            b, comparison.sample_b, comparison.sample_a)
        margins = [_STRENGTH_MARGIN.get(s, 0.0) for s in winners]
        records.append({
            "comparison_id": comparison.pk,
            "prompt": comparison.prompt.messages,
            "chosen": chosen.text,
            "rejected": rejected.text,
            "margin": sum(margins) / len(margins),
            "agreement": len(winners) / len(cast),
        })
    records.sort(key=lambda r: r["comparison_id"])
    snapshot = {
        "votes": vote_count,
        "max_vote_id": max_id,
        "vote_ids_sha256": digest.hexdigest(),
        "comparisons": len(by_comparison),
        "pairs": len(records),
        "dropped": dropped,
        "aggregation": AGGREGATION_RULE,
    }
    return records, snapshot


def train_prompts(project: Project) -> list:
    """The train-split prompts as message lists, for PPO rollouts."""
    return list(project.prompts.filter(split="train").order_by("id").values_list("messages", flat=True))


# --- dataset exports ---------------------------------------------------------------

EXPORT_FORMATS = ("trl", "trl-conversational", "hh-rlhf", "openai", "raw", "arena")


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _prompt_text(messages: list[dict]) -> str:
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def _hh_transcript(messages: list[dict], response: str) -> str:
    turns = []
    for m in messages:
        speaker = "Human" if m["role"] in ("user", "system") else "Assistant"
        turns.append(f"\n\n{speaker}: {m['content']}")
    return "".join(turns) + f"\n\nAssistant: {response}"


def _sample_model(sample) -> str:
    return sample.model_name or (f"checkpoint:{sample.checkpoint_id}" if sample.checkpoint_id else "unknown")


def pair_row(fmt: str, messages: list[dict], chosen: str, rejected: str) -> dict:
    """One preference pair in a trainer's format."""
    if fmt == "trl":
        return {"prompt": _prompt_text(messages), "chosen": chosen, "rejected": rejected}
    if fmt == "trl-conversational":
        return {"prompt": messages, "chosen": _assistant(chosen), "rejected": _assistant(rejected)}
    if fmt == "hh-rlhf":
        return {"chosen": _hh_transcript(messages, chosen), "rejected": _hh_transcript(messages, rejected)}
    if fmt == "openai":
        return {
            "input": {"messages": messages},
            "preferred_output": _assistant(chosen),
            "non_preferred_output": _assistant(rejected),
        }
    raise ValueError(f"format: unknown pair format {fmt!r}")


def export_rows(project: Project, fmt: str, *, aggregation: str = "majority", training_round: int | None = None,
                since=None, split: str | None = None, min_agreement: float = 0.0):
    """Yield export rows one by one (constant memory: votes are read in chunks)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format: must be one of {', '.join(EXPORT_FORMATS)}")
    if aggregation not in ("majority", "all"):
        raise ValueError("aggregation: must be 'majority' or 'all'")
    votes = Vote.objects.filter(comparison__project=project)
    if training_round is not None:
        votes = votes.filter(comparison__batch=training_round)
    if since is not None:
        votes = votes.filter(created_at__gte=since)
    if split:
        votes = votes.filter(comparison__prompt__split=split)
    votes = votes.select_related(
        "comparison__prompt", "comparison__sample_a__checkpoint", "comparison__sample_b__checkpoint", "annotator"
    ).order_by("comparison_id", "id")

    if fmt == "raw" or aggregation == "all":
        for vote in votes.iterator(chunk_size=2000):
            c = vote.comparison
            if fmt == "raw":
                yield _raw_row(vote)
            elif fmt == "arena":
                yield _arena_row(c, vote.choice)
            elif vote.choice in (Comparison.Choice.A, Comparison.Choice.B):
                chosen, rejected = (c.sample_a, c.sample_b) if vote.choice == Comparison.Choice.A else (c.sample_b, c.sample_a)
                yield pair_row(fmt, c.prompt.messages, chosen.text, rejected.text)
        return

    for comparison, cast in _grouped(votes):
        counts = {choice: sum(1 for v in cast if v.choice == choice) for choice in Comparison.Choice.values}
        winner = max(counts, key=counts.get)
        if list(counts.values()).count(counts[winner]) > 1:
            winner = None  # no majority
        agreement = counts[winner] / len(cast) if winner else 0.0
        if agreement < min_agreement:
            continue
        if fmt == "arena":
            if winner:
                yield _arena_row(comparison, winner)
            continue
        if winner not in (Comparison.Choice.A, Comparison.Choice.B):
            continue
        chosen, rejected = ((comparison.sample_a, comparison.sample_b) if winner == Comparison.Choice.A
                            else (comparison.sample_b, comparison.sample_a))
        yield pair_row(fmt, comparison.prompt.messages, chosen.text, rejected.text)


def _grouped(votes):
    current, bucket = None, []
    for vote in votes.iterator(chunk_size=2000):
        if current is not None and vote.comparison_id != current.pk:
            yield current, bucket
            bucket = []
        current = vote.comparison
        bucket.append(vote)
    if current is not None:
        yield current, bucket


_ARENA_WINNER = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}


def _arena_row(comparison: Comparison, choice: str) -> dict:
    return {
        "question_id": comparison.pk,
        "model_a": _sample_model(comparison.sample_a),
        "model_b": _sample_model(comparison.sample_b),
        "winner": _ARENA_WINNER[choice],
        "prompt": comparison.prompt.messages,
    }


def _raw_row(vote: Vote) -> dict:
    c = vote.comparison
    return {
        "vote_id": vote.pk,
        "comparison_id": c.pk,
        "batch": c.batch,
        "prompt": c.prompt.messages,
        "response_a": c.sample_a.text,
        "response_b": c.sample_b.text,
        "checkpoint_a": c.sample_a.checkpoint_id,
        "checkpoint_b": c.sample_b.checkpoint_id,
        "model_a": _sample_model(c.sample_a),
        "model_b": _sample_model(c.sample_b),
        "choice": vote.choice,
        "strength": vote.strength,
        "rationale": vote.rationale,
        "annotator": vote.annotator.get_username(),
        "shown_left": "a" if vote.left_sample_id == c.sample_a_id else "b",
        "time_spent_ms": vote.time_spent_ms,
        "created_at": vote.created_at.isoformat(),
    }


class ExportError(ValueError):
    """A bad export option; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def export_options(raw) -> dict:
    """Validate export options from a query string or JSON body into JSON-able values."""
    from django.utils.dateparse import parse_datetime

    fmt = raw.get("format", "trl")
    if fmt not in EXPORT_FORMATS:
        raise ExportError("format", f"must be one of {', '.join(EXPORT_FORMATS)}")
    options = {"format": fmt, "aggregation": raw.get("aggregation", "majority")}
    if options["aggregation"] not in ("majority", "all"):
        raise ExportError("aggregation", "must be 'majority' or 'all'")
    split = raw.get("split") or None
    if split not in (None, "train", "held_out"):
        raise ExportError("split", "must be 'train' or 'held_out'")
    options["split"] = split
    if raw.get("round") not in (None, ""):
        try:
            options["training_round"] = int(raw["round"])
        except (TypeError, ValueError):
            raise ExportError("round", "must be an integer") from None
    if raw.get("since") not in (None, ""):
        since = parse_datetime(str(raw["since"]))
        if since is None:
            raise ExportError("since", "must be an ISO 8601 date-time")
        options["since"] = since.isoformat()
    if raw.get("min_agreement") not in (None, ""):
        try:
            value = float(raw["min_agreement"])
        except (TypeError, ValueError):
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise ExportError("min_agreement", "must be a number between 0 and 1")
        options["min_agreement"] = value
    return options


def export_rows_for(project: Project, options: dict):
    """export_rows with options as produced by export_options."""
    from django.utils.dateparse import parse_datetime

    kwargs = {k: v for k, v in options.items() if k != "format"}
    if "since" in kwargs:
        kwargs["since"] = parse_datetime(kwargs["since"])
    return export_rows(project, options["format"], **kwargs)
