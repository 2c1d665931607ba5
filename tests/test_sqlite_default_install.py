"""The default install's SQLite under concurrent writers (run in a process of its own:
the test session itself uses PostgreSQL in CI)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _scenario(name: str, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(RLHF_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="rlhf_site.settings")
    result = subprocess.run([sys.executable, "tests/sqlite/scenarios.py", name], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_twelve_annotators_drain_the_queue_exactly_on_sqlite(tmp_path):
    # Candidates are read before the write lock on SQLite; the recount under it must still
    # keep every comparison at exactly its overlap.
    out = _scenario("drain", tmp_path)
    assert out["errors"] == []
    assert out["votes"] == 180 == out["distinct_pairs"]
    assert out["per_comparison"] == [3]
    assert out["open_left"] == 0


def test_a_writer_waits_for_the_lock_then_writes(tmp_path):
    out = _scenario("wait", tmp_path)
    assert out["backend"] == "rlhf_site.sqlite_backend.base"  # the default install's, not Django's stock one
    assert out["waited_s"] >= 0.4  # it did wait for the holder's 0.5 s ...
    assert out["names"] == ["holder", "waiter"]  # ... and then wrote
    assert out["busy_timeout_ms"] == 30_000  # SQLite's own handler is back for other statements


def test_a_writer_gives_up_after_the_timeout_with_a_database_error(tmp_path):
    out = _scenario("give_up", tmp_path)
    assert out["error"] and "locked" in out["error"]
    assert 0.25 <= out["waited_s"] < 1.5  # the 0.3 s timeout, not the holder's 2 s
    assert out["busy_timeout_ms"] == 300
    assert out["names"] == ["holder"]


def test_a_kept_connection_follows_a_database_file_replaced_between_requests(tmp_path):
    # Connections are kept between requests on SQLite: after a restore, the next request
    # must see the restored file, and what it writes must land there, not in the old one.
    out = _scenario("replaced", tmp_path)
    assert out["kept_between_requests"]
    assert out["seen"] == ["in the backup"]
    assert out["stored"] == ["in the backup", "written after the restore"]
