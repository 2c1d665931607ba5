"""OpenAI-compatible chat completions from a project's checkpoints.

This module turns a request body into generation requests, runs them through the
process's batching queue and shapes the answers as the OpenAI API does (a completion,
or server-sent chunks ending with `data: [DONE]`). Which checkpoint a name means is
selectors/serving.py; the token loop is training/generation.py.

Loaded models and the batching queue live once per process (`loaded_models`, `batcher()`):
the playground in the web process and the serving process each keep their own.
"""
import json
import threading
import time
import uuid

from django.conf import settings

from feedback.models import Checkpoint
from feedback.services.checkpoints import checkpoint_verify
from feedback.services.errors import FieldError, int_in_range
from training.model_cache import ModelCache

ROLES = ("system", "user", "assistant")
MAX_N = 8
MAX_STOPS = 4

loaded_models = ModelCache(max_models=settings.RLHF_MAX_LOADED_MODELS,
                           max_bytes=settings.RLHF_MAX_LOADED_MB * 1024 * 1024)
_batcher = None
_batcher_lock = threading.Lock()


def batcher():
    """The process's batching queue (created on first use, so importing this starts no thread)."""
    global _batcher
    with _batcher_lock:
        if _batcher is None:
            from training.batching import Batcher

            _batcher = Batcher(loaded_models, max_batch=settings.RLHF_SERVE_MAX_BATCH,
                               window_s=settings.RLHF_SERVE_BATCH_WINDOW_MS / 1000)
        return _batcher


def _number(data: dict, name: str, default, low: float, high: float, *, low_open: bool = False):
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(name, "must be a number")
    if value > high or value < low or (low_open and value == low):
        raise FieldError(name, f"must be {'>' if low_open else '>='} {low} and <= {high}")
    return float(value)


def _content(message: dict, i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # The content-parts form the client sends for multimodal messages: text parts only here.
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise FieldError(f"messages[{i}].content", "only text parts are supported")
            texts.append(part["text"])
        return "".join(texts)
    if content is None and message.get("role") == "assistant":
        return ""
    raise FieldError(f"messages[{i}].content", "must be a string")


def chat_params(data) -> dict:
    """Validated settings of a chat completion request; FieldError names the first bad one."""
    if not isinstance(data, dict):
        raise FieldError("body", "must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise FieldError("model", "name a checkpoint: <project>/active, <project>/round-N or a checkpoint id")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise FieldError("messages", "must be a non-empty list of {role, content}")
    clean = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise FieldError(f"messages[{i}]", "must be an object with role and content")
        role = "system" if message.get("role") == "developer" else message.get("role")
        if role not in ROLES:
            raise FieldError(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}")
        clean.append({"role": role, "content": _content(message, i)})
    limit = settings.RLHF_SERVE_MAX_TOKENS
    field = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = data.get(field)
    if max_tokens is None:
        max_tokens = min(256, limit)
    elif not int_in_range(max_tokens, 1, limit):
        raise FieldError(field, f"must be an integer from 1 to {limit}")
    n = data.get("n")
    if n is None:
        n = 1
    elif not int_in_range(n, 1, MAX_N):
        raise FieldError("n", f"must be an integer from 1 to {MAX_N}")
    stop = data.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > MAX_STOPS or not all(isinstance(s, str) and s for s in stop):
        raise FieldError("stop", f"must be a non-empty string or a list of at most {MAX_STOPS} of them")
    seed = data.get("seed")
    if seed is not None and not int_in_range(seed, -(2 ** 63), 2 ** 63 - 1):
        raise FieldError("seed", "must be an integer")
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise FieldError("stream", "must be true or false")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise FieldError("stream_options", "must be an object")
    return {
        "model": model.strip(), "messages": clean, "max_tokens": max_tokens, "n": n, "stop": tuple(stop),
        "temperature": _number(data, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(data, "top_p", 1.0, 0.0, 1.0, low_open=True),
        "seed": seed, "stream": stream, "include_usage": bool(options.get("include_usage")),
    }


def _requests(params: dict) -> list:
    from training.generation import GenerationRequest

    # Choice i of a seeded request draws from seed + i: n answers differ, and the same
    # request gives the same n answers again.
    return [GenerationRequest(prompt=params["messages"], max_new_tokens=params["max_tokens"],
                              temperature=params["temperature"], top_p=params["top_p"],
                              seed=None if params["seed"] is None else (params["seed"] + i) % 2 ** 63,
                              stop=params["stop"])
            for i in range(params["n"])]


def _prompt_tokens(path: str, messages: list[dict]) -> int:
    from training.generation import render_prompt

    _, tokenizer = loaded_models.get(path)
    return len(tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"])


def _envelope(checkpoint: Checkpoint, params: dict, object_type: str) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": object_type, "created": int(time.time()),
            "model": params["model"], "system_fingerprint": f"ckpt-{checkpoint.pk}-{checkpoint.sha256[:12]}"}


def chat_completion(*, checkpoint: Checkpoint, params: dict) -> dict:
    """A whole chat completion (OpenAI's `chat.completion` object) from `checkpoint`."""
    checkpoint_verify(checkpoint)
    prompt_tokens = _prompt_tokens(checkpoint.path, params["messages"])
    finals = {}
    for chunk in batcher().submit(checkpoint.path, _requests(params)):
        if chunk.done:
            finals[chunk.index] = chunk
    choices = [{"index": i, "message": {"role": "assistant", "content": finals[i].full_text},
                "logprobs": None, "finish_reason": finals[i].finish_reason} for i in range(params["n"])]
    completion_tokens = sum(c.token_count for c in finals.values())
    return {**_envelope(checkpoint, params, "chat.completion"), "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def _sse(payload) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def chat_completion_stream(*, checkpoint: Checkpoint, params: dict):
    """Server-sent events of a chat completion: OpenAI's `chat.completion.chunk`s, then `[DONE]`.

    Each choice opens with its role, then its text as drawn; its last chunk carries its
    finish_reason. A failure mid-stream becomes one `{"error": ...}` event (the status line
    has long been sent).
    """
    head = _envelope(checkpoint, params, "chat.completion.chunk")
    try:
        checkpoint_verify(checkpoint)
        prompt_tokens = _prompt_tokens(checkpoint.path, params["messages"])
        for i in range(params["n"]):
            yield _sse({**head, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                             "logprobs": None, "finish_reason": None}]})
        completion_tokens = 0
        for chunk in batcher().submit(checkpoint.path, _requests(params)):
            if chunk.text:
                yield _sse({**head, "choices": [{"index": chunk.index, "delta": {"content": chunk.text},
                                                 "logprobs": None, "finish_reason": None}]})
            if chunk.done:
                completion_tokens += chunk.token_count
                yield _sse({**head, "choices": [{"index": chunk.index, "delta": {}, "logprobs": None,
                                                 "finish_reason": chunk.finish_reason}]})
        if params["include_usage"]:
            yield _sse({**head, "choices": [], "usage": {
                "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}})
    except Exception as exc:  # noqa: BLE001 - the client must hear why the stream ended
        yield _sse({"error": {"message": f"generation failed: {type(exc).__name__}: {exc}",
                              "type": "server_error", "param": None, "code": None}})
    yield "data: [DONE]\n\n"
