"""Sampling from a server that speaks OpenAI's `/v1/chat/completions` (vLLM, TGI, llama.cpp, a hosted API).

Plain Python: the standard library's HTTP client (no new dependency), a thread per
request in flight up to `concurrency`, bounded retries with exponential backoff on what
may pass (429, 5xx, a refused or dropped connection, a timeout), and errors that name the
server and the HTTP status. A failing server fails the caller: nothing falls back to a
local model, since samples from another model would be rated under the server's name.

The API key is sent as `Authorization: Bearer <key>` and never appears in an error, a
repr or a log line (a server that echoes it back has it replaced by `***`).
"""
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from training.config import GenerationConfig, SEED_MAX
from training.generation import GeneratedSample, as_messages
from training.progress import NO_HOOKS, Cancelled, Hooks

RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 30.0
DETAIL_CHARS = 300


@dataclass
class ServerConfig:
    """Where and how to reach the server; `base_url` ends where `/chat/completions` is appended (…/v1)."""

    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    concurrency: int = 4
    """Requests in flight at once."""
    timeout_s: float = 120.0
    """Per request: connecting plus the whole answer (a long answer on a busy server takes a while)."""
    max_retries: int = 3
    """Retries after the first attempt, on 429, 5xx, connection errors and timeouts."""
    backoff_s: float = 1.0
    """First wait before a retry; doubled each time (a 429's Retry-After wins, up to 30 s)."""

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


class ServerError(RuntimeError):
    """The server could not give an answer; the message names its URL and what went wrong."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class _Retryable(Exception):
    def __init__(self, message: str, *, status: int | None = None, wait_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.wait_s = wait_s


def _redact(text: str, config: ServerConfig) -> str:
    return text.replace(config.api_key, "***") if config.api_key else text


def _detail(body: bytes, config: ServerConfig) -> str:
    """What the server said about an error: OpenAI's error.message when it sent one, else the body's start."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        message = data.get("error", {}).get("message") if isinstance(data.get("error"), dict) else data.get("error")
        text = message if isinstance(message, str) and message else text
    except (ValueError, AttributeError):
        pass
    text = " ".join(text.split())
    return _redact(text[:DETAIL_CHARS], config)


def _post(config: ServerConfig, body: dict) -> dict:
    """One attempt. Raises _Retryable for what may pass, ServerError for what will not."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    request = urllib.request.Request(config.url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = _detail(exc.read(), config)
        if exc.code in RETRY_STATUSES:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            wait_s = None
            try:
                wait_s = min(float(retry_after), MAX_RETRY_AFTER_S) if retry_after else None
            except ValueError:
                pass
            raise _Retryable(f"answered HTTP {exc.code}: {detail}", status=exc.code, wait_s=wait_s) from None
        raise ServerError(f"generation server {config.url} answered HTTP {exc.code}: {detail}", status=exc.code) from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kind = "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else "could not be reached"
        raise _Retryable(f"{kind} ({_redact(str(reason), config)})") from None
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise TypeError("content is not text")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ServerError(f"generation server {config.url} answered HTTP 200 but not with a chat completion "
                          f"({type(exc).__name__}: {_redact(str(exc), config)[:DETAIL_CHARS]})", status=200) from None
    return data


def chat_complete(config: ServerConfig, body: dict, stop: threading.Event | None = None) -> dict:
    """POST one chat completion, retrying with backoff; `stop` set ends the waiting with Cancelled."""
    attempts = config.max_retries + 1
    for attempt in range(attempts):
        if stop is not None and stop.is_set():
            raise Cancelled("cancelled on request")
        try:
            return _post(config, {**body, "model": config.model})
        except _Retryable as exc:
            if attempt + 1 == attempts:
                tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                raise ServerError(f"generation server {config.url} {exc} (after {tries})", status=exc.status) from None
            delay = exc.wait_s if exc.wait_s is not None else config.backoff_s * 2 ** attempt
            if stop is not None:
                if stop.wait(delay):
                    raise Cancelled("cancelled on request") from None
            else:
                time.sleep(delay)
    raise AssertionError("unreachable")


def completion_sample(data: dict) -> GeneratedSample:
    """A chat completion's first choice as the app stores a response."""
    choice = data["choices"][0]
    text = (choice["message"].get("content") or "").strip()
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens = usage.get("completion_tokens")
    # a server that reports no usage: count words rather than claim zero tokens
    token_count = tokens if isinstance(tokens, int) and tokens >= 0 else len(text.split())
    return GeneratedSample(text=text, token_count=token_count, finished=choice.get("finish_reason") == "stop")


def request_body(prompt, *, max_new_tokens: int, temperature: float, top_p: float, seed: int | None) -> dict:
    body = {"messages": as_messages(prompt), "max_tokens": max_new_tokens, "temperature": temperature,
            "top_p": top_p, "n": 1, "stream": False}
    if seed is not None:
        body["seed"] = seed
    return body


def generate_remote(config: ServerConfig, prompts: list, gen: GenerationConfig | None = None,
                    hooks: Hooks = NO_HOOKS) -> list[GeneratedSample]:
    """One response per prompt from the server, in order; up to `concurrency` requests at once.

    With a seed, request i is sent seed + i, so repeated prompts (k samples of one prompt)
    get different answers and a rerun gets the same ones from a server that honours seeds.
    The first request that fails for good fails the call (ServerError); the rest are dropped.
    """
    gen = (gen or GenerationConfig()).validate()
    total = len(prompts)
    results: list[GeneratedSample | None] = [None] * total
    stop = threading.Event()
    hooks.progress("generating", 0, total)

    def one(i: int) -> None:
        seed = None if gen.seed is None else (gen.seed + i) % (SEED_MAX + 1)
        body = request_body(prompts[i], max_new_tokens=gen.max_new_tokens, temperature=gen.temperature,
                            top_p=gen.top_p, seed=seed)
        results[i] = completion_sample(chat_complete(config, body, stop))

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, config.concurrency), thread_name_prefix="remote-gen") as pool:
        pending = {pool.submit(one, i) for i in range(total)}
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                for future in finished:
                    future.result()  # re-raises the first failure here, in the caller's thread
                    done += 1
                if finished:
                    hooks.progress("generating", done, total)
                hooks.check()
        finally:
            stop.set()
            for future in pending:
                future.cancel()
    return results
