"""Sampling responses from checkpoints and turning them into comparisons."""
from dataclasses import dataclass
from itertools import combinations
from typing import Callable

from django.db import transaction

from feedback.models import Checkpoint, Comparison, Project, Prompt, Sample, TrainingRound
from feedback.services.checkpoints import checkpoint_verify
from training.config import ConfigError, GenerationConfig, config_from_dict
from training.progress import NO_HOOKS, Hooks


def generation_config(project: Project, overrides: dict | None = None) -> GenerationConfig:
    """The project's generation settings with `overrides` on top, every field type- and range-checked."""
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError("", "must be an object of GenerationConfig settings")
    return config_from_dict(GenerationConfig, {**(project.generation_settings or {}), **(overrides or {})})


def prompts_for_batch(project: Project, count: int, *, split: str = Prompt.Split.TRAIN) -> list[Prompt]:
    """The prompts with the fewest comparisons so far, so every prompt gets its turn."""
    from django.db.models import Count

    return list(
        Prompt.objects.filter(project=project, split=split)
        .annotate(n=Count("comparisons"))
        .order_by("n", "id")[:count]
    )


def _offset(hooks: Hooks, done: int, job_total: int) -> Hooks:
    """Hooks for one part of a larger job: progress is shifted into the whole job's count."""
    def report(*, stage, step, total, metrics=None):
        if step or not done:  # a later part's "0 done" would repeat the earlier part's last line
            hooks.progress("generating", done + step, job_total, metrics)

    return Hooks(report=report, should_stop=hooks.should_stop)


def sample_params(config: GenerationConfig) -> dict:
    """The sampling settings stored with each sample."""
    return {"max_new_tokens": config.max_new_tokens, "temperature": config.temperature, "top_p": config.top_p}


def sample_store(*, prompt: Prompt, checkpoint: Checkpoint | None, response, params: dict,
                 model_name: str = "") -> Sample:
    """One generated response (`training.generation.GeneratedSample`) as a row: from a checkpoint of
    ours, or (checkpoint None) from the server model `model_name`."""
    return Sample.objects.create(prompt=prompt, checkpoint=checkpoint, model_name=model_name, text=response.text,
                                 token_count=response.token_count, finished=response.finished,
                                 generation_params=params)


def comparison_store(*, project: Project, prompt: Prompt, sample_a: Sample, sample_b: Sample, batch: int,
                     training_round: TrainingRound | None = None) -> Comparison:
    return Comparison.objects.create(project=project, prompt=prompt, sample_a=sample_a, sample_b=sample_b,
                                     batch=batch, round=training_round, votes_needed=project.votes_per_comparison)


@dataclass(frozen=True)
class BatchPart:
    """Prompts whose responses from `checkpoint_a` (sample A) and `checkpoint_b` become comparisons."""

    prompts: list[Prompt]
    checkpoint_a: Checkpoint
    checkpoint_b: Checkpoint


def round_batch_parts(*, project: Project, count: int, new: Checkpoint, parent: Checkpoint,
                      reference: Checkpoint | None) -> list[BatchPart]:
    """The batch a round leaves for annotators: `count` comparisons, of which the project's
    `eval_parent_share` pair `new` with `parent` and `eval_round0_share` pair it with round 0,
    both on held-out prompts; the rest pair it with `parent` on train prompts.

    Round 0's share joins the held-out vs parent part when the parent is round 0 (then
    they are the same pair). Held-out slots a project has no prompts for go to train
    prompts, so the batch keeps its size.
    """
    held_out_parent = round(count * project.eval_parent_share)
    held_out_round0 = round(count * project.eval_round0_share)
    if reference is None or reference.pk == parent.pk:
        held_out_parent, held_out_round0 = held_out_parent + held_out_round0, 0
    held_out_parent = min(held_out_parent, count)
    held_out_round0 = min(held_out_round0, count - held_out_parent)
    held_out = []
    if held_out_parent:
        held_out.append(BatchPart(prompts_for_batch(project, held_out_parent, split=Prompt.Split.HELD_OUT), new, parent))
    if held_out_round0:
        held_out.append(BatchPart(prompts_for_batch(project, held_out_round0, split=Prompt.Split.HELD_OUT), new, reference))
    train = count - sum(len(part.prompts) for part in held_out)
    parts = [BatchPart(prompts_for_batch(project, train), new, parent)] if train else []
    return parts + [part for part in held_out if part.prompts]


def comparisons_generate(
    *,
    project: Project,
    prompts: list[Prompt],
    checkpoint_a: Checkpoint,
    checkpoint_b: Checkpoint,
    batch: int,
    training_round: TrainingRound | None = None,
    config: GenerationConfig | None = None,
    hooks: Hooks = NO_HOOKS,
    finalize: Callable[[list[Comparison]], None] | None = None,
) -> list[Comparison]:
    """Sample one response per prompt from each checkpoint and pair them as comparisons.

    With the same checkpoint on both sides, it is sampled twice (the first batch). See
    `comparisons_generate_parts` for the transaction and `finalize`.
    """
    return comparisons_generate_parts(
        project=project, parts=[BatchPart(prompts, checkpoint_a, checkpoint_b)], batch=batch,
        training_round=training_round, config=config, hooks=hooks, finalize=finalize,
    )


def comparisons_generate_parts(
    *,
    project: Project,
    parts: list[BatchPart],
    batch: int,
    training_round: TrainingRound | None = None,
    config: GenerationConfig | None = None,
    hooks: Hooks = NO_HOOKS,
    finalize: Callable[[list[Comparison]], None] | None = None,
) -> list[Comparison]:
    """One batch made of several parts (e.g. train prompts new vs parent, held-out prompts new
    vs round 0): each checkpoint is loaded once and answers every prompt it has a side in.

    All rows are written in one transaction at the end: a cancelled or failed job leaves no
    half batch behind. `finalize(comparisons)` runs inside that transaction (a round marks
    itself done there); if it raises, no row is kept.
    """
    from training.generation import generate_responses
    from training.models import load_policy

    config = config or generation_config(project)
    parts = [part for part in parts if part.prompts]
    # per checkpoint, the (part, side) slots it answers, in order; a part with the same
    # checkpoint on both sides asks it twice, so its two samples are drawn independently
    slots: dict[int, list[tuple[int, str]]] = {}
    checkpoints: dict[int, Checkpoint] = {}
    for i, part in enumerate(parts):
        for side, checkpoint in (("a", part.checkpoint_a), ("b", part.checkpoint_b)):
            slots.setdefault(checkpoint.pk, []).append((i, side))
            checkpoints[checkpoint.pk] = checkpoint
    for checkpoint in checkpoints.values():
        checkpoint_verify(checkpoint)
    total = 2 * sum(len(part.prompts) for part in parts)
    responses: dict[tuple[int, str], list] = {}
    done = 0
    for pk, wanted in slots.items():
        checkpoint = checkpoints[pk]
        messages = [p.messages for i, _ in wanted for p in parts[i].prompts]
        generated = generate_responses(checkpoint.path, messages, config, _offset(hooks, done, total),
                                       model_and_tokenizer=load_policy(checkpoint.path))
        done += len(messages)
        for i, side in wanted:
            n = len(parts[i].prompts)
            responses[(i, side)], generated = generated[:n], generated[n:]
    hooks.check()
    params = sample_params(config)
    created = []
    with transaction.atomic():
        for i, part in enumerate(parts):
            for prompt, ra, rb in zip(part.prompts, responses[(i, "a")], responses[(i, "b")]):
                created.append(comparison_store(
                    project=project, prompt=prompt, batch=batch, training_round=training_round,
                    sample_a=sample_store(prompt=prompt, checkpoint=part.checkpoint_a, response=ra, params=params),
                    sample_b=sample_store(prompt=prompt, checkpoint=part.checkpoint_b, response=rb, params=params),
                ))
        if finalize is not None:
            finalize(created)
    return created


def comparisons_all_pairs(
    *,
    project: Project,
    prompts: list[Prompt],
    checkpoint: Checkpoint | None,
    samples_per_prompt: int,
    batch: int,
    config: GenerationConfig,
    params: dict | None = None,
    hooks: Hooks = NO_HOOKS,
    server=None,
) -> list[Comparison]:
    """Sample `samples_per_prompt` responses per prompt from one checkpoint; every pair is a comparison.

    With `server` (a `training.remote.ServerConfig`) the responses come from that server
    instead, and each sample records the server's model name and URL (the checkpoint is
    not used). k samples give k(k-1)/2 comparisons (4 give 6), so each generated response
    serves several votes. Rows are written in one transaction at the end, as above.
    """
    if not prompts:
        return []
    checkpoint_verify(checkpoint)
    k = samples_per_prompt
    # each prompt repeated k times, so one generate pass yields every prompt's k samples
    repeated = [prompt.messages for prompt in prompts for _ in range(k)]
    params = sample_params(config) if params is None else params
    if server is not None:
        from training.remote import generate_remote

        samples = generate_remote(server, repeated, config, hooks)
        checkpoint, model_name = None, server.model
        params = {**params, "backend": "openai", "base_url": server.base_url, "model": server.model}
    else:
        from training.generation import generate_responses
        from training.models import load_policy

        samples = generate_responses(checkpoint.path, repeated, config, hooks,
                                     model_and_tokenizer=load_policy(checkpoint.path))
        model_name = ""
    hooks.check()
    created = []
    with transaction.atomic():
        for i, prompt in enumerate(prompts):
            rows = [sample_store(prompt=prompt, checkpoint=checkpoint, response=s, params=params, model_name=model_name)
                    for s in samples[i * k:(i + 1) * k]]
            created += [comparison_store(project=project, prompt=prompt, sample_a=a, sample_b=b, batch=batch)
                        for a, b in combinations(rows, 2)]
    return created
