"""Failed-login limits per account and per client address, counted in the shared cache.

Without them a password can be guessed at the speed of the server (100 tries in 38 s).
After `LOGIN_FAILURE_LIMIT` failures within `LOGIN_FAILURE_WINDOW_S` for an account, or
from an address, further tries are refused, even with the right password, until the
window that began with the first failure has passed. Counts live in the cache every web
process shares (Redis or the database), so gunicorn's processes see the same numbers.
"""
import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def _now() -> float:
    """Wall-clock seconds; its own name so tests can move the limiter's clock alone."""
    return time.time()


def _keys(username: str, address: str) -> list[str]:
    # hashed: usernames may hold characters or lengths a cache key must not
    return [f"login-failures:{kind}:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()}"
            for kind, value in (("account", username or ""), ("address", address or ""))]


def _window(key: str, now: float) -> tuple[float, int]:
    """(first failure time, failures) of the window running at `now`; a finished window counts 0."""
    started, count = cache.get(key) or (now, 0)
    if now - started >= settings.LOGIN_FAILURE_WINDOW_S:
        return now, 0
    return started, count


def login_retry_after(*, username: str, address: str) -> int:
    """Seconds until this account and address may try again; 0 when they may now."""
    now = _now()
    wait = 0.0
    for key in _keys(username, address):
        started, count = _window(key, now)
        if count >= settings.LOGIN_FAILURE_LIMIT:
            wait = max(wait, started + settings.LOGIN_FAILURE_WINDOW_S - now)
    return math.ceil(wait)


def login_failure_record(*, username: str, address: str) -> None:
    """Count one failed login against the account and the address, and log it."""
    now = _now()
    counts = []
    for key in _keys(username, address):
        # Two processes failing at once may count one failure too few: a limit of 10
        # that lets 11 through under a race is still a limit.
        started, count = _window(key, now)
        remaining = started + settings.LOGIN_FAILURE_WINDOW_S - now
        cache.set(key, (started, count + 1), timeout=max(1, math.ceil(remaining)))
        counts.append(count + 1)
    logger.warning("failed login for account %r from %s (%d failures for the account, %d from the address, "
                   "limit %d per %d s)", username, address, counts[0], counts[1], settings.LOGIN_FAILURE_LIMIT,
                   settings.LOGIN_FAILURE_WINDOW_S)
