"""Strict readers for settings taken from the environment.

A value that cannot be parsed stops start-up with ImproperlyConfigured naming the
variable, instead of silently meaning something else (a typo in DEBUG must not turn
debugging off or on behind the operator's back).
"""
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    items = [item.strip() for item in raw.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(f"{name}={raw!r} has an empty entry; separate hosts with commas.")
    return items


def env_database(name: str, default_sqlite_path: Path) -> dict:
    """DATABASE_URL as a Django DATABASES entry; SQLite under the data dir when unset."""
    import dj_database_url

    raw = os.environ.get(name, "").strip()
    if not raw:
        return {
            "ENGINE": SQLITE_ENGINE,
            "NAME": str(default_sqlite_path),
            "OPTIONS": _SQLITE_OPTIONS,
            **_SQLITE_CONNECTIONS,
            # A file, not shared-cache memory: the live test server's and the Celery test
            # worker's threads then lock rows the way production SQLite does (WAL).
            "TEST": {"NAME": str(default_sqlite_path.with_name("test-" + default_sqlite_path.name))},
        }
    try:
        # runserver (how scripts/demo serves) starts a thread per request: persistent
        # per-thread connections would pile up until PostgreSQL refuses new clients, and a
        # fresh connection per request costs ~10 ms. A psycopg pool serves both cases.
        config = dj_database_url.parse(raw, conn_max_age=0)
    except Exception as exc:  # dj_database_url raises ValueError and friends
        raise ImproperlyConfigured(f"{name}={raw!r} is not a database URL: {exc}") from None
    engine = config.get("ENGINE", "")
    if engine not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
        raise ImproperlyConfigured(
            f"{name}={raw!r}: only postgres:// and sqlite:// URLs are supported (got engine {engine!r})."
        )
    if engine == "django.db.backends.sqlite3":
        config.update(ENGINE=SQLITE_ENGINE, OPTIONS=_SQLITE_OPTIONS, **_SQLITE_CONNECTIONS)
    else:
        pool_size = env_int("DB_POOL_SIZE", 20, minimum=0)
        if pool_size:
            config.setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": 30}
    return config


# The web server and the worker write to one SQLite file at the same time: WAL lets
# readers go on during a write, IMMEDIATE takes the write lock at BEGIN so two writers
# queue on `timeout` instead of failing with "database is locked" halfway through.
# Django's backend, with a writer waiting for that lock in short steps (sqlite_backend/base.py).
SQLITE_ENGINE = "rlhf_site.sqlite_backend"
# A web thread keeps its SQLite connection between requests: opening one (the file, the
# PRAGMAs above, Django's SQL functions) cost about a tenth of the server's CPU time per
# fetch + vote (BENCHMARKS.md). Connections to a file are cheap to hold; gunicorn's
# threads are a fixed pool. The health check (sqlite_backend) replaces one whose file was
# deleted or replaced since it opened it.
_SQLITE_CONNECTIONS = {"CONN_MAX_AGE": 600, "CONN_HEALTH_CHECKS": True}
_SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def env_broker(name: str, data_dir: Path) -> tuple[str, dict]:
    """REDIS_URL as a Celery broker; kombu's filesystem transport when unset.

    The filesystem transport needs no server, so the app and the worker run on a
    laptop with nothing installed; both processes share the folders under the data dir.
    """
    raw = os.environ.get(name, "").strip()
    if raw:
        if not raw.startswith(("redis://", "rediss://", "unix://")):
            raise ImproperlyConfigured(f"{name}={raw!r} must start with redis://, rediss:// or unix://.")
        return raw, {}
    folder = data_dir / "broker"
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        # exchange tables; kombu's default is ./control, i.e. whatever folder we run from
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def env_cache(name: str, table: str) -> dict:
    """The shared cache: Redis at REDIS_URL when set, a database table otherwise."""
    raw = os.environ.get(name, "").strip()
    if raw:
        if not raw.startswith(("redis://", "rediss://", "unix://")):
            raise ImproperlyConfigured(f"{name}={raw!r} must start with redis://, rediss:// or unix://.")
        # Same server as the broker; the prefix keeps cache keys apart from Celery's.
        # Fails open (rlhf_site/cache.py): with Redis away a request finds nothing cached
        # rather than answering 500, and gives up on a dead server within a second.
        return {"BACKEND": "rlhf_site.cache.FailOpenRedisCache", "LOCATION": raw, "KEY_PREFIX": "rlhf-cache",
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}
    return {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": table}
