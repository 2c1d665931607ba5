"""20 annotators at once against 10,000 comparisons: latency of fetch-next + vote.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rlhf_bench .venv/bin/python bench/annotate_load.py

Seeds a project with --comparisons comparisons (overlap 3) and --annotators users, then
serves the app the way `scripts/demo` does (gunicorn with rlhf_site/gunicorn.conf.py,
in a child process) and lets each annotator, in its own thread with its own session,
repeat: GET /annotate/ (reserve and render the next comparison), read for --think
seconds, POST the vote (the redirect is not followed: the next GET is the next fetch). Bounded by --votes-each and
--max-seconds. Baseline, same run and concurrency: GET /accounts/login/, a page that
touches no table.
"""
import argparse
import http.cookiejar
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Annotator:
    def __init__(self, base: str, username: str, password: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())
        self.username, self.password = username, password

    def _open(self, path: str, data: dict | None = None) -> tuple[int, str]:
        body = None
        headers = {"Referer": self.base + path}
        if data is not None:
            token = next(c.value for c in self.jar if c.name == "csrftoken")
            body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=body, headers=headers), timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:  # 302 after a POST lands here (redirects are not followed)
            return e.code, ""

    def login(self) -> None:
        self._open("/accounts/login/")
        status, _ = self._open("/accounts/login/", {"username": self.username, "password": self.password})
        assert status == 302, f"login failed for {self.username}: {status}"

    def timed(self, path: str, data: dict | None = None) -> tuple[float, int, str]:
        t0 = time.perf_counter()
        status, text = self._open(path, data)
        return (time.perf_counter() - t0) * 1000, status, text


def seed(n_comparisons: int, n_annotators: int, overlap: int) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from feedback.models import Checkpoint, Comparison, Project, Prompt, Sample

    call_command("migrate", verbosity=0)
    project = Project.objects.create(name=f"load-{int(time.time())}", votes_per_comparison=overlap,
                                     guidelines="Pick the **better** answer.")
    checkpoint = Checkpoint.objects.create(project=project, kind="policy", path="/bench", name="r0", sha256="0",
                                           is_active=True)
    prompts = Prompt.objects.bulk_create([
        Prompt(project=project, messages=[{"role": "user", "content": f"Question {i}: how do I fix error E{i % 50}?"}])
        for i in range(n_comparisons)
    ], batch_size=2000)
    text = "Here is what to try:\n\n1. Restart the device.\n2. Check the cable.\n\n```\nreset --all\n```\n" * 3
    samples = Sample.objects.bulk_create(
        [Sample(prompt=p, checkpoint=checkpoint, text=f"{side.upper()}: {text}") for p in prompts for side in "ab"],
        batch_size=4000)
    Comparison.objects.bulk_create([
        Comparison(project=project, prompt=p, sample_a=samples[2 * i], sample_b=samples[2 * i + 1], votes_needed=overlap)
        for i, p in enumerate(prompts)
    ], batch_size=2000)
    from feedback.services.projects import refresh_planner_statistics

    refresh_planner_statistics()
    User = get_user_model()
    for i in range(n_annotators):
        user, _ = User.objects.get_or_create(username=f"load-annotator-{i}")
        user.set_password("load-pass-123")
        user.save()
    return project.pk


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comparisons", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--votes-each", type=int, default=40)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--think", default="2:6", help="seconds an annotator reads before voting, uniform MIN:MAX; 0 for a stress run")
    args = parser.parse_args()

    project_id = seed(args.comparisons, args.annotators, args.overlap)
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1,localhost", "DEBUG": "0"}
    env.update(PORT=str(args.port), ACCESS_LOG="")
    server = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "rlhf_site/gunicorn.conf.py"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w"))
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/accounts/login/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        annotators = [Annotator(base, f"load-annotator-{i}", "load-pass-123") for i in range(args.annotators)]
        for a in annotators:
            a.login()
        fetch, vote, pair, baseline, errors = [], [], [], [], []
        deadline = time.monotonic() + args.max_seconds
        barrier = threading.Barrier(len(annotators))

        think_min, think_max = (float(x) for x in (args.think.split(":") if ":" in args.think else (args.think,) * 2))

        def work(a: Annotator, i: int) -> None:
            rng = random.Random(i)
            barrier.wait()
            time.sleep(rng.uniform(0, think_max))  # annotators do not all start in the same millisecond
            for n in range(args.votes_each):
                if time.monotonic() > deadline:
                    return
                if n % 5 == 0:
                    baseline.append(a.timed("/accounts/login/")[0])
                ms_fetch, status, page = a.timed(f"/annotate/?project={project_id}")
                m = re.search(r'action="(/annotate/\d+/vote/)"', page)
                if status != 200 or not m:
                    errors.append(f"fetch {status}")
                    return
                time.sleep(rng.uniform(think_min, think_max))
                ms_vote, status, _ = a.timed(m.group(1), {"side": "left" if (n + i) % 2 else "right", "strength": "2"})
                if status != 302:
                    errors.append(f"vote {status}")
                fetch.append(ms_fetch)
                vote.append(ms_vote)
                pair.append(ms_fetch + ms_vote)

        threads = [threading.Thread(target=work, args=(a, i)) for i, a in enumerate(annotators)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=10)

    import django
    from django.db import connection

    from feedback.models import Vote

    stored = Vote.objects.filter(comparison__project_id=project_id).count()
    print(f"{connection.vendor}: {args.annotators} annotators (think {args.think} s), {args.comparisons:,} comparisons (overlap {args.overlap}), "
          f"{len(pair)} fetch+vote pairs in {wall:.1f} s ({len(pair) / wall:.1f} votes/s); stored votes {stored}; "
          f"errors {len(errors)} {errors[:3]}")
    for name, values in (("baseline GET /accounts/login/", baseline), ("fetch-next GET /annotate/", fetch),
                         ("vote POST", vote), ("fetch-next + vote", pair)):
        print(f"  {name:32} p50 {statistics.median(values):6.1f} ms   p95 {pct(values, 0.95):6.1f} ms   "
              f"p99 {pct(values, 0.99):6.1f} ms   (n={len(values)})")
    print(f"  p95 fetch+vote / p95 baseline = {pct(pair, 0.95) / pct(baseline, 0.95):.1f}x")
    assert django


if __name__ == "__main__":
    main()
