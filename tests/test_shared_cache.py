"""Rate limits are counted in a cache every web process shares (Redis or the database), not per process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import sys, django
django.setup()
from django.conf import settings
settings.CACHES["default"]["KEY_PREFIX"] = sys.argv[1]
from django.core.cache import cache
cache.add("shared-count", 0)
for _ in range(5):
    cache.incr("shared-count")
"""


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_two_processes_count_in_one_cache(fresh_cache):
    assert "LocMem" not in settings.CACHES["default"]["BACKEND"]
    cache.set("shared-count", 3)
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "rlhf_site.settings"}
    for _ in range(2):  # two processes, one after the other, each adding 5
        subprocess.run([sys.executable, "-c", _CHILD, fresh_cache], cwd=ROOT, env=env, check=True, timeout=120)
    assert cache.get("shared-count") == 13


def test_the_cache_is_redis_when_redis_url_is_set_and_the_database_otherwise():
    expected = "RedisCache" if os.environ.get("REDIS_URL") else "DatabaseCache"
    assert settings.CACHES["default"]["BACKEND"].endswith(expected)


def test_migrate_creates_the_cache_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["RLHF_DATA_DIR"] = str(tmp_path)
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=300)
    probe = ("import django; django.setup(); from django.core.cache import cache, caches; "
             "cache.set('k', 'v'); print(type(caches['default']).__name__, cache.get('k'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "rlhf_site.settings"},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "DatabaseCache v", out.stderr[-2000:]


@pytest.mark.django_db
def test_with_redis_gone_votes_are_still_taken_and_throttles_fail_open(tiny_models, alice, settings):
    """A real Redis, stopped: the cache reads nothing and drops writes instead of answering 500."""
    import shutil
    import socket
    import time

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        settings.CACHES = {"default": {"BACKEND": "rlhf_site.cache.FailOpenRedisCache",
                                       "LOCATION": f"redis://127.0.0.1:{port}/0",
                                       "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
        from django.core.cache import cache

        cache.set("up", 1)
        assert cache.get("up") == 1  # a real, working Redis first
    finally:
        server.kill()
        server.wait()
    assert cache.get("up", "gone") == "gone" and cache.add("k", 1) is False

    from rest_framework.test import APIClient

    from tests.helpers import make_project

    project = make_project(tiny_models, first_batch=1)
    client = APIClient()
    client.force_authenticate(alice)
    item = client.get(f"/api/v1/projects/{project.pk}/comparisons/next/")
    assert item.status_code == 200  # throttled views answer, as if nothing was counted yet
    a, b = item.json()["responses"]
    voted = client.post(f"/api/v1/comparisons/{item.json()['comparison_id']}/votes/",
                        {"choice": "a", "a": a["id"], "b": b["id"]}, format="json")
    assert voted.status_code == 201
