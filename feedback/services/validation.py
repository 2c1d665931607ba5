"""Checks every piece of client text passes before it is stored.

PostgreSQL refuses NUL bytes in text and JSONB, and no database driver can encode a
lone UTF-16 surrogate (which JSON's `\\ud800` escape produces): both would fail at
INSERT time as a 500. Deeply nested JSON exhausts Python's recursion limit wherever
it is walked next. These checks find them first and say where.
"""
import re

# Any text a client sends is bounded; these are the limits the API and the pages enforce.
PROMPT_MAX_CHARS = 20_000
"""A prompt: a text prompt, or all turns of a conversation together."""
RESPONSE_MAX_CHARS = 50_000
MODEL_NAME_MAX_CHARS = 200
TAG_MAX_CHARS = 100
TAGS_MAX = 50
RATIONALE_MAX_CHARS = 5_000
GUIDELINES_MAX_CHARS = 100_000
"""Guidelines are shown on every /annotate/ page: 100 KB is ~30 pages of text."""
JSON_MAX_DEPTH = 64
"""Deepest nesting of a request body; real payloads (conversations, configs) use < 6."""

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    match = _BAD_CHAR.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return f"contains a NUL character at position {match.start()}"
    return f"contains a lone surrogate (an invalid \\u escape) at position {match.start()}"


def json_problem(value, path: str = "") -> tuple[str, str] | None:
    """The first (path, reason) in a parsed JSON value that cannot be stored, or None.

    Walks iteratively (a recursive walk would itself fail on the nesting it guards
    against). Paths look like `[3].messages[0].content` ("" is `value` itself); keys
    are checked too.
    """
    stack = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            return where, f"is nested deeper than {JSON_MAX_DEPTH} levels"
        if isinstance(item, str):
            reason = text_problem(item)
            if reason:
                return where, reason
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                child_path = f"{where}.{key}" if where else str(key)
                reason = text_problem(str(key))
                if reason:
                    return child_path, f"(a key) {reason}"
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, list):
            for i in reversed(range(len(item))):
                stack.append((item[i], f"{where}[{i}]", depth + 1))
    return None
