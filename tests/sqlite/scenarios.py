"""Run as a script against the default install's SQLite (the test sets RLHF_DATA_DIR and no
DATABASE_URL): `python tests/sqlite/scenarios.py drain|wait|give_up|replaced`, one JSON line out.

The test session itself runs on PostgreSQL in CI, so the SQLite backend's behaviour under
concurrent writers is exercised in a process of its own, configured as `scripts/demo` is.
"""
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import OperationalError, connection, connections, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402

from feedback.models import Comparison, Project, Vote  # noqa: E402
from tests.helpers import queue_drained_at_once, queue_project  # noqa: E402


def drain(comparisons: int = 60, overlap: int = 3, annotators: int = 12) -> dict:
    """Annotators in threads, each its own connection, drain a queue at once."""
    project = queue_project(comparisons, overlap, name="SQLite drain")
    users = [get_user_model().objects.create_user(username=f"annotator{i}", password="x") for i in range(annotators)]
    errors = queue_drained_at_once(project, users, timeout=120)
    pairs = list(Vote.objects.filter(comparison__project=project).values_list("comparison", "annotator"))
    per_comparison = Vote.objects.filter(comparison__project=project).values("comparison").annotate(n=Count("id"))
    return {"errors": errors, "votes": len(pairs), "distinct_pairs": len(set(pairs)),
            "per_comparison": sorted({row["n"] for row in per_comparison}),
            "open_left": Comparison.objects.filter(project=project, status="open").count()}


def _hold_write_lock(seconds: float, held: threading.Event) -> None:
    try:
        with transaction.atomic():
            Project.objects.create(name="holder")
            held.set()
            time.sleep(seconds)
    finally:
        connections.close_all()


def wait() -> dict:
    """A writer that finds the lock taken waits for it, then writes."""
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(0.5, held))
    holder.start()
    held.wait()
    started = time.monotonic()
    with transaction.atomic():
        Project.objects.create(name="waiter")
    waited = time.monotonic() - started
    holder.join()
    return {"waited_s": waited, "names": sorted(Project.objects.values_list("name", flat=True)),
            "backend": type(connections["default"]).__module__,
            "busy_timeout_ms": connection.cursor().execute("PRAGMA busy_timeout").fetchone()[0]}


def give_up() -> dict:
    """A writer waits at most the configured timeout, then fails with a database error."""
    connection.settings_dict["OPTIONS"]["timeout"] = 0.3
    connection.close()  # reconnect with the short timeout
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(2.0, held))
    holder.start()
    held.wait()
    started = time.monotonic()
    error = None
    try:
        with transaction.atomic():
            Project.objects.create(name="too late")
    except OperationalError as exc:
        error = str(exc)
    waited = time.monotonic() - started
    busy = connection.cursor().execute("PRAGMA busy_timeout").fetchone()[0]
    holder.join()
    return {"error": error, "waited_s": waited, "busy_timeout_ms": busy,
            "names": sorted(Project.objects.values_list("name", flat=True))}


def replaced() -> dict:
    """Between two requests the database file is replaced by a backup (and its WAL files
    removed, as a restore does): the next request reads and writes the file now at the
    path, not the one its kept connection opened."""
    import sqlite3

    from django.core.signals import request_finished, request_started

    path = Path(connection.settings_dict["NAME"])
    Project.objects.create(name="in the backup")
    backup = path.with_name("backup.sqlite3")
    with sqlite3.connect(backup) as copy:
        connection.connection.backup(copy)
    copy.close()
    Project.objects.create(name="after the backup")
    request_finished.send(sender=None)  # the request ends; its connection is kept (CONN_MAX_AGE)
    kept = connection.connection is not None
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(backup, path)
    request_started.send(sender=None)  # the next request
    seen = sorted(Project.objects.values_list("name", flat=True))
    Project.objects.create(name="written after the restore")
    on_disk = sqlite3.connect(path)
    stored = sorted(name for (name,) in on_disk.execute(f"SELECT name FROM {Project._meta.db_table}"))
    on_disk.close()
    return {"kept_between_requests": kept, "seen": seen, "stored": stored}


if __name__ == "__main__":
    call_command("migrate", verbosity=0)
    print(json.dumps({"drain": drain, "wait": wait, "give_up": give_up, "replaced": replaced}[sys.argv[1]]()))
