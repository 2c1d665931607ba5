"""Run as a script against the default install's SQLite (the test sets RLHF_DATA_DIR and no
DATABASE_URL): `python tests/sqlite/scenarios.py drain|wait|give_up`, one JSON line out.

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

from feedback.models import Checkpoint, Comparison, Project, Prompt, Sample, Vote  # noqa: E402
from feedback.services.assignment import assignment_next  # noqa: E402
from feedback.services.votes import vote_submit  # noqa: E402


def drain(comparisons: int = 60, overlap: int = 3, annotators: int = 12) -> dict:
    """Annotators in threads, each its own connection, drain a queue at once."""
    project = Project.objects.create(name="SQLite drain", votes_per_comparison=overlap)
    checkpoint = Checkpoint.objects.create(project=project, kind="policy", path="/none", name="r0", sha256="0",
                                           is_active=True)
    prompts = Prompt.objects.bulk_create(
        [Prompt(project=project, messages=[{"role": "user", "content": f"q{i}"}]) for i in range(comparisons)])
    samples = Sample.objects.bulk_create(
        [Sample(prompt=p, checkpoint=checkpoint, text=f"{p.pk}-{side}") for p in prompts for side in "ab"])
    Comparison.objects.bulk_create([
        Comparison(project=project, prompt=p, sample_a=samples[2 * i], sample_b=samples[2 * i + 1], votes_needed=overlap)
        for i, p in enumerate(prompts)])
    users = [get_user_model().objects.create_user(username=f"annotator{i}", password="x") for i in range(annotators)]
    errors, barrier = [], threading.Barrier(annotators)

    def work(user):
        try:
            barrier.wait()
            while (a := assignment_next(annotator=user, project=project)) is not None:
                vote_submit(annotator=user, assignment_id=a.pk, choice="a")
        except Exception as exc:  # reported to the test
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
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


if __name__ == "__main__":
    call_command("migrate", verbosity=0)
    print(json.dumps({"drain": drain, "wait": wait, "give_up": give_up}[sys.argv[1]]()))
