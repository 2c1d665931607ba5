"""A project's generation backend: local transformers (default) or an OpenAI-compatible server.

Batch jobs and the playground sample from it. Training rounds do not: a round trains the
local policy and samples its next batch locally (new checkpoint against the one before,
for the round's win-rate), because the weights it just wrote exist only here. To rate a
policy trained here through a server, point the backend at a server that serves it: the
project's own serving process (`<project>/active` on its /v1) or a vLLM started on the
exported checkpoint.

The API key is a secret: it is kept in its own column, set or cleared but never read
back; pages, API answers, job params and results show only whether it is set.
"""
from urllib.parse import urlsplit

from feedback.models import Project
from feedback.services.errors import FieldError, int_in_range
from feedback.services.validation import text_problem

LOCAL = "local"
OPENAI = "openai"
KINDS = (LOCAL, OPENAI)
FIELD = "generation_backend"
MODEL_MAX_CHARS = 200  # Sample.model_name
KEY_MAX_CHARS = 500
DEFAULTS = {"concurrency": 4, "timeout_s": 120.0, "max_retries": 3}


def _error(name: str, reason: str) -> FieldError:
    from feedback.services.projects import ProjectError

    return ProjectError(f"{FIELD}.{name}" if name else FIELD, reason)


def base_url_clean(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error("base_url", "is required for a server backend, e.g. http://127.0.0.1:8000/v1")
    value = value.strip().rstrip("/")
    if len(value) > 500 or text_problem(value) or any(c.isspace() for c in value):
        raise _error("base_url", "must be a URL of at most 500 characters, without spaces")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise _error("base_url", f"is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _error("base_url", "must start with http:// or https:// and name a host")
    if parts.username or parts.password:
        # it would be shown on every settings page; the key field is the place for a secret
        raise _error("base_url", "must not hold a user or password; put the key in the API key field")
    if parts.query or parts.fragment:
        raise _error("base_url", "must not have a query or fragment; give the URL up to /v1")
    if parts.path.endswith("/chat/completions"):
        raise _error("base_url", "give the URL up to /v1; /chat/completions is appended")
    return value


def backend_clean(data) -> dict:
    """The `generation_backend` setting, checked: {} for local, or the server's full settings.

    Errors name the field (`generation_backend.base_url`) and the reason.
    """
    if data in (None, {}):
        return {}
    if not isinstance(data, dict):
        raise _error("", "must be an object")
    known = {"kind", "base_url", "model", *DEFAULTS}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        hint = " (the key is its own setting, generation_api_key)" if "api_key" in unknown else ""
        raise _error(", ".join(unknown), f"unknown field(s){hint}; known: {', '.join(sorted(known))}")
    kind = data.get("kind", OPENAI if "base_url" in data else LOCAL)
    if kind not in KINDS:
        raise _error("kind", f"must be one of {', '.join(KINDS)}")
    if kind == LOCAL:
        return {}
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _error("model", "is required: the model name the server knows (its /v1/models lists them)")
    model = model.strip()
    if len(model) > MODEL_MAX_CHARS or text_problem(model):
        raise _error("model", f"must be at most {MODEL_MAX_CHARS} characters of text")
    cleaned = {"kind": OPENAI, "base_url": base_url_clean(data.get("base_url")), "model": model}
    concurrency = data.get("concurrency", DEFAULTS["concurrency"])
    if not int_in_range(concurrency, 1, 64):
        raise _error("concurrency", "must be an integer between 1 and 64 (requests in flight at once)")
    retries = data.get("max_retries", DEFAULTS["max_retries"])
    if not int_in_range(retries, 0, 10):
        raise _error("max_retries", "must be an integer between 0 and 10")
    timeout = data.get("timeout_s", DEFAULTS["timeout_s"])
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 3600:
        raise _error("timeout_s", "must be a number of seconds between 1 and 3600")
    cleaned.update(concurrency=concurrency, max_retries=retries, timeout_s=float(timeout))
    return cleaned


def api_key_clean(value) -> str:
    """A new API key ("" clears it). Refused with a reason that never repeats the value."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _error_key("must be text")
    value = value.strip()
    if len(value) > KEY_MAX_CHARS:
        raise _error_key(f"is longer than {KEY_MAX_CHARS} characters")
    # it goes into an HTTP header: a line break there would be header injection
    if any(not c.isprintable() or c.isspace() for c in value):
        raise _error_key("must be one line of printable characters without spaces")
    return value


def _error_key(reason: str) -> FieldError:
    from feedback.services.projects import ProjectError

    return ProjectError("generation_api_key", reason)


def server_config(project: Project):
    """The project's server as a `training.remote.ServerConfig`, or None when it samples locally."""
    backend = project.generation_backend or {}
    if backend.get("kind") != OPENAI:
        return None
    from training.remote import ServerConfig

    return ServerConfig(base_url=backend["base_url"], model=backend["model"], api_key=project.generation_api_key,
                        concurrency=backend.get("concurrency", DEFAULTS["concurrency"]),
                        timeout_s=backend.get("timeout_s", DEFAULTS["timeout_s"]),
                        max_retries=backend.get("max_retries", DEFAULTS["max_retries"]))


def backend_public(project: Project) -> dict:
    """What may be shown of the backend: its settings and whether a key is set, never the key."""
    backend = dict(project.generation_backend or {}) or {"kind": LOCAL}
    if backend["kind"] == OPENAI:
        backend["api_key"] = "set" if project.generation_api_key else "not set"
    return backend


def sample_source(project: Project) -> dict:
    """Recorded in each remote sample's generation params: which backend and model produced it."""
    backend = project.generation_backend
    return {"backend": OPENAI, "base_url": backend["base_url"], "model": backend["model"]}

