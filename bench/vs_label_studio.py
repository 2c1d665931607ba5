"""RLHF Studio's default install against Label Studio's, side by side, on the same pairs.

    .venv/bin/python bench/vs_label_studio.py                          # RLHF Studio only
    python3.11 -m venv /tmp/ls && /tmp/ls/bin/pip install label-studio==1.23.2
    .venv/bin/python bench/vs_label_studio.py --label-studio /tmp/ls/bin/label-studio

Each app runs as its default install serves it, in a fresh temporary data directory:
RLHF Studio as `scripts/demo` does (SQLite, gunicorn with rlhf_site/gunicorn.conf.py, no
DATABASE_URL or REDIS_URL), Label Studio with `label-studio start` (SQLite, its own server).
Users are made by each app's own commands (our `createsuperuser` and a shell line; Label
Studio's `label-studio init --username ... --user-token ...`); everything measured goes
through the REST APIs with token auth, from the same client code:

1. import --pairs pairs (a prompt and two answers each) in one request;
2. --clients annotators, each its own user and thread, loop fetch-next -> vote until each
   has cast --votes-each votes (Label Studio: GET /api/projects/{id}/next, POST
   /api/tasks/{id}/annotations/ with a Pairwise result; ours: GET
   .../comparisons/next/, POST /api/v1/comparisons/{id}/votes/);
3. export the votes (Label Studio: GET /api/projects/{id}/export?exportType=JSON; ours:
   GET .../export/?format=trl&aggregation=all).

--repeats runs the whole sequence that many times per app, alternating the apps, each
time from a fresh data directory. --baseline-root serves a second checkout the same way
(before/after a change, in the same run). Besides latency, each run reads the CPU time the
server's processes spent per fetch + vote (from /proc). The machine should be otherwise idle.
"""
import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)

PAIRWISE_CONFIG = """<View>
  <Header value="$prompt"/>
  <Text name="answer1" value="$answer1"/>
  <Text name="answer2" value="$answer2"/>
  <Pairwise name="pw" toName="answer1,answer2"/>
</View>"""


def make_pairs(n: int) -> list[dict]:
    return [{"prompt": f"Question {i}: how do I fix error E{i % 50} on device {i % 977}?",
             "a": f"Restart device {i % 977}, then check the cable. " * 4,
             "b": f"Update the firmware of device {i % 977} and reset it. " * 4} for i in range(n)]


class Client:
    """One HTTP user: token auth, JSON bodies, a new connection per request (urllib)."""

    def __init__(self, base: str, header: str):
        self.base, self.header = base, header

    def call(self, method: str, path: str, body=None) -> tuple[int, bytes, float]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Authorization": self.header, "Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        return status, payload, (time.perf_counter() - started) * 1000

    def ok(self, method: str, path: str, body=None, expect=(200, 201)) -> tuple[bytes, float]:
        status, payload, ms = self.call(method, path, body)
        if status not in expect:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {payload[:300]!r}")
        return payload, ms

    def next_item(self, path: str, key: str):
        """GET the next item to rate; (its id, milliseconds)."""
        payload, ms = self.ok("GET", path, expect=(200,))
        return json.loads(payload)[key], ms


def wait_up(url: str, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}) before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"no answer from {url} in {seconds:.0f} s")


class Ours:
    def __init__(self, workdir: Path, port: int, clients: int, root: Path = ROOT, name: str = "RLHF Studio"):
        self.name = name
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
        self.env.update(RLHF_DATA_DIR=str(workdir), PORT=str(port), ACCESS_LOG="", DJANGO_SUPERUSER_PASSWORD="bench-pass-123",
                        DJANGO_SETTINGS_MODULE="rlhf_site.settings")
        self.base = f"http://127.0.0.1:{port}"
        manage = [str(PYTHON), "manage.py"]
        run = dict(cwd=root, env=self.env, check=True, capture_output=True, text=True)
        subprocess.run(manage + ["migrate", "--no-input", "-v", "0"], **run)
        subprocess.run(manage + ["createsuperuser", "--no-input", "--username", "bench-admin", "--email", "a@bench.local"], **run)
        code = ("from django.contrib.auth import get_user_model\n"
                f"[get_user_model().objects.create_user(f'annotator-{{i}}', password='bench-pass-123') for i in range({clients})]")
        subprocess.run(manage + ["shell", "-c", code], **run)
        tokens = [subprocess.run(manage + ["api_token", user], **run).stdout.strip().splitlines()[-1]
                  for user in ["bench-admin"] + [f"annotator-{i}" for i in range(clients)]]
        self.server = subprocess.Popen([str(PYTHON.with_name("gunicorn")), "-c", "rlhf_site/gunicorn.conf.py"], cwd=root,
                                       env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_up(self.base + "/accounts/login/", self.server)
        self.admin = Client(self.base, f"Token {tokens[0]}")
        self.annotators = [Client(self.base, f"Token {t}") for t in tokens[1:]]
        payload, _ = self.admin.ok("POST", "/api/v1/projects/", {"name": "Side by side"})
        self.project = json.loads(payload)["id"]
        for i in range(clients):
            self.admin.ok("POST", f"/api/v1/projects/{self.project}/members/", {"username": f"annotator-{i}"})

    def import_pairs(self, pairs: list[dict]) -> int:
        rows = [{"prompt": p["prompt"], "response_a": p["a"], "response_b": p["b"]} for p in pairs]
        payload, _ = self.admin.ok("POST", f"/api/v1/projects/{self.project}/comparisons/import/", rows)
        return json.loads(payload)["imported"]

    def fetch(self, client: Client):
        return client.next_item(f"/api/v1/projects/{self.project}/comparisons/next/", "comparison_id")

    def vote(self, client: Client, item, n: int) -> float:
        return client.ok("POST", f"/api/v1/comparisons/{item}/votes/", {"choice": "ab"[n % 2], "strength": 2})[1]

    def export(self) -> int:
        payload, _ = self.admin.ok("GET", f"/api/v1/projects/{self.project}/export/?format=trl&aggregation=all")
        return payload.count(b"\n")

    def stop(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


class LabelStudio:
    name = "Label Studio"

    def __init__(self, exe: str, workdir: Path, port: int, clients: int):
        # USERNAME/PASSWORD in the environment would make `start` create a user of its own
        self.env = {k: v for k, v in os.environ.items() if k not in ("USERNAME", "PASSWORD", "DATABASE_URL")}
        self.env["LABEL_STUDIO_BASE_DATA_DIR"] = str(workdir)
        self.base = f"http://127.0.0.1:{port}"
        tokens = [secrets.token_hex(20) for _ in range(clients + 1)]
        emails = ["admin@bench.local"] + [f"annotator-{i}@bench.local" for i in range(clients)]
        for email, token in zip(emails, tokens):  # the first call makes the organisation
            subprocess.run([exe, "init", "--username", email, "--password", "bench-pass-123", "--user-token", token,
                            "--enable-legacy-api-token", "--quiet"], env=self.env, check=True, capture_output=True,
                           cwd=workdir)
        self.log = open(workdir / "server.log", "w")
        self.server = subprocess.Popen([exe, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)],
                                       env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        wait_up(self.base + "/health", self.server)
        self.admin = Client(self.base, f"Token {tokens[0]}")
        self.annotators = [Client(self.base, f"Token {t}") for t in tokens[1:]]
        payload, _ = self.admin.ok("POST", "/api/projects/", {"title": "Side by side", "label_config": PAIRWISE_CONFIG})
        self.project = json.loads(payload)["id"]

    def import_pairs(self, pairs: list[dict]) -> int:
        tasks = [{"data": {"prompt": p["prompt"], "answer1": p["a"], "answer2": p["b"]}} for p in pairs]
        payload, _ = self.admin.ok("POST", f"/api/projects/{self.project}/import", tasks)
        return json.loads(payload)["task_count"]

    def fetch(self, client: Client):
        return client.next_item(f"/api/projects/{self.project}/next", "id")

    def vote(self, client: Client, item, n: int) -> float:
        result = [{"from_name": "pw", "to_name": "answer1", "type": "pairwise",
                   "value": {"selected": "left" if n % 2 == 0 else "right"}}]
        return client.ok("POST", f"/api/tasks/{item}/annotations/", {"result": result, "lead_time": 1.0})[1]

    def export(self) -> int:
        payload, _ = self.admin.ok("GET", f"/api/projects/{self.project}/export?exportType=JSON")
        return sum(len(task["annotations"]) for task in json.loads(payload))

    def stop(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
        self.log.close()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a live process and its live descendants, from /proc."""
    total = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_once(app, pairs: list[dict], votes_each: int) -> dict:
    started = time.perf_counter()
    imported = app.import_pairs(pairs)
    import_s = time.perf_counter() - started
    assert imported == len(pairs), f"{app.name} imported {imported} of {len(pairs)}"

    pair_ms, errors, items = [], [], []
    barrier = threading.Barrier(len(app.annotators))

    def work(client: Client) -> None:
        barrier.wait()
        for n in range(votes_each):
            try:
                item, fetch_ms = app.fetch(client)
                vote_ms = app.vote(client, item, n)
            except Exception as exc:  # noqa: BLE001 -- counted and shown, the loop goes on
                errors.append(str(exc)[:200])
                continue
            pair_ms.append(fetch_ms + vote_ms)
            items.append(item)

    threads = [threading.Thread(target=work, args=(c,)) for c in app.annotators]
    server_cpu, client_cpu = cpu_seconds(app.server.pid), time.process_time()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loop_s = time.perf_counter() - started
    server_cpu, client_cpu = cpu_seconds(app.server.pid) - server_cpu, time.process_time() - client_cpu

    started = time.perf_counter()
    exported = app.export()
    export_s = time.perf_counter() - started
    return {"import_s": import_s, "votes": len(pair_ms), "votes_per_s": len(pair_ms) / loop_s,
            "p50": statistics.median(pair_ms), "p95": pct(pair_ms, 0.95), "export_s": export_s,
            "exported": exported, "distinct_items": len(set(items)), "errors": errors,
            "server_cpu_ms": server_cpu / max(1, len(pair_ms)) * 1000, "client_cpu_ms": client_cpu / max(1, len(pair_ms)) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label-studio", help="path to a `label-studio` executable (omit: RLHF Studio only)")
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--votes-each", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--baseline-root", type=Path, help="also serve this RLHF Studio checkout (e.g. a worktree of an "
                        "earlier commit), with this checkout's virtualenv, as a before/after baseline")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    args = parser.parse_args()

    pairs = make_pairs(args.pairs)
    makers = [("ours", lambda d: Ours(d, args.port, args.clients))]
    if args.baseline_root:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.baseline_root, capture_output=True,
                                text=True).stdout.strip()
        makers.append(("before", lambda d: Ours(d, args.port + 2, args.clients, args.baseline_root.resolve(),
                                                f"RLHF Studio at {commit or args.baseline_root}")))
    if args.label_studio:
        makers.append(("ls", lambda d: LabelStudio(args.label_studio, d, args.port + 1, args.clients)))
    results: dict[str, list[dict]] = {key: [] for key, _ in makers}
    names = {}
    for repeat in range(args.repeats):
        for key, make in makers:
            workdir = Path(tempfile.mkdtemp(prefix=f"vs-{key}-"))
            app = make(workdir)
            names[key] = app.name
            try:
                result = run_once(app, pairs, args.votes_each)
            finally:
                app.stop()
                if not args.keep:
                    shutil.rmtree(workdir, ignore_errors=True)
            results[key].append(result)
            print(f"{app.name} run {repeat + 1}: import {result['import_s']:.2f} s, {result['votes']} votes "
                  f"({result['distinct_items']} distinct items) at {result['votes_per_s']:.1f}/s, fetch+vote p50 "
                  f"{result['p50']:.0f} ms p95 {result['p95']:.0f} ms, export of {result['exported']} votes "
                  f"{result['export_s'] * 1000:.0f} ms; CPU per vote: server {result['server_cpu_ms']:.1f} ms, "
                  f"client {result['client_cpu_ms']:.1f} ms; errors {len(result['errors'])} {result['errors'][:2]}",
                  flush=True)

    def span(key: str, field: str, fmt: str) -> str:
        values = [r[field] for r in results[key]]
        low, high = min(values), max(values)
        return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{format(low, fmt)}–{format(high, fmt)}"

    keys = list(results)
    print(f"\n{args.pairs:,} pairs, {args.clients} clients x {args.votes_each} votes, {args.repeats} runs each (min–max); "
          "ratios of medians, how many times better this checkout is\n")
    others = keys[1:]
    print("| | " + " | ".join(names[k] for k in keys) + "".join(f" | vs {names[k]}" for k in others) + " |")
    print("|---" * (len(keys) + 1 + len(others)) + "|")
    rows = [("import, s", "import_s", ".2f", True), ("fetch + vote, votes/s", "votes_per_s", ".1f", False),
            ("fetch + vote p50, ms", "p50", ".0f", True), ("fetch + vote p95, ms", "p95", ".0f", True),
            ("export, s", "export_s", ".3f", True), ("server CPU per fetch + vote, ms", "server_cpu_ms", ".1f", True)]
    for label, field, fmt, lower_is_better in rows:
        cells = [span(k, field, fmt) for k in keys]
        ours = statistics.median(r[field] for r in results["ours"])
        for k in others:
            theirs = statistics.median(r[field] for r in results[k])
            cells.append(f"{(theirs / ours if lower_is_better else ours / theirs):.1f}×")
        print(f"| {label} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
