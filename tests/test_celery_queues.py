"""Rounds and jobs go to the queues the environment names, through Celery's own task_routes."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROUTE = """
import json, django
django.setup()
from rlhf_site.celery import app
route = lambda name: app.amqp.router.route({}, name)["queue"].name
print(json.dumps({"round": route("feedback.run_training_round"), "job": route("feedback.run_job"),
                  "reaper": route("feedback.reap_runs")}))
"""


def _queues(tmp_path, **env_overrides) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CELERY_QUEUE", "CELERY_GENERATION_QUEUE", "CELERY_TRAINING_QUEUE", "DATABASE_URL", "REDIS_URL")}
    env.update({"RLHF_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "rlhf_site.settings", **env_overrides})
    out = subprocess.run([sys.executable, "-c", ROUTE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_queue_by_default_and_when_only_celery_queue_is_set(tmp_path):
    assert _queues(tmp_path) == {"round": "rlhf", "job": "rlhf", "reaper": "rlhf"}
    assert _queues(tmp_path, CELERY_QUEUE="lab") == {"round": "lab", "job": "lab", "reaper": "lab"}


def test_rounds_and_generation_jobs_go_to_their_own_queues(tmp_path):
    queues = _queues(tmp_path, CELERY_QUEUE="rlhf", CELERY_GENERATION_QUEUE="rlhf-generation",
                     CELERY_TRAINING_QUEUE="rlhf-training")
    assert queues == {"round": "rlhf-training", "job": "rlhf-generation", "reaper": "rlhf"}
