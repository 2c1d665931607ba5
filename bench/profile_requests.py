"""Where the time goes: pair import, and the annotator's fetch-next and vote requests.

    nice -n 19 .venv/bin/python bench/profile_requests.py                      # SQLite (a fresh temp data dir)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rlhf_bench nice -n 19 .venv/bin/python bench/profile_requests.py
    ... bench/profile_requests.py --pairs 100000 --requests 50 --show-queries

Creates the tables if needed (migrate) and fresh projects. Import: `comparisons_import`
(validation, then COPY on PostgreSQL or executemany on SQLite, ANALYZE) against the baseline,
same run, same rows: the ORM bulk_create path every database used before (validation
included in both); then the same import through `POST .../comparisons/import/` (JSON
parsing and the in-process HTTP stack added). Requests: an annotator loops over
GET /annotate/ → POST the vote, and GET .../comparisons/next/ → POST .../votes/ (token
auth), in-process (django.test.Client, no network); per request: SQL queries, their
time (as the driver reports it: round trip included), template rendering, JSON
rendering, and the rest (middleware, sessions, auth, view and service code).
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # the in-process test client
if not os.environ.get("DATABASE_URL") and not os.environ.get("RLHF_DATA_DIR"):
    import tempfile

    os.environ["RLHF_DATA_DIR"] = tempfile.mkdtemp(prefix="rlhf-profile-")  # never the real SQLite file


def _rows(n: int, offset: int = 0) -> list[dict]:
    return [{"prompt": f"Question {i}: explain topic {i % 977} briefly.", "response_a": f"Answer A to {i}.\t" * 8,
             "response_b": f"Answer B to {i}.\n" * 8, "model_a": "model-x", "model_b": "model-y"}
            for i in range(offset, offset + n)]


def bench_import(pairs: int, repeats: int) -> None:
    from django.db import connection, transaction
    from django.contrib.auth import get_user_model
    from django.test import Client

    from feedback.models import Comparison, Project
    from feedback.services import projects as projects_service
    from feedback.services.projects import _pairs_bulk_create, comparison_rows_prepare, comparisons_import

    def baseline(project, rows):
        """The import as it was (session 4): three bulk_creates per 2,000 pairs, then ANALYZE of three tables."""
        prepared = comparison_rows_prepare(rows)
        with transaction.atomic():
            _pairs_bulk_create(project, prepared, "import")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE feedback_prompt, feedback_sample, feedback_comparison")

    def service(project, rows):
        comparisons_import(project=project, rows=rows)

    def service_with_triggers(project, rows):
        """PostgreSQL: the same COPYs with the foreign-key triggers on (as for a database
        role that may not turn them off; session 12's import)."""
        real = projects_service._foreign_key_triggers_off
        projects_service._foreign_key_triggers_off = lambda cursor: None
        try:
            comparisons_import(project=project, rows=rows)
        finally:
            projects_service._foreign_key_triggers_off = real

    paths = [("baseline (ORM bulk_create)", baseline), ("comparisons_import", service)]
    if connection.vendor == "postgresql":
        paths.insert(1, ("same, FK triggers on", service_with_triggers))
    results = {name: [] for name, _ in paths}
    cpu = {name: [] for name in results}
    for r in range(repeats):  # interleaved, so a burst of load elsewhere hits all
        for name, run in paths:
            project = Project.objects.create(name=f"profile-import-{time.time()}")
            rows = _rows(pairs)
            server_before, client_before = _server_cpu(), time.process_time()
            started = time.perf_counter()
            run(project, rows)
            seconds = time.perf_counter() - started
            cpu[name].append((time.process_time() - client_before, _server_cpu() - server_before))
            assert Comparison.objects.filter(project=project).count() == pairs
            results[name].append(seconds)
    base = statistics.median(results["baseline (ORM bulk_create)"])
    print(f"import of {pairs:,} pairs on {connection.vendor}, service call (validation included, no JSON parsing), "
          f"median of {repeats}; CPU seconds of this process + the database server's process for it:")
    for name, times in results.items():
        s = statistics.median(times)
        client = statistics.median(c for c, _ in cpu[name])
        server = statistics.median(v for _, v in cpu[name])
        print(f"  {name:28s} {s:6.2f} s  {pairs / s:9,.0f} pairs/s  {base / s:5.1f}x the baseline   "
              f"CPU {client:5.2f} + {server:5.2f} s = {pairs / (client + server):7,.0f} pairs per CPU second")

    admin, _ = get_user_model().objects.get_or_create(username="profile-admin", defaults={"is_staff": True})
    client = Client()
    client.force_login(admin)
    times = []
    for body in [json.dumps(_rows(10))] + [json.dumps(_rows(pairs))] * repeats:  # the first warms the stack up
        project = Project.objects.create(name=f"profile-import-api-{time.time()}")
        started = time.perf_counter()
        response = client.post(f"/api/v1/projects/{project.pk}/comparisons/import/", body,
                               content_type="application/json")
        times.append(time.perf_counter() - started)
        assert response.status_code == 201, response.content[:300]
    seconds = statistics.median(times[1:])
    print(f"  {'same, through the API':28s} {seconds:6.2f} s  {pairs / seconds:9,.0f} pairs/s  "
          f"(a {len(body) / 1e6:.1f} MB JSON body: parsing and the HTTP stack included; median of {repeats})")


def _server_cpu() -> float:
    """CPU seconds the PostgreSQL backend serving this connection has used (it runs on
    this machine: /proc), so a loaded machine's waiting does not count; 0 on SQLite,
    whose work is done in this process."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Timers:
    """Wraps the template and JSON renderers to add up their time per request."""

    def __init__(self):
        from django.template.backends.django import Template
        from rest_framework.renderers import JSONRenderer

        self.template = self.json = 0.0
        self._wrap(Template, "render", "template")
        self._wrap(JSONRenderer, "render", "json")

    def _wrap(self, cls, name, slot):
        original = getattr(cls, name)
        timers = self

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                setattr(timers, slot, getattr(timers, slot) + time.perf_counter() - started)

        setattr(cls, name, timed)

    def reset(self):
        self.template = self.json = 0.0


def _measure(timers, label, send, table, queries_out):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timers.reset()
    sql_seconds = [0.0]

    def timed(execute, sql, params, many, context):  # Django records query times in ms, too coarse for SQLite
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds[0] += time.perf_counter() - started

    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timed):
        started = time.perf_counter()
        response = send()
        total = time.perf_counter() - started
    table.setdefault(label, []).append((len(captured), total, sql_seconds[0], timers.template, timers.json))
    queries_out[label] = [q["sql"] for q in captured.captured_queries]
    return response


def bench_requests(n: int, show_queries: bool) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from feedback.models import Assignment, Project
    from feedback.services.projects import comparisons_import, membership_add

    timers = Timers()
    table, queries = {}, {}
    project = Project.objects.create(name=f"profile-requests-{time.time()}")
    comparisons_import(project=project, rows=_rows(2 * n + 10))
    User = get_user_model()
    page_user = User.objects.create_user(username=f"profile-page-{time.time()}", password="x")
    api_user = User.objects.create_user(username=f"profile-api-{time.time()}", password="x")
    for user in (page_user, api_user):
        membership_add(project=project, user=user)

    page = Client()
    page.force_login(page_user)
    for i in range(n):
        response = _measure(timers, "page: GET /annotate/", lambda: page.get(f"/annotate/?project={project.pk}"),
                            table, queries)
        assert response.status_code == 200
        assignment = Assignment.objects.filter(annotator=page_user, status="reserved").latest("id")
        response = _measure(timers, "page: POST /annotate/{id}/vote/", lambda: page.post(
            f"/annotate/{assignment.pk}/vote/", {"side": "left", "strength": "2", "idempotency_key": f"p{i}",
                                                 "time_spent_ms": "1200"}), table, queries)
        assert response.status_code == 302

    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=api_user)[0].key}")
    for i in range(n):
        response = _measure(timers, "API: GET comparisons/next/",
                            lambda: api.get(f"/api/v1/projects/{project.pk}/comparisons/next/"), table, queries)
        assert response.status_code == 200, response.content[:200]
        item = response.json()
        a, b = item["responses"]
        vote = {"choice": "a", "a": a["id"], "b": b["id"], "strength": 2, "idempotency_key": f"a{i}"}
        response = _measure(timers, "API: POST comparisons/{id}/votes/", lambda: api.post(
            f"/api/v1/comparisons/{item['comparison_id']}/votes/", json.dumps(vote),
            content_type="application/json"), table, queries)
        assert response.status_code == 201, response.content[:200]

    print(f"\nrequests on {connection.vendor}, in-process, median of {n} (first of each skipped as warm-up); ms:")
    print(f"  {'request':36s} {'queries':>7s} {'total':>7s} {'SQL':>7s} {'template':>8s} {'JSON':>6s} {'rest':>6s}")
    for label, samples in table.items():
        samples = samples[1:] or samples
        med = [statistics.median(s[k] for s in samples) for k in range(5)]
        count = max(s[0] for s in samples)
        print(f"  {label:36s} {count:7d} {med[1] * 1e3:7.1f} {med[2] * 1e3:7.1f} {med[3] * 1e3:8.1f} "
              f"{med[4] * 1e3:6.1f} {(med[1] - med[2] - med[3] - med[4]) * 1e3:6.1f}")
    if show_queries:
        for label, sqls in queries.items():
            print(f"\n{label}:")
            for sql in sqls:
                print("   ", sql[:220])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="import runs of each path")
    parser.add_argument("--requests", type=int, default=30, help="fetch + vote loops, page and API each (0: none)")
    parser.add_argument("--show-queries", action="store_true", help="print the SQL of the last request of each kind")
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not args.skip_import:
        bench_import(args.pairs, args.repeats)
    if args.requests:
        bench_requests(args.requests, args.show_queries)


if __name__ == "__main__":
    main()
