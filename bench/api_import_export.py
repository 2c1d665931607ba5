"""Import 100,000 pairs through the API, then stream an export of 1,000,000 votes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rlhf_bench .venv/bin/python bench/api_import_export.py

Creates the database tables if needed (migrate), a fresh project, imports the pairs with
POST /api/v1/projects/{id}/comparisons/import/, adds votes by bulk insert until there are
--votes of them, then streams GET /api/v1/projects/{id}/export/ in a child process and
reports rows/s and that process's peak RSS. Baseline, same run: the same child process
reading the same votes with a bare values_list() and no formatting.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # the in-process test client


def _setup():
    import django

    django.setup()


def child(mode: str, project_id: int, fmt: str) -> None:
    """Run one export (or the baseline read) and print rows, seconds, peak RSS in MB."""
    _setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from feedback.models import Vote

    started = time.perf_counter()
    rows = 0
    if mode == "baseline":
        qs = Vote.objects.filter(comparison__project_id=project_id).order_by("comparison_id", "id").values_list(
            "id", "comparison_id", "choice", "comparison__sample_a__text", "comparison__sample_b__text")
        for _ in qs.iterator(chunk_size=2000):
            rows += 1
    else:
        client = Client()
        client.force_login(get_user_model().objects.get(username="bench-admin"))
        response = client.get(f"/api/v1/projects/{project_id}/export/?format={fmt}&aggregation=all")
        for chunk in response.streaming_content:
            rows += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
    peak_mb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--format", default="trl")
    parser.add_argument("--export-only", type=int, metavar="PROJECT_ID", help="skip import and seeding; export this project")
    args = parser.parse_args()
    _setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from feedback.models import Comparison, Project, Vote

    call_command("migrate", verbosity=0)
    if args.export_only:
        _export(args.export_only, args.format)
        return
    User = get_user_model()
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True})
    project = Project.objects.create(name=f"bench-{int(time.time())}")
    rows = [{"prompt": f"Question {i}: explain topic {i % 977} briefly.", "response_a": f"Answer A to {i}. " * 8,
             "response_b": f"Answer B to {i}. " * 8, "model_a": "model-x", "model_b": "model-y"} for i in range(args.pairs)]
    body = json.dumps(rows)
    client = Client()
    client.force_login(admin)
    started = time.perf_counter()
    response = client.post(f"/api/v1/projects/{project.pk}/comparisons/import/", body, content_type="application/json")
    import_s = time.perf_counter() - started
    assert response.status_code == 201, response.content[:500]
    print(f"import: {args.pairs} pairs ({len(body) / 1e6:.1f} MB JSON) in {import_s:.1f} s = {args.pairs / import_s:,.0f} pairs/s "
          f"on {connection.vendor}")

    per_comparison = max(1, -(-args.votes // args.pairs))
    annotators = [User.objects.get_or_create(username=f"bench-annotator-{i}")[0] for i in range(per_comparison)]
    ids = list(Comparison.objects.filter(project=project).values_list("id", "sample_a_id"))
    started = time.perf_counter()
    made = 0
    batch = []
    for cid, sample_a in ids:
        for k, user in enumerate(annotators):
            if made >= args.votes:
                break
            batch.append(Vote(comparison_id=cid, annotator=user, choice="ab"[(cid + k) % 2], left_sample_id=sample_a, strength=2))
            made += 1
        if len(batch) >= 20_000:
            Vote.objects.bulk_create(batch)
            batch = []
    Vote.objects.bulk_create(batch)
    print(f"seeded {made:,} votes in {time.perf_counter() - started:.0f} s")

    _export(project.pk, args.format)


def _export(project_id: int, fmt: str) -> None:
    results = {}
    for mode in ("baseline", "export"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, str(project_id), fmt],
                             capture_output=True, text=True, check=True, env=os.environ)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    b, e = results["baseline"], results["export"]
    print(f"baseline read: {b['rows']:,} rows in {b['seconds']:.1f} s = {b['rows'] / b['seconds']:,.0f} rows/s, "
          f"peak RSS {b['peak_rss_mb']:.0f} MB")
    print(f"export {fmt}: {e['rows']:,} rows in {e['seconds']:.1f} s = {e['rows'] / e['seconds']:,.0f} rows/s, "
          f"peak RSS {e['peak_rss_mb']:.0f} MB; {b['seconds'] / e['seconds']:.2f}x the baseline's speed")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
