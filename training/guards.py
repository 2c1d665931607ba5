"""Degeneration guards: is a new policy still writing text, measured against round 0?

A reward model can be over-optimised (Gao et al. 2022, "Scaling Laws for Reward Model
Overoptimization"): its score keeps rising while the answers turn into something no
person wants, e.g. every answer "Here's a rough guide:" and numbered lines of asterisks
to the token limit. The figures here catch that on held-out prompts, each compared with
round 0's answers to the same prompts, so they need no absolute notion of good text:

- distinct-1 / distinct-2: unique word 1- and 2-grams over all tokens of all answers
  (corpus-level, Li et al. 2016), so both repetition inside an answer and the same answer
  to every prompt lower them;
- repeated-line share: lines that repeat an earlier line of the same answer, list
  numbering ignored ("1. ****" and "2. ****" are the same line), averaged over answers;
- repeated n-gram share: word n-grams that already occurred in the same answer,
  averaged over answers;
- looping-answer share: answers most of whose word n-grams repeat an earlier one of
  the same answer ("SmolLM: SmolLM: SmolLM: ..."). The averages above dilute a policy
  that loops on a quarter of the prompts and answers the rest well; this counts it;
- EOS rate: answers that finished instead of running into the token limit;
- mean length in policy tokens;
- NLL: round 0's mean per-token negative log-likelihood of the answers (temperature 1,
  EOS included when the answer finished): how plausible round 0 finds the text;
- KL to round 0 (`kl_to_round0`): per new answer, the exact KL of the new policy to
  round 0 over the vocabulary (`ppo.sequence_kl`) at the guards' sampling temperature,
  summed over the answer, averaged over `kl_answers_per_prompt` answers to each prompt
  (one answer reads it to about a nat). The same held-out prompts every round
  and for PPO and DPO alike, so unlike PPO's own figure (its rollouts' training prompts)
  it compares across rounds and methods; its limit is absolute (round 0's is 0).

Words for the n-gram figures are lowercased runs of letters, runs of digits (all
written "0", so list numbers do not make repeated lines look new) and single
punctuation marks.
"""
import re
from dataclasses import replace
from pathlib import Path

import torch

from training.config import GenerationConfig, GuardConfig
from training.generation import GeneratedSample, as_messages, encode_prompts, generate_responses, response_logits
from training.models import load_policy
from training.ppo import logprobs_of, sequence_kl
from training.progress import NO_HOOKS, Hooks

_TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")
_LIST_MARKER = re.compile(r"^(?:\d+[.)]|[-*+•])\s+")


def words(text: str) -> list[str]:
    """The word tokens the n-gram figures count (see the module docstring)."""
    return ["0" if tok.isdigit() else tok for tok in _TOKEN.findall(text.lower())]


def ngrams(tokens: list[str], n: int) -> list[tuple]:
    """The n-grams of a token list, in order."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Unique n-grams over all n-grams of all texts; 0.0 when there are none."""
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _normal_line(line: str) -> str:
    """A line without its list marker, case or runs of spaces: what makes two lines the same."""
    return " ".join(_LIST_MARKER.sub("", line.strip().lower()).split())


def _repeat_share(items: list) -> float | None:
    """Share of items equal to an earlier one; None for no items."""
    seen, repeated = set(), 0
    for item in items:
        repeated += item in seen
        seen.add(item)
    return repeated / len(items) if items else None


def _mean_over_answers(shares: list[float | None]) -> float:
    """Mean of the answers' shares, skipping answers that had nothing to count."""
    # Averaged per answer, not pooled: one long looping answer among eight would
    # otherwise outweigh the seven others and read as a collapse.
    shares = [s for s in shares if s is not None]
    return sum(shares) / len(shares) if shares else 0.0


def repeated_line_share(texts: list[str]) -> float:
    """Per answer, the share of its non-empty lines that repeat an earlier line; the mean over answers."""
    return _mean_over_answers([_repeat_share([_normal_line(line) for line in text.splitlines() if line.strip()])
                               for text in texts])


def _ngram_repeat_shares(texts: list[str], n: int) -> list[float | None]:
    """Per answer, the share of its word n-grams that already occurred in it (None: no n-grams)."""
    return [_repeat_share(ngrams(words(text), n)) for text in texts]


def _looping_share(shares: list[float | None], min_repeat: float) -> float:
    """Share of the answers whose repeat share is at least `min_repeat` (no n-grams: no loop)."""
    return sum((share or 0.0) >= min_repeat for share in shares) / len(shares) if shares else 0.0


def repeated_ngram_share(texts: list[str], n: int) -> float:
    """Per answer, the share of its word n-grams that already occurred in it; the mean over answers."""
    return _mean_over_answers(_ngram_repeat_shares(texts, n))


def looping_answer_share(texts: list[str], n: int, min_repeat: float) -> float:
    """Share of the answers whose own repeated word n-gram share is at least `min_repeat`."""
    return _looping_share(_ngram_repeat_shares(texts, n), min_repeat)


def answer_figures(answers: list[GeneratedSample], repeat_ngram: int = 3, loop_min_repeat: float = 0.5) -> dict:
    """Every text figure of a list of answers (the NLL is added by `guards_evaluate`)."""
    texts = [a.text for a in answers]
    n = len(answers)
    repeat_shares = _ngram_repeat_shares(texts, repeat_ngram)  # both n-gram figures read them
    return {
        "answers": n,
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "repeated_line_share": repeated_line_share(texts),
        "repeated_ngram_share": _mean_over_answers(repeat_shares),
        "looping_answer_share": _looping_share(repeat_shares, loop_min_repeat),
        "eos_rate": sum(a.finished for a in answers) / n if n else 0.0,
        "mean_length": sum(a.token_count for a in answers) / n if n else 0.0,
    }


def _answer_batches(tokenizer, prompts: list, answers: list[GeneratedSample], batch_size: int, where):
    """Prompt + answer batches laid out as `sample` lays out a rollout (see `response_logits`).

    The answer text is tokenized again (with EOS appended when it finished), so hand-made
    answers and answers of another policy are scored the same way.
    """
    eos = tokenizer.eos_token_id
    for start in range(0, len(prompts), batch_size):
        batch_prompts, batch_answers = prompts[start:start + batch_size], answers[start:start + batch_size]
        enc = encode_prompts(tokenizer, batch_prompts, device=where)
        ids = [tokenizer(a.text, add_special_tokens=False)["input_ids"] + ([eos] if a.finished else [])
               for a in batch_answers]
        width = max(1, max(len(r) for r in ids))
        responses = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
        response_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, r in enumerate(ids):
            responses[row, :len(r)] = torch.tensor(r, dtype=torch.long)
            response_mask[row, :len(r)] = 1
        yield {"query": enc["input_ids"], "query_mask": enc["attention_mask"],
               "responses": responses.to(where), "response_mask": response_mask.to(where)}


@torch.no_grad()
def answer_scores(reference, tokenizer, prompts: list, answers: list[GeneratedSample], batch_size: int = 8, *,
                  policy=None, temperature: float = 1.0) -> list[tuple[float, int, float | None]]:
    """Per answer, (summed NLL under `reference`, tokens, KL(policy || reference) or None).

    The NLL is at temperature 1; with `policy`, the exact KL at `temperature` summed over the
    answer's tokens (`ppo.sequence_kl`), from the same reference pass.
    """
    results = []
    where = next(reference.parameters()).device
    for batch in _answer_batches(tokenizer, prompts, answers, batch_size, where):
        mask = batch["response_mask"]
        ref_logits = response_logits(reference, batch)
        nll = -(logprobs_of(ref_logits, batch["responses"]) * mask).sum(1)
        kls = [None] * len(nll)
        if policy is not None:
            kls = sequence_kl(response_logits(policy, batch, temperature), ref_logits / temperature, mask.float()).tolist()
        results.extend((float(v), int(m), kl) for v, m, kl in zip(nll, mask.sum(1), kls))
    return results


def answer_nll(model, tokenizer, prompts: list, answers: list[GeneratedSample],
               batch_size: int = 8) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, tokens) of each answer under `model`, given its prompt."""
    return [(nll, tokens) for nll, tokens, _ in answer_scores(model, tokenizer, prompts, answers, batch_size)]


def answer_kl(policy, reference, tokenizer, prompts: list, answers: list[GeneratedSample], temperature: float,
              batch_size: int = 8) -> list[float]:
    """Per answer, the exact KL(policy || reference) at `temperature`, summed over the answer's tokens."""
    return [kl for _, _, kl in answer_scores(reference, tokenizer, prompts, answers, batch_size,
                                             policy=policy, temperature=temperature)]


def mean_nll(per_answer: list[tuple[float, int]]) -> float | None:
    """Per-token NLL over all tokens of all answers (long answers weigh more); None without tokens."""
    tokens = sum(t for _, t in per_answer)
    return sum(v for v, _ in per_answer) / tokens if tokens else None


def guards_verdict(new: dict, reference: dict, config: GuardConfig) -> dict:
    """Compare the new policy's figures with round 0's under `config`'s limits.

    Returns {"guards": [one entry per guard, with figures, limit and whether it tripped],
    "tripped": [the names of those that tripped], "passed": bool}.
    """
    guards = []

    def check(name: str, figure: str, limit: float | None, tripped_if: str, rule: str, skipped: str | None = None):
        new_value, ref_value = new.get(figure), reference.get(figure)
        if skipped is None and (new_value is None or ref_value is None):
            skipped = "figure not available"
        tripped = False
        if skipped is None:
            tripped = new_value < limit if tripped_if == "below" else new_value > limit
        guards.append({"guard": name, "figure": figure, "new": new_value, "reference": ref_value,
                       "limit": None if skipped else limit, "rule": rule, "tripped": tripped, "skipped": skipped})

    def ref(figure: str) -> float:
        return reference.get(figure) or 0.0

    for n in (1, 2):
        ratio = getattr(config, f"distinct_{n}_min_ratio")
        if ratio is not None:
            check(f"distinct_{n}", f"distinct_{n}", ratio * ref(f"distinct_{n}"), "below", f">= {ratio:g} x round 0")
    for kind in ("line", "ngram"):
        increase = getattr(config, f"repeated_{kind}_max_increase")
        if increase is not None:
            check(f"repeated_{kind}s", f"repeated_{kind}_share", ref(f"repeated_{kind}_share") + increase, "above",
                  f"<= round 0 + {increase:g}")
    if config.looping_answers_max_increase is not None:
        check("looping_answers", "looping_answer_share",
              ref("looping_answer_share") + config.looping_answers_max_increase, "above",
              f"<= round 0 + {config.looping_answers_max_increase:g}")
    if config.eos_rate_min_ratio is not None:
        skipped = None
        if ref("eos_rate") < config.eos_rate_floor:
            skipped = (f"round 0 finishes {ref('eos_rate'):.0%} of answers, "
                       f"under eos_rate_floor {config.eos_rate_floor:g}")
        check("eos_rate", "eos_rate", config.eos_rate_min_ratio * ref("eos_rate"), "below",
              f">= {config.eos_rate_min_ratio:g} x round 0", skipped)
    if config.length_min_ratio is not None:
        check("short_answers", "mean_length", config.length_min_ratio * ref("mean_length"), "below",
              f">= {config.length_min_ratio:g} x round 0")
    if config.length_max_ratio is not None:
        check("long_answers", "mean_length", config.length_max_ratio * ref("mean_length"), "above",
              f"<= {config.length_max_ratio:g} x round 0")
    if config.nll_max_increase is not None:
        check("fluency_nll", "nll", ref("nll") + config.nll_max_increase, "above",
              f"<= round 0 + {config.nll_max_increase:g} nats/token")
    if config.kl_to_round0_max is not None:
        check("kl_to_round0", "kl_to_round0", config.kl_to_round0_max, "above",
              f"<= {config.kl_to_round0_max:g} nats per answer")
    tripped = [g["guard"] for g in guards if g["tripped"]]
    return {"guards": guards, "tripped": tripped, "passed": not tripped}


def _prompt_text(prompt) -> str:
    """The last user turn of a prompt, as a reader would name it."""
    users = [m.get("content", "") for m in as_messages(prompt) if m.get("role") == "user"]
    return users[-1] if users else ""


def guards_evaluate(
    *,
    new_policy_path: str | Path,
    reference_path: str | Path,
    prompts: list,
    config: GuardConfig | None = None,
    generation: GenerationConfig | None = None,
    parent_path: str | Path | None = None,
    hooks: Hooks = NO_HOOKS,
) -> dict:
    """Answer `prompts` with round 0, the new policy (and its parent), and judge the new answers.

    One answer per prompt and policy, sampled with `generation`'s settings under the
    guards' own seed and length limit. Returns plain data: {"figures": {"new", "reference"},
    "guards": [...], "tripped": [...], "passed": bool, "samples": [{"prompt", "parent",
    "new", "reference"}]}; "parent" is round 0's answer when the parent is round 0.
    """
    config = (config or GuardConfig()).validate()
    generation = (generation or GenerationConfig()).validate()
    if not prompts:
        raise ValueError("prompts: the guards need at least one prompt")
    generation = replace(generation, seed=config.seed,
                         max_new_tokens=config.max_new_tokens or generation.max_new_tokens).validate()
    # The phases report as "guards"; the generation inside them only checks for a cancel.
    inner = Hooks(should_stop=hooks.should_stop)
    same_parent = parent_path is None or Path(parent_path).resolve() == Path(reference_path).resolve()
    total = 3 if same_parent else 4
    hooks.progress("guards", 0, total)

    reference = load_policy(reference_path)
    ref_answers = generate_responses(reference_path, prompts, generation, inner, model_and_tokenizer=reference)
    hooks.progress("guards", 1, total)
    new_policy = load_policy(new_policy_path)
    new_answers = generate_responses(new_policy_path, prompts, generation, inner, model_and_tokenizer=new_policy)
    hooks.progress("guards", 2, total)
    parent_answers = ref_answers
    if not same_parent:
        parent_answers = generate_responses(parent_path, prompts, generation, inner)
        hooks.progress("guards", 3, total)
    hooks.check()
    # more answers of the new policy for its KL alone: one answer a prompt reads it +-1 nat
    kl_prompts = [p for p in prompts for _ in range(config.kl_answers_per_prompt - 1)]
    kl_answers = generate_responses(new_policy_path, kl_prompts, replace(generation, seed=config.seed + 1), inner,
                                    model_and_tokenizer=new_policy) if kl_prompts else []
    hooks.check()
    model, tokenizer = reference
    figures = {"new": answer_figures(new_answers, config.repeat_ngram, config.looping_answer_min_repeat),
               "reference": answer_figures(ref_answers, config.repeat_ngram, config.looping_answer_min_repeat)}
    # one round-0 pass over the new answers gives both its NLL of them and the new policy's KL to it
    scores = answer_scores(model, tokenizer, list(prompts) + kl_prompts, new_answers + kl_answers,
                           generation.batch_size, policy=new_policy[0], temperature=generation.temperature)
    figures["new"]["nll"] = mean_nll([(nll, tokens) for nll, tokens, _ in scores[:len(new_answers)]])
    figures["new"]["kl_to_round0"] = sum(kl for _, _, kl in scores) / len(scores)
    figures["reference"]["nll"] = mean_nll(answer_nll(model, tokenizer, prompts, ref_answers, generation.batch_size))
    figures["reference"]["kl_to_round0"] = 0.0
    del new_policy
    hooks.progress("guards", total, total)
    verdict = guards_verdict(figures["new"], figures["reference"], config)
    samples = [
        {"prompt": _prompt_text(p), "parent": pa.text, "new": na.text, "reference": ra.text,
         "new_finished": na.finished}
        for p, pa, na, ra in zip(prompts, parent_answers, new_answers, ref_answers)
    ]
    return {"figures": figures, **verdict, "enforced": config.enforce, "kl_answers": len(scores), "samples": samples}
