"""Faults on purpose: SIGKILL the worker during rounds and a batch job, stop Redis during voting and a launch.

    .venv/bin/python bench/faults.py                      # default models, 10 kills (about 20-30 min)
    .venv/bin/python bench/faults.py --models tiny --kills 3   # a quick rehearsal (about 2 min)

Everything runs on this machine and is its own: a Redis on a free port (no persistence, so
a restart loses what was queued, as a real blip without AOF does), a PostgreSQL database
(`--database`, dropped and created), a data dir, a gunicorn web server and a Celery worker
with its beat (`worker -B`, as scripts/demo starts it). The driver works through the REST
API as a script would, and reads the database to check the outcome.

1. One round runs to the end: its duration T sets the window for the kills.
2. `--kills` times: launch a round, SIGKILL the worker (its whole process group) at a
   random moment in [0, T], restart it; measure how long until the round is ended and
   until the project accepts a new round.
3. A batch job is killed while it samples; after the restart it must run again, once.
4. An annotator votes through the API without pause while Redis is stopped for
   `--redis-outage` seconds; during the outage a round launch must answer 503 and leave
   nothing behind; after it, a launch must be accepted and the round finish.
5. The end state: runs not final (stuck), checkpoints registered vs folders on disk with
   their sha256 verified, votes acknowledged vs stored.

Prints a table and writes `--report` (JSON).
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY_WORDS = ("the a an cat dog sat on mat hello world good bad great yes no please thanks why how what is are "
              "you i we it sky blue green red tell me about say something nice short long answer question").split()
ROUND_CONFIG = {
    "default": {"min_pairs": 4, "next_batch_prompts": 4, "reward": {"epochs": 1, "min_steps": 4},
                "ppo": {"steps": 3, "batch_size": 8, "mini_batch_size": 4, "max_new_tokens": 24},
                "guards": {"prompts": 2, "max_new_tokens": 16}, "generation": {"max_new_tokens": 24}},
    "tiny": {"min_pairs": 4, "next_batch_prompts": 4, "reward": {"epochs": 1, "min_steps": 4},
             "ppo": {"steps": 20, "batch_size": 4, "mini_batch_size": 2, "max_new_tokens": 8},
             "guards": {"prompts": 2, "max_new_tokens": 8, "enforce": False}},
}
RUNNING = ("snapshot", "reward", "ppo", "generating")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """Token-authenticated JSON calls; returns (status, body)."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None, timeout: float = 30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")[:300]
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            return 0, str(e)


class Services:
    """The processes of the deployment under test, each restartable."""

    def __init__(self, env: dict, workdir: Path, redis_port: int, web_port: int):
        self.env, self.workdir, self.redis_port, self.web_port = env, workdir, redis_port, web_port
        self.redis = self.web = self.worker = None

    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis did not start")

    def stop_redis(self):
        self.redis.kill()
        self.redis.wait()

    def start_web(self):
        log = (self.workdir / "web.log").open("ab")
        self.web = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "-c", "rlhf_site/gunicorn.conf.py"], cwd=ROOT,
            env={**self.env, "BIND": f"127.0.0.1:{self.web_port}", "WEB_WORKERS": "2"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self):
        log = (self.workdir / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "rlhf_site", "worker", "-B", "--pool=solo", "--concurrency=1",
             "--without-mingle", "--without-gossip", "--loglevel=INFO", "-Q", self.env["CELERY_QUEUE"]],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_worker(self):
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def stop_all(self):
        for proc in (self.worker, self.web):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        if self.redis and self.redis.poll() is None:
            self.stop_redis()


def wait_for(predicate, timeout: float, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", choices=["default", "tiny"], default="default")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--redis-outage", type=float, default=30.0)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/rlhf_faults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", default="")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="rlhf-faults-"))
    data_dir = workdir / "data"
    redis_port, web_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": args.database, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "RLHF_DATA_DIR": str(data_dir), "CELERY_QUEUE": f"faults-{uuid.uuid4().hex[:6]}",
           "RLHF_HEARTBEAT_INTERVAL_S": "5", "RLHF_HEARTBEAT_STALE_S": "30", "RLHF_REQUEUE_AFTER_S": "20",
           "DJANGO_SETTINGS_MODULE": "rlhf_site.settings", "DB_POOL_SIZE": "0", "SECRET_KEY": "faults-bench-" + uuid.uuid4().hex, "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    services = Services(env, workdir, redis_port, web_port)
    print(f"work dir {workdir}; redis :{redis_port}; web :{web_port}", flush=True)
    try:
        report = run(args, rng, services, data_dir)
    finally:
        services.stop_all()
    print(json.dumps(report["summary"], indent=2))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


def _create_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _models(kind: str, data_dir: Path) -> dict:
    if kind == "tiny":
        from training.tiny import build_tiny_policy, build_tiny_reward

        return {"policy_base_model": str(build_tiny_policy(data_dir / "tiny-policy", TINY_WORDS)),
                "reward_base_model": str(build_tiny_reward(data_dir / "tiny-reward", TINY_WORDS))}
    from training.models import convert_gguf_to_safetensors, smollm2_gguf_path

    cached = ROOT / "data" / "bench-models" / "smollm2-135m-instruct"
    if not (cached / "config.json").exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        print("converting SmolLM2 once (cached under data/bench-models/)", flush=True)
        convert_gguf_to_safetensors(smollm2_gguf_path(), cached)
    return {"policy_base_model": str(cached), "reward_base_model": ""}


def run(args, rng, services: Services, data_dir: Path) -> dict:
    _create_database(args.database)
    services.start_redis()
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from django.contrib.auth import get_user_model

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    User = get_user_model()
    admin = User.objects.create_user("faults-admin", password=uuid.uuid4().hex, is_staff=True, is_superuser=True)
    annotator = User.objects.create_user("faults-annotator", password=uuid.uuid4().hex)
    base = f"http://127.0.0.1:{services.web_port}"
    staff = Api(base, Token.objects.create(user=admin).key)
    voter = Api(base, Token.objects.create(user=annotator).key)
    services.start_web()
    services.start_worker()
    if not wait_for(lambda: staff.call("GET", "/api/v1/projects/")[0] == 200, 60):
        raise RuntimeError("web server did not answer")

    from feedback.demo_prompts import demo_prompt_rows
    from feedback.models import Checkpoint, Job, TrainingRound, Vote
    from training.checkpoints import directory_sha256

    models = _models(args.models, data_dir)
    status, project = staff.call("POST", "/api/v1/projects/", {
        "name": "Faults", **models, "generation_settings": {"max_new_tokens": 24 if args.models == "default" else 8}})
    assert status == 201, project
    pid = project["id"]
    prompts = demo_prompt_rows()[::4]  # 40 of the demo's 160, every category
    status, body = staff.call("POST", f"/api/v1/projects/{pid}/prompts/import/", prompts)
    assert status == 201, body
    assert staff.call("POST", f"/api/v1/projects/{pid}/members/", {"user": annotator.pk})[0] in (200, 201)
    config = ROUND_CONFIG[args.models]

    def job_final(job_id):
        job = Job.objects.get(pk=job_id)
        return job if job.status in Job.FINAL_STATUSES else None

    def round_final(round_id):
        r = TrainingRound.objects.get(pk=round_id)
        return r if r.status in TrainingRound.FINAL_STATUSES else None

    acked: dict[int, str] = {}  # vote id → idempotency key, for every vote the API acknowledged

    def vote_once(timeout=30) -> int:
        status, nxt = voter.call("GET", f"/api/v1/projects/{pid}/comparisons/next/", timeout=timeout)
        if status != 200:
            return status
        key = uuid.uuid4().hex
        a, b = nxt["responses"]
        status, body = voter.call("POST", f"/api/v1/comparisons/{nxt['comparison_id']}/votes/", {
            "choice": rng.choice(["a", "b"]), "a": a["id"], "b": b["id"], "idempotency_key": key}, timeout=timeout)
        if status in (200, 201) and isinstance(body, dict) and "id" in body:
            acked[body["id"]] = key
        return status

    # A first batch to vote on.
    status, job = staff.call("POST", f"/api/v1/projects/{pid}/batches/", {"prompts": 16, "samples_per_prompt": 4})
    assert status == 202, job
    first = wait_for(lambda: job_final(job["id"]), 900)
    assert first and first.status == "done", first and first.error
    for _ in range(24):
        vote_once()

    def launch():
        return staff.call("POST", f"/api/v1/projects/{pid}/rounds/", {"config": config})

    # 1. The baseline round.
    t0 = time.monotonic()
    status, r = launch()
    assert status == 201, r
    baseline = wait_for(lambda: round_final(r["id"]), 1800)
    round_seconds = time.monotonic() - t0
    print(f"baseline round: {baseline.status} in {round_seconds:.0f} s", flush=True)

    # 2. Kills during rounds.
    kills = []
    restarted_at = None
    for i in range(args.kills + 1):
        start = time.monotonic()
        accepted = wait_for(lambda: (lambda res: res if res[0] == 201 else None)(launch()), 120, step=1)
        if accepted is None:
            kills.append({"kill": i, "error": "no new round accepted within 120 s"})
            break
        if restarted_at is not None:
            kills[-1]["accepts_new_round_after_restart_s"] = round(time.monotonic() - restarted_at, 1)
        round_id = accepted[1]["id"]
        if i == args.kills:  # the last one runs to the end: the project works after all that
            final = wait_for(lambda: round_final(round_id), 1800)
            kills.append({"kill": None, "final_round": final.status, "seconds": round(time.monotonic() - start, 1)})
            break
        wait_for(lambda: TrainingRound.objects.get(pk=round_id).status in RUNNING, 120)
        delay = rng.uniform(0, round_seconds)
        if wait_for(lambda: round_final(round_id), delay):
            kills.append({"kill": i, "finished_before_kill": True, "delay_s": round(delay, 1)})
            restarted_at = None
            continue
        stage = TrainingRound.objects.get(pk=round_id).status
        services.kill_worker()
        services.start_worker()
        restarted_at = time.monotonic()
        ended = wait_for(lambda: round_final(round_id), 300)
        kills.append({"kill": i, "stage": stage, "delay_s": round(delay, 1),
                      "ended": ended.status if ended else "STUCK",
                      "ended_after_restart_s": round(time.monotonic() - restarted_at, 1) if ended else None,
                      "reason": ended.error if ended else None})
        print(f"kill {i}: {kills[-1]}", flush=True)

    # 3. Kill during a batch job.
    from feedback.models import Comparison

    before = Comparison.objects.filter(project_id=pid).count()
    status, job = staff.call("POST", f"/api/v1/projects/{pid}/batches/", {"prompts": 8, "samples_per_prompt": 4})
    wait_for(lambda: Job.objects.get(pk=job["id"]).status == "running", 120)
    time.sleep(rng.uniform(0.5, 3))
    services.kill_worker()
    services.start_worker()
    batch = wait_for(lambda: job_final(job["id"]), 900)
    batch_result = {"status": batch.status if batch else "STUCK", "attempts": batch.attempts if batch else None,
                    "comparisons_added": Comparison.objects.filter(project_id=pid).count() - before,
                    "comparisons_expected": 8 * 6}
    print(f"batch kill: {batch_result}", flush=True)

    # 4. Redis stopped while an annotator votes and an admin launches.
    stop_voting = threading.Event()
    outcomes: dict[int, int] = {}

    def keep_voting():
        from django.db import connection

        while not stop_voting.is_set():
            code = vote_once(timeout=10)
            outcomes[code] = outcomes.get(code, 0) + 1
            if code == 204:  # nothing left to vote on
                time.sleep(0.5)
        connection.close()

    voting = threading.Thread(target=keep_voting)
    voting.start()
    time.sleep(3)
    services.stop_redis()
    time.sleep(2)
    rounds_before = TrainingRound.objects.filter(project_id=pid).count()
    during_status, during_body = launch()
    rounds_after = TrainingRound.objects.filter(project_id=pid).count()
    time.sleep(max(0.0, args.redis_outage - 2))
    services.start_redis()
    back = time.monotonic()
    accepted = wait_for(lambda: (lambda res: res if res[0] == 201 else None)(launch()), 120, step=1)
    accepted_after = time.monotonic() - back
    time.sleep(3)
    stop_voting.set()
    voting.join()
    after_round = wait_for(lambda: round_final(accepted[1]["id"]), 1800) if accepted else None
    redis_result = {"launch_during_outage": during_status, "launch_detail": during_body,
                    "round_rows_left_by_refused_launch": rounds_after - rounds_before,
                    "launch_accepted_after_redis_back_s": round(accepted_after, 1) if accepted else None,
                    "round_after_outage": after_round.status if after_round else "STUCK",
                    "vote_responses": outcomes}
    print(f"redis outage: {redis_result}", flush=True)

    # 5. The end state.
    time.sleep(2)
    stuck = [f"round {r.pk} {r.status}" for r in TrainingRound.objects.exclude(status__in=TrainingRound.FINAL_STATUSES)]
    stuck += [f"job {j.pk} {j.status}" for j in Job.objects.exclude(status__in=Job.FINAL_STATUSES)]
    registered = list(Checkpoint.objects.filter(project_id=pid).exclude(path=models["policy_base_model"]))
    bad_hash = [c.pk for c in registered if not Path(c.path).is_dir() or directory_sha256(c.path) != c.sha256]
    folder = data_dir / "checkpoints" / f"project-{pid}"
    on_disk = {str(p) for p in folder.iterdir()} if folder.is_dir() else set()
    half = sorted(p for p in on_disk if Path(p).name.startswith(".tmp-"))
    unregistered = sorted(on_disk - {c.path for c in registered} - set(half))
    stored = set(Vote.objects.filter(annotator=annotator).values_list("id", flat=True))
    killed = [k for k in kills if k.get("stage")]
    summary = {
        "machine": f"{os.cpu_count()} cores; models: {args.models}",
        "baseline_round_s": round(round_seconds, 1),
        "worker_kills_during_rounds": len(killed),
        "rounds_ended_after_kill": sum(k["ended"] in ("failed", "cancelled") for k in killed),
        "stuck_runs": stuck,
        "max_s_until_round_ended_after_restart": max((k["ended_after_restart_s"] or 0 for k in killed), default=None),
        "max_s_until_new_round_accepted_after_restart": max(
            (k.get("accepts_new_round_after_restart_s", 0) for k in killed), default=None),
        "final_round_after_kills": next((k["final_round"] for k in kills if "final_round" in k), None),
        "batch_job_after_kill": batch_result,
        "redis_outage": redis_result,
        "checkpoints_registered": len(registered),
        "checkpoints_bad_or_missing": bad_hash,
        "folders_half_written": half,
        "folders_unregistered": unregistered,
        "votes_acknowledged": len(acked),
        "votes_stored": len(stored),
        "acknowledged_votes_lost": sorted(set(acked) - stored),
    }
    return {"summary": summary, "kills": kills}


if __name__ == "__main__":
    main()
