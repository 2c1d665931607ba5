"""A real Celery worker process SIGKILLed in the middle of a round, then restarted.

Needs PostgreSQL and Redis (the worker is another process: it must reach the test
database and the broker), as .ci/run provides; skipped on SQLite / in-process broker.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from feedback.models import Checkpoint, TrainingRound
from feedback.services.rounds import round_launch
from tests.feedback.test_api import _vote_everything
from tests.helpers import make_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def _needs_services():
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("needs DATABASE_URL (PostgreSQL) and REDIS_URL: the worker runs in another process")


def _start_worker(data_dir: Path, log: Path) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "RLHF_DATA_DIR": str(data_dir),
        "RLHF_HEARTBEAT_INTERVAL_S": "1",
        "DB_POOL_SIZE": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rlhf_site", "worker", "--pool=solo", "--concurrency=1",
         "--without-mingle", "--without-gossip", "--loglevel=INFO", "-Q", os.environ["CELERY_QUEUE"]],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def _wait(pk: int, predicate, timeout: float, what: str) -> TrainingRound:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = TrainingRound.objects.get(pk=pk)
        if predicate(r):
            return r
        time.sleep(0.2)
    raise AssertionError(f"round {pk} never {what}; it is {r.status}: {r.error}")


def test_sigkilled_worker_leaves_no_stuck_round_and_a_restarted_one_unblocks_the_project(
        tiny_models, alice, tmp_path):
    _needs_services()
    project = make_project(tiny_models, first_batch=6)
    _vote_everything(project, [(alice, ["a", "b", "a", "b", "a", "b"])])
    parent = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    log = tmp_path / "worker.log"
    worker = _start_worker(settings.DATA_DIR, log)
    try:
        long_round = round_launch(project=project, config={
            "min_pairs": 4, "reward": {"epochs": 1, "min_steps": 1},
            "ppo": {"steps": 500, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1},
        })
        _wait(long_round.pk, lambda r: r.status == "ppo" and r.progress_step >= 1, 120, "reached PPO")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

        restarted_at = time.monotonic()
        worker = _start_worker(settings.DATA_DIR, log)
        failed = _wait(long_round.pk, lambda r: r.status == "failed", 90, "was reaped")
        unblocked_after = time.monotonic() - restarted_at
        assert "lost during ppo" in failed.error, failed.error
        assert unblocked_after < 60, log.read_text()[-3000:]
        assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == parent.pk

        next_round = round_launch(project=project, config={
            "min_pairs": 4, "next_batch_prompts": 2, "reward": {"epochs": 1, "min_steps": 1},
            "ppo": {"steps": 1, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1},
        })
        done = _wait(next_round.pk, lambda r: r.status in TrainingRound.FINAL_STATUSES, 180, "finished")
        assert done.status == "done", (done.error, log.read_text()[-3000:])
        assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == done.policy_checkpoint_id
    finally:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.wait()
