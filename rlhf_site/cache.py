"""The shared cache on Redis, failing open: a Redis blip must not turn votes into 500s.

Everything this app keeps in the cache can be lost without harm: rate-limit counts
(API throttles, failed logins) and computed pages (leaderboard, quality). So while Redis
is unreachable a read finds nothing and a write is dropped, with a warning in the log,
instead of every request that touches a throttle answering 500. The price, for as long
as the outage lasts, is that rate limits are not enforced.
"""
import logging

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class FailOpenRedisCache(RedisCache):
    """Django's RedisCache, answering "nothing cached" while Redis cannot be reached."""

    def _unreachable(self, operation: str, exc: Exception, fallback):
        logger.warning("cache %s skipped: Redis is unreachable (%s)", operation, exc)
        return fallback

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except UNREACHABLE as exc:
            return self._unreachable("get", exc, default)

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except UNREACHABLE as exc:
            return self._unreachable("get_many", exc, {})

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except UNREACHABLE as exc:
            return self._unreachable("has_key", exc, False)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set(key, value, timeout, version)
        except UNREACHABLE as exc:
            return self._unreachable("set", exc, None)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set_many(data, timeout, version)
        except UNREACHABLE as exc:
            return self._unreachable("set_many", exc, list(data))

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().add(key, value, timeout, version)
        except UNREACHABLE as exc:
            return self._unreachable("add", exc, False)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().touch(key, timeout, version)
        except UNREACHABLE as exc:
            return self._unreachable("touch", exc, False)

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except UNREACHABLE as exc:
            return self._unreachable("delete", exc, False)

    def delete_many(self, keys, version=None):
        try:
            return super().delete_many(keys, version)
        except UNREACHABLE as exc:
            return self._unreachable("delete_many", exc, None)
