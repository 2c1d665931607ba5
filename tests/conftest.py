"""Shared fixtures: named users, tiny models, a real Celery worker.

Tests run on SQLite and an in-process broker by default, and on PostgreSQL and Redis
when DATABASE_URL / REDIS_URL point at them (as .ci/run does).
"""
import os
import tempfile
import uuid

# Before Django settings load: a throwaway data dir and a queue no other run shares.
os.environ.setdefault("RLHF_DATA_DIR", tempfile.mkdtemp(prefix="rlhf-test-"))
os.environ.setdefault("CELERY_QUEUE", f"rlhf-test-{uuid.uuid4().hex[:8]}")
# (pytest-django may load the settings before this file; then DB_POOL_SIZE keeps its default
# and PostgreSQL runs go through the same connection pool as the web process: 20.)

import pytest  # noqa: E402

from tests.helpers import TINY_WORDS  # noqa: E402


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path_factory):
    """Checkpoints, exports and converted models of a test go to a fresh folder, never ./data."""
    root = tmp_path_factory.mktemp("data")
    settings.DATA_DIR = root
    settings.CHECKPOINT_DIR = root / "checkpoints"
    return root


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    """Each test counts rate limits (API throttles, failed logins) from zero.

    A new key prefix rather than cache.clear(): with Redis that would flush the
    database the Celery broker of a running test worker lives in.
    """
    caches = {alias: dict(config) for alias, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = caches  # the setting_changed signal drops the old cache connections
    return caches["default"]["KEY_PREFIX"]


@pytest.fixture
def full_precision(monkeypatch):
    """Models compute in fp32 for this test (and the processes it starts), as on a CPU without bf16.

    For tests that compare two computations of one figure (a hand computation, one
    process against two): in bf16 each rounds differently with the shapes of its batches.
    """
    from training import device

    saved = dict(device._requested)
    monkeypatch.setenv("RLHF_DTYPE", "fp32")
    device.configure(saved["device"], "fp32")
    yield
    device.configure(saved["device"], saved["dtype"])


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Paths of a tiny random policy and reward model (built once per session)."""
    from training.tiny import build_tiny_policy, build_tiny_reward

    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "policy": str(build_tiny_policy(root / "policy", TINY_WORDS)),
        "reward": str(build_tiny_reward(root / "reward", TINY_WORDS)),
    }


@pytest.fixture
def alice(django_user_model):
    """An annotator."""
    return django_user_model.objects.create_user(username="alice", password="alice-pw-123")


@pytest.fixture
def bob(django_user_model):
    """Another annotator."""
    return django_user_model.objects.create_user(username="bob", password="bob-pw-123")


@pytest.fixture
def admin_user(django_user_model):
    """Staff: may use the studio."""
    return django_user_model.objects.create_user(username="root", password="root-pw-123", is_staff=True, is_superuser=True)


@pytest.fixture(scope="session", autouse=True)
def celery_app():
    """Tasks go to this run's own queue (Redis when REDIS_URL is set, else in memory).

    pytest-django loads the settings before this file sets CELERY_QUEUE, so the app is
    pointed at the run's queue here, for every test: a task sent without a worker fixture
    must not land in a queue a real worker (the demo's) reads.
    """
    from django.conf import settings

    from rlhf_site.celery import app

    # The app reads Django's settings under the CELERY_ namespace, and those names win over
    # the plain ones: set them, or the change is silently ignored.
    app.conf.update(
        CELERY_BROKER_URL=os.environ.get("REDIS_URL") or "memory://",
        CELERY_BROKER_TRANSPORT_OPTIONS={},
        CELERY_TASK_DEFAULT_QUEUE=os.environ["CELERY_QUEUE"],
        # rounds and jobs are routed to their own queues (settings.CELERY_TASK_ROUTES); here all to the run's
        CELERY_TASK_ROUTES={name: {"queue": os.environ["CELERY_QUEUE"]} for name in settings.CELERY_TASK_ROUTES},
    )
    assert app.conf.task_default_queue == os.environ["CELERY_QUEUE"]
    assert app.amqp.router.route({}, "feedback.run_training_round")["queue"].name == os.environ["CELERY_QUEUE"]
    return app


@pytest.fixture
def celery_worker(celery_app):
    """A real Celery worker thread consuming this run's queue (Redis when REDIS_URL is set)."""
    from celery.contrib.testing.worker import start_worker

    app = celery_app
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=30) as worker:
        yield worker
