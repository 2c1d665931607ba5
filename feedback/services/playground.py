"""The playground: two policies answer one prompt side by side, streamed; a pair can go to the annotators.

Models stay loaded between requests in the process's LRU (training/model_cache.py, by path;
at most RLHF_MAX_LOADED_MODELS, two by default): loading a checkpoint costs seconds, and
comparing the same two over several prompts is the usual use. Both answers are generated at once, each in its own thread, and their pieces are
merged into one stream as they come.
"""
import queue
import threading
import uuid

from django.core import signing
from django.db import transaction

from feedback.models import Checkpoint, Comparison, Project, Prompt, Sample, TrainingRound
from feedback.services.checkpoints import checkpoint_verify
from feedback.services.errors import FieldError
from feedback.services.generation import comparison_store
from feedback.services.generation_backend import server_config
from feedback.services.serving import loaded_models

PAIR_SALT = "feedback.playground.pair"
PAIR_MAX_AGE_S = 24 * 3600


# The process's one model LRU, shared with serving (services/serving.py).
models = loaded_models


def _server_side(project: Project, messages: list[dict], params: dict, seed: int | None, stop: threading.Event):
    """The project's generation server answers in one piece (it is asked without streaming)."""
    from training.remote import chat_complete, completion_sample, request_body

    server = server_config(project)
    if server is None:
        raise FieldError("checkpoint", "this project has no generation server set up")
    body = request_body(messages, max_new_tokens=params["max_new_tokens"], temperature=params["temperature"],
                        top_p=params["top_p"], seed=seed)
    sample = completion_sample(chat_complete(server, body, stop))
    return sample, {"checkpoint": None, "model": server.model, "base_url": server.base_url}


def playground_stream(*, project: Project, checkpoint_a: Checkpoint | None, checkpoint_b: Checkpoint | None,
                      messages: list[dict], params: dict, prompt: Prompt | None = None):
    """Yield events while both checkpoints answer `messages`: plain dicts, in the order they happen.

    A side whose checkpoint is None is answered by the project's generation server.

    {"side": "a"|"b", "text": piece} while generating; {"side", "done": True, "token_count",
    "finished"} at each side's end; {"side", "error"} if one fails; finally {"end": True,
    "pair": token} where the token (signed, so it cannot be forged) lets the admin send
    exactly this pair to the annotators. Closing the generator (the client went away)
    stops both threads at their next token.
    """
    from training.generation import stream_response

    for c in (checkpoint_a, checkpoint_b):
        if c is not None and (c.project_id != project.pk or c.kind != Checkpoint.Kind.POLICY):
            raise FieldError("checkpoint", f"{c.pk} is not a policy of this project")
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    results: dict[str, dict] = {}

    sources = {"a": {"checkpoint": checkpoint_a.pk} if checkpoint_a else None,
               "b": {"checkpoint": checkpoint_b.pk} if checkpoint_b else None}

    def work(side: str, checkpoint: Checkpoint | None, seed: int | None) -> None:
        try:
            if checkpoint is None:
                sample, sources[side] = _server_side(project, messages, params, seed, stop)
                results[side] = {"text": sample.text, "token_count": sample.token_count, "finished": sample.finished}
                if sample.text:
                    events.put({"side": side, "text": sample.text})
                events.put({"side": side, "done": True, "token_count": sample.token_count,
                            "finished": sample.finished})
                return
            model, tokenizer = models.get(checkpoint_verify(checkpoint))
            for chunk in stream_response(model, tokenizer, messages, max_new_tokens=params["max_new_tokens"],
                                         temperature=params["temperature"], top_p=params["top_p"], seed=seed,
                                         should_stop=stop.is_set):
                if chunk.text:
                    events.put({"side": side, "text": chunk.text})
                if chunk.done:
                    results[side] = {"text": chunk.full_text, "token_count": chunk.token_count,
                                     "finished": chunk.finished}
                    events.put({"side": side, "done": True, "token_count": chunk.token_count,
                                "finished": chunk.finished})
        except Exception as exc:  # shown in that side's panel; the other side goes on
            events.put({"side": side, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            events.put({"side": side, "exit": True})

    seed = params.get("seed")
    # B gets the next seed: with one seed and the same checkpoint on both sides, the two
    # answers would otherwise be the same text.
    threads = [threading.Thread(target=work, args=("a", checkpoint_a, seed), daemon=True),
               threading.Thread(target=work, args=("b", checkpoint_b, None if seed is None else seed + 1), daemon=True)]
    for t in threads:
        t.start()
    try:
        running = len(threads)
        while running:
            event = events.get()
            if event.get("exit"):
                running -= 1
                continue
            yield event
        if set(results) == {"a", "b"}:
            yield {"end": True, "pair": signing.dumps({
                "nonce": uuid.uuid4().hex, "project": project.pk, "prompt": prompt.pk if prompt else None,
                "messages": messages, "a": {**sources["a"], **results["a"]},
                "b": {**sources["b"], **results["b"]},
                "params": {**params, "seed_b": None if seed is None else seed + 1},
            }, salt=PAIR_SALT, compress=True)}
        else:
            yield {"end": True, "pair": None}
    finally:
        stop.set()


def playground_pair_send(*, project: Project, pair: str) -> Comparison:
    """Put a pair the playground produced (its signed token) in the annotators' queue, once.

    A typed prompt becomes a prompt of the project (source "playground"); a held-out
    prompt stays itself. Sending the same pair twice returns the first comparison.
    """
    try:
        data = signing.loads(pair, salt=PAIR_SALT, max_age=PAIR_MAX_AGE_S)
    except signing.SignatureExpired:
        raise FieldError("pair", "this pair is more than a day old; generate it again") from None
    except signing.BadSignature:
        raise FieldError("pair", "not a pair this playground produced") from None
    if data["project"] != project.pk:
        raise FieldError("pair", "belongs to another project")
    wanted = {data[side]["checkpoint"] for side in "ab"} - {None}
    checkpoints = {c.pk: c for c in Checkpoint.objects.filter(
        project=project, kind=Checkpoint.Kind.POLICY, pk__in=wanted)}
    if len(checkpoints) != len(wanted):
        raise FieldError("pair", "one of its checkpoints no longer exists")
    checkpoints[None] = None
    with transaction.atomic():
        # Serialises sends per project so that a double click cannot store the pair twice.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        earlier = Sample.objects.filter(prompt__project=project, generation_params__playground=data["nonce"]).first()
        if earlier is not None:
            return Comparison.objects.filter(sample_a=earlier).first()
        if data["prompt"] is not None:
            prompt = Prompt.objects.get(pk=data["prompt"], project=project)
        else:
            prompt = Prompt.objects.create(project=project, messages=data["messages"], source="playground",
                                           tags=["playground"])
        samples = {}
        for side in ("a", "b"):
            s = data[side]
            params = {k: data["params"][k] for k in ("max_new_tokens", "temperature", "top_p")}
            params["seed"] = data["params"]["seed"] if side == "a" else data["params"]["seed_b"]
            params["playground"] = data["nonce"]
            if s["checkpoint"] is None:  # the project's generation server wrote it
                params.update(backend="openai", base_url=s["base_url"], model=s["model"])
            samples[side] = Sample.objects.create(
                prompt=prompt, checkpoint=checkpoints[s["checkpoint"]], model_name=s.get("model") or "",
                text=s["text"], token_count=s["token_count"], finished=s["finished"], generation_params=params,
            )
        last_round = TrainingRound.objects.filter(project=project, status=TrainingRound.Status.DONE).order_by("-number").first()
        return comparison_store(project=project, prompt=prompt, sample_a=samples["a"], sample_b=samples["b"],
                                batch=last_round.number if last_round else 0)
