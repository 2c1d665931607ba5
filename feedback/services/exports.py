"""The one place that turns database rows into the plain records `training/` consumes.

Aggregation rule ("majority"), `majority()` below, used by the training snapshot and by
every export format alike: per comparison, the choice (A, B, tie or both bad) with the
most votes wins; a level top gives no verdict. Only a verdict of A or B is a preference
pair: votes `a, tie, tie` say the annotators saw no difference, so nothing is trained
or exported as a pair. `agreement` is the winning choice's share of the votes, and a
pair's `margin` grows with the winners' mean strength (slightly 0, clearly 0.5, much 1.0).
"""
import hashlib
import json
from collections import Counter, defaultdict

from feedback.models import Comparison, Project, Vote
from feedback.services.errors import FieldError

AGGREGATION_RULE = ("majority: the choice with most votes wins (A, B, tie or both bad), a level top gives none; "
                    "only an A or B verdict is a pair, weighted by agreement (winning votes / all votes)")
_STRENGTH_MARGIN = {None: 0.0, 1: 0.0, 2: 0.5, 3: 1.0}


def majority(choices: list[str]) -> tuple[str | None, float]:
    """The verdict of a comparison's votes and the share that voted for it.

    Returns (choice, agreement); choice is None when two or more choices share the
    most votes. The one rule behind the training snapshot and every export.
    """
    if not choices:
        return None, 0.0
    ranked = Counter(choices).most_common(2)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, 0.0
    choice, count = ranked[0]
    return choice, count / len(choices)


def records_mark_new(project: Project, records: list[dict]) -> int | None:
    """Flag each record `new` unless the warm-start reward model already trained on it.

    The latest reward model was trained on the snapshot of the round that produced it: a
    pair is old when none of its comparison's votes came after that snapshot's last vote
    (a late vote may change a pair's majority, so its pair counts as new again). Returns
    that vote id; None, and every record new, when there is no earlier round.
    """
    from feedback.selectors.checkpoints import latest_reward_model

    previous = latest_reward_model(project)
    snapshot = (previous.produced_by.snapshot or {}) if previous and previous.produced_by_id else {}
    return records_mark_new_after(project, records, snapshot.get("max_vote_id"))


def records_mark_new_after(project: Project, records: list[dict], after: int | None,
                           up_to: int | None = None) -> int | None:
    """Flag each record `new` when a vote on its comparison came after vote id `after` (and at
    most `up_to`, for a snapshot of the past); every record when `after` is None. Returns `after`."""
    if after is None:
        for record in records:
            record["new"] = True
        return None
    votes = Vote.objects.filter(comparison__project=project, id__gt=after)
    if up_to is not None:
        votes = votes.filter(id__lte=up_to)
    changed = set(votes.values_list("comparison_id", flat=True).distinct())
    for record in records:
        record["new"] = record["comparison_id"] in changed
    return after


def preference_snapshot(project: Project, *, up_to_vote_id: int | None = None,
                        exclude_flagged: bool | None = None) -> tuple[list[dict], dict]:
    """Preference pairs from the project's votes, and a description of the snapshot.

    Returns (records, snapshot): records are {prompt, chosen, rejected, chosen_finished,
    rejected_finished, margin, agreement, comparison_id}; snapshot names the votes used (count,
    max id, sha256 of their ids) so a round can say exactly what it trained on. Votes on
    held-out prompts count as any other (the human evaluation part of a batch trains the
    reward model too; PPO's rollouts use train prompts only). `exclude_flagged` overrides the
    project's setting (bench/annotator_quality.py compares both).
    """
    votes = Vote.objects.filter(comparison__project=project).exclude(comparison__status=Comparison.Status.RETIRED)
    excluded = _excluded_annotators(project, exclude_flagged)
    if excluded:
        votes = votes.exclude(annotator_id__in=excluded)
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
    dropped = {"tie_or_both_bad": 0, "level": 0}
    for comparison in comparisons.iterator(chunk_size=500):
        cast = by_comparison[comparison.pk]
        verdict, agreement = majority([c for c, _ in cast])
        if verdict is None:
            dropped["level"] += 1
            continue
        if verdict not in (Comparison.Choice.A, Comparison.Choice.B):
            dropped["tie_or_both_bad"] += 1
            continue
        chosen, rejected = (comparison.sample_a, comparison.sample_b) if verdict == Comparison.Choice.A else (
            comparison.sample_b, comparison.sample_a)
        margins = [_STRENGTH_MARGIN.get(s, 0.0) for c, s in cast if c == verdict]
        records.append({
            "comparison_id": comparison.pk,
            "prompt": comparison.prompt.messages,
            "chosen": chosen.text,
            "rejected": rejected.text,
            # whether each response ended with EOS (DPO appends EOS only to those that did)
            "chosen_finished": chosen.finished,
            "rejected_finished": rejected.finished,
            "margin": sum(margins) / len(margins),
            "agreement": agreement,
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
        "excluded_annotators": sorted(excluded),
    }
    return records, snapshot


def _excluded_annotators(project: Project, exclude_flagged: bool | None = None) -> set[int]:
    """Annotators whose votes count nowhere: gold-flagged ones, when the project excludes them."""
    from feedback.selectors.quality import excluded_annotator_ids, flagged_by_gold

    if exclude_flagged is None:
        return excluded_annotator_ids(project)
    return flagged_by_gold(project) if exclude_flagged else set()


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


_COMPARISON_FIELDS = (
    "id", "batch", "prompt__messages", "sample_a_id", "sample_b_id", "sample_a__text", "sample_b__text",
    "sample_a__model_name", "sample_b__model_name", "sample_a__checkpoint_id", "sample_b__checkpoint_id",
    "sample_a__checkpoint__name", "sample_b__checkpoint__name",
    "sample_a__checkpoint__produced_by__number", "sample_b__checkpoint__produced_by__number",
)
_VOTE_FIELDS = ("comparison_id", "choice")
_RAW_VOTE_FIELDS = ("comparison_id", "choice", "id", "strength", "rationale", "time_spent_ms", "created_at",
                    "left_sample_id", "annotator__username")
_ARENA_WINNER = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}


class _Comparison:
    """A comparison being exported, with its JSON lines encoded once for all its votes."""

    __slots__ = ("id", "batch", "messages", "sample_a_id", "sample_b_id", "text_a", "text_b", "model_a", "model_b",
                 "checkpoint_a", "checkpoint_b", "_lines", "ratings")

    def __init__(self, row: tuple):
        (self.id, self.batch, self.messages, self.sample_a_id, self.sample_b_id, self.text_a, self.text_b,
         model_a, model_b, self.checkpoint_a, self.checkpoint_b, name_a, name_b, round_a, round_b) = row
        self.model_a = model_a or (model_label(name_a, round_a) if self.checkpoint_a else "unknown")
        self.model_b = model_b or (model_label(name_b, round_b) if self.checkpoint_b else "unknown")
        self._lines = {}
        self.ratings = None

    def with_ratings(self, ratings: dict) -> "_Comparison":
        """Arena rows also carry both models' leaderboard ratings (with their 95% intervals)."""
        self.ratings = ratings
        return self

    def line(self, fmt: str, choice: str) -> str | None:
        """The JSON line for a vote (or majority) of `choice`; None when it makes no row."""
        key = (fmt, choice)
        if key not in self._lines:
            self._lines[key] = self._encode(fmt, choice)
        return self._lines[key]

    def _encode(self, fmt: str, choice: str) -> str | None:
        if fmt == "arena":
            row = {"question_id": self.id, "model_a": self.model_a, "model_b": self.model_b,
                   "winner": _ARENA_WINNER[choice], "prompt": self.messages}
            if self.ratings is not None:
                for side, model in (("a", self.model_a), ("b", self.model_b)):
                    rated = self.ratings.get(model) or {}
                    row[f"rating_{side}"] = {k: rated.get(k) for k in ("rating", "low", "high")}
            return _dumps(row)
        if choice == "a":
            return _dumps(pair_row(fmt, self.messages, self.text_a, self.text_b))
        if choice == "b":
            return _dumps(pair_row(fmt, self.messages, self.text_b, self.text_a))
        return None  # ties and both-bad are never pairs


def model_label(checkpoint_name: str, round_number: int | None) -> str:
    """How a checkpoint is named to people and leaderboards: its name and the round that made it
    (round 0: the base policy, made by no round)."""
    return f"{checkpoint_name} (round {round_number or 0})"


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def export_lines(project: Project, fmt: str, *, aggregation: str = "majority", training_round: int | None = None,
                 since=None, split: str | None = None, min_agreement: float = 0.0):
    """Yield the export as JSON lines (without newlines), in constant memory.

    Two streams ordered by comparison id are merged: narrow vote rows, and comparison
    rows carrying prompt and responses. Each comparison's lines are encoded once and
    reused for all its votes, which is what makes a million-vote export fast.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format: must be one of {', '.join(EXPORT_FORMATS)}")
    if aggregation not in ("majority", "all"):
        raise ValueError("aggregation: must be 'majority' or 'all'")
    # retired comparisons were taken out by staff: not part of any dataset
    comparisons = Comparison.objects.filter(project=project).exclude(status=Comparison.Status.RETIRED)
    votes = Vote.objects.filter(comparison__project=project).exclude(comparison__status=Comparison.Status.RETIRED)
    excluded = _excluded_annotators(project)
    if excluded:
        votes = votes.exclude(annotator_id__in=excluded)
    if training_round is not None:
        comparisons = comparisons.filter(batch=training_round)
        votes = votes.filter(comparison__batch=training_round)
    if split:
        comparisons = comparisons.filter(prompt__split=split)
        votes = votes.filter(comparison__prompt__split=split)
    if since is not None:
        votes = votes.filter(created_at__gte=since)
    fields = _RAW_VOTE_FIELDS if fmt == "raw" else _VOTE_FIELDS
    vote_rows = votes.order_by("comparison_id", "id").values_list(*fields).iterator(chunk_size=10_000)
    comparison_rows = map(_Comparison, comparisons.order_by("id").values_list(*_COMPARISON_FIELDS).iterator(chunk_size=2000))
    if fmt == "arena":
        from feedback.services.leaderboard import leaderboard_ratings_by_model

        ratings = leaderboard_ratings_by_model(project)
        comparison_rows = (c.with_ratings(ratings) for c in comparison_rows)

    for comparison, cast in _merge(comparison_rows, vote_rows):
        if fmt == "raw":
            for v in cast:
                yield _dumps(_raw_row(comparison, v))
        elif aggregation == "all":
            for v in cast:
                line = comparison.line(fmt, v[1])
                if line is not None:
                    yield line
        else:
            verdict, agreement = majority([v[1] for v in cast])
            if verdict is None or agreement < min_agreement:
                continue  # no majority, or too little agreement
            line = comparison.line(fmt, verdict)
            if line is not None:
                yield line


def _merge(comparisons, votes):
    """Pair each comparison with its consecutive votes (both streams ordered by comparison id)."""
    comparison = next(comparisons, None)
    bucket = []
    for v in votes:
        if bucket and v[0] != bucket[0][0]:
            yield comparison, bucket
            bucket = []
        if not bucket:
            while comparison is not None and comparison.id < v[0]:
                comparison = next(comparisons, None)
            if comparison is None or comparison.id != v[0]:
                continue  # the vote's comparison is filtered out
        bucket.append(v)
    if bucket:
        yield comparison, bucket


def _raw_row(c: _Comparison, v: tuple) -> dict:
    _, choice, vote_id, strength, rationale, time_spent_ms, created_at, left_sample_id, annotator = v
    return {
        "vote_id": vote_id,
        "comparison_id": c.id,
        "batch": c.batch,
        "prompt": c.messages,
        "response_a": c.text_a,
        "response_b": c.text_b,
        "checkpoint_a": c.checkpoint_a,
        "checkpoint_b": c.checkpoint_b,
        "model_a": c.model_a,
        "model_b": c.model_b,
        "choice": choice,
        "strength": strength,
        "rationale": rationale,
        "annotator": annotator,
        "shown_left": "a" if left_sample_id == c.sample_a_id else "b",
        "time_spent_ms": time_spent_ms,
        "created_at": created_at.isoformat(),
    }


def jsonl_chunks(lines, lines_per_chunk: int = 2000):
    """JSON Lines in chunks of many rows: one write per row would dominate a large export."""
    buffer = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= lines_per_chunk:
            buffer.append("")
            yield "\n".join(buffer)
            buffer = []
    if buffer:
        buffer.append("")
        yield "\n".join(buffer)


class ExportError(FieldError):
    """A bad export option."""


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
        if not 0 <= options["training_round"] < 2**31:  # beyond it the database overflows, not the filter
            raise ExportError("round", "must be an integer between 0 and 2147483647")
    if raw.get("since") not in (None, ""):
        try:
            # None when the shape is wrong; ValueError when it has one but no such date (month 13)
            since = parse_datetime(str(raw["since"]))
        except ValueError as exc:
            raise ExportError("since", f"is not a valid date-time: {exc}") from None
        if since is None:
            raise ExportError("since", "must be an ISO 8601 date-time, e.g. 2025-01-31T12:00:00Z")
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


def export_lines_for(project: Project, options: dict):
    """export_lines with options as produced by export_options."""
    from django.utils.dateparse import parse_datetime

    kwargs = {k: v for k, v in options.items() if k != "format"}
    if "since" in kwargs:
        kwargs["since"] = parse_datetime(kwargs["since"])
    return export_lines(project, options["format"], **kwargs)
