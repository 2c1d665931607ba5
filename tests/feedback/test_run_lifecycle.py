"""Rounds and jobs never stay stuck: dead workers are reaped, cancel always ends, a failed round leaves nothing live."""
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from feedback.models import Checkpoint, Comparison, Job, TrainingRound
from feedback.services import rounds as rounds_service
from feedback.services import runs
from feedback.services.jobs import job_batch_create, job_execute
from feedback.services.rounds import round_cancel, round_execute, round_launch
from tests.feedback.test_api import _vote_everything
from tests.helpers import make_project, this_cpu

pytestmark = pytest.mark.django_db(transaction=True)


def _dead_pid() -> int:
    """The pid of a process of this host that has exited (as a SIGKILLed worker's has)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _as_if_claimed(run, *, status: str, claimed_by: str, heartbeat_age_s: float = 0) -> None:
    type(run).objects.filter(pk=run.pk).update(
        status=status, stage=status, claimed_by=claimed_by, attempts=1, started_at=timezone.now(),
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age_s),
    )
    run.refresh_from_db()


def _queued_round(project, **config) -> TrainingRound:
    """A round row as round_launch makes it, without sending its task."""
    resolved = rounds_service.round_config_resolve(project, config)
    return TrainingRound.objects.create(project=project, number=project.rounds.count() + 1, config=resolved)


def test_round_whose_worker_process_died_is_failed_with_the_reason_and_unblocks_the_project(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    stuck = _queued_round(project)
    _as_if_claimed(stuck, status="ppo", claimed_by=f"{socket.gethostname()}:{_dead_pid()}")

    reaped = runs.runs_reap()

    stuck.refresh_from_db()
    assert stuck.status == "failed"
    assert "lost during ppo" in stuck.error and "its process has exited" in stuck.error
    assert reaped == [{"model": "TrainingRound", "id": stuck.pk, "action": "failed", "reason": stuck.error}]
    # The project takes a new round at once (it would have answered "already running").
    assert round_launch(project=project).status == "queued"


def test_reaping_a_round_removes_the_folders_it_wrote_but_never_registered(tiny_models, settings):
    project = make_project(tiny_models, first_batch=0)
    stuck = _queued_round(project)
    _as_if_claimed(stuck, status="ppo", claimed_by=f"{socket.gethostname()}:{_dead_pid()}")
    folder = settings.CHECKPOINT_DIR / f"project-{project.pk}"
    renamed = folder / "round-001-reward-0badc0de"   # written, killed before it was registered
    half = folder / ".tmp-round-001-policy-0badc0de-1234abcd"  # killed mid-write
    other = folder / "round-002-policy-feedf00d"       # another round's: not this one's to touch
    for path in (renamed, half, other):
        path.mkdir(parents=True)
        (path / "model.safetensors").write_bytes(b"x")

    runs.runs_reap()

    assert not renamed.exists() and not half.exists() and other.exists()


def test_round_with_a_stale_heartbeat_on_another_host_is_failed_but_a_live_one_is_left_alone(tiny_models, settings):
    settings.RLHF_HEARTBEAT_STALE_S = 60
    project = make_project(tiny_models, first_batch=0)
    live = _queued_round(project)
    _as_if_claimed(live, status="reward", claimed_by="gpu-box-7:4242", heartbeat_age_s=5)
    assert runs.runs_reap() == []
    live.refresh_from_db()
    assert live.status == "reward"

    TrainingRound.objects.filter(pk=live.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    runs.runs_reap()
    live.refresh_from_db()
    assert live.status == "failed" and "no heartbeat for 61 s" in live.error and "gpu-box-7:4242" in live.error


def test_job_whose_worker_died_is_queued_again_and_then_runs_once(tiny_models, admin_user, celery_worker):
    project = make_project(tiny_models, first_batch=0)
    job = Job.objects.create(kind=Job.Kind.BATCH, project=project, created_by=admin_user,
                             checkpoint=Checkpoint.objects.get(project=project, is_active=True),
                             params={"prompts": 2, "samples_per_prompt": 2, "split": "train", "prompt_ids": None,
                                     "generation": {"max_new_tokens": 4, "temperature": 1.0, "top_p": 1.0,
                                                    "batch_size": 4}})
    _as_if_claimed(job, status="running", claimed_by=f"{socket.gethostname()}:{_dead_pid()}")

    (action,) = runs.runs_reap()
    assert action["action"] == "requeued"

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in Job.FINAL_STATUSES:
            break
        time.sleep(0.2)
    assert job.status == "done", job.error
    # the device it sampled on is recorded with the result (this machine has no GPU)
    assert job.attempts == 2 and job.result == {"comparisons": 2, "prompts": 2,
                                                "device": this_cpu()}
    assert Comparison.objects.filter(project=project).count() == 2  # once, not twice


def test_a_job_that_keeps_losing_its_worker_ends_failed(tiny_models, settings):
    settings.RLHF_RUN_MAX_ATTEMPTS = 2
    project = make_project(tiny_models, first_batch=0)
    job = Job.objects.create(kind=Job.Kind.EXPORT, project=project, params={"format": "raw"})
    _as_if_claimed(job, status="running", claimed_by="elsewhere:1", heartbeat_age_s=3600)
    Job.objects.filter(pk=job.pk).update(attempts=2)
    runs.runs_reap()
    job.refresh_from_db()
    assert job.status == "failed" and "worker elsewhere:1 lost during running" in job.error


def test_cancel_of_a_run_without_a_live_worker_ends_it_at_once(tiny_models, admin_user):
    project = make_project(tiny_models, first_batch=0)
    orphan = _queued_round(project)
    _as_if_claimed(orphan, status="ppo", claimed_by=f"{socket.gethostname()}:{_dead_pid()}")
    client = APIClient()
    client.force_authenticate(admin_user)

    response = client.post(f"/api/v1/projects/{project.pk}/rounds/{orphan.number}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert "its worker" in response.json()["error"] and "was gone" in response.json()["error"]
    assert client.post(f"/api/v1/projects/{project.pk}/rounds/", {"config": {}}, format="json").status_code in (201, 503)


def test_cancel_of_a_live_run_only_asks(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    running = _queued_round(project)
    _as_if_claimed(running, status="ppo", claimed_by="other-host:99")
    round_cancel(training_round=running)
    running.refresh_from_db()
    assert running.status == "ppo" and running.cancel_requested


def _round_with_votes(tiny_models, alice, *, next_batch_prompts=2, **guards):
    """A project with 6 votes and a queued one-step round on it; `guards` override the round's guard
    settings (the tiny-model project reports guards without enforcing them, see tests/helpers.py)."""
    project = make_project(tiny_models, first_batch=6)
    _vote_everything(project, [(alice, ["a", "b", "a", "b", "a", "b"])])
    return project, _queued_round(project, min_pairs=4, next_batch_prompts=next_batch_prompts,
                                  reward={"epochs": 1, "min_steps": 1},
                                  ppo={"steps": 1, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1},
                                  guards={"prompts": 2, "max_new_tokens": 6, **guards})


def test_round_failing_while_generating_leaves_the_parent_active_and_no_half_batch(tiny_models, alice, monkeypatch):
    project, r = _round_with_votes(tiny_models, alice, next_batch_prompts=4)
    parent = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    real_generate = rounds_service.comparisons_generate_parts

    def generate_then_break(**kwargs):
        finalize = kwargs.pop("finalize")

        def broken(comparisons):
            finalize(comparisons)  # activation and "done" happen here...
            raise OSError("disk full while storing the batch")  # ...and must be rolled back with the rows
        return real_generate(**kwargs, finalize=broken)

    monkeypatch.setattr(rounds_service, "comparisons_generate_parts", generate_then_break)
    done = round_execute(r.pk)

    assert done.status == "failed" and "disk full" in done.error and "OSError" in done.traceback
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == parent.pk
    assert done.policy_checkpoint is not None and not done.policy_checkpoint.is_active
    assert not Comparison.objects.filter(round=done).exists()


def test_a_round_reaped_while_its_worker_was_slow_does_not_activate_its_policy(tiny_models, alice, monkeypatch):
    project, r = _round_with_votes(tiny_models, alice)
    parent = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    real_generate = rounds_service.comparisons_generate_parts

    def reaped_meanwhile(**kwargs):
        # The worker looked dead (a long pause) and the reaper failed the round.
        TrainingRound.objects.filter(pk=r.pk).update(status="failed", error="worker lost during generating")
        return real_generate(**kwargs)

    monkeypatch.setattr(rounds_service, "comparisons_generate_parts", reaped_meanwhile)
    done = round_execute(r.pk)

    assert done.status == "failed" and done.error == "worker lost during generating"
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == parent.pk
    assert not Comparison.objects.filter(round=done).exists()


def test_heartbeat_thread_stamps_a_running_run(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    job = Job.objects.create(kind=Job.Kind.EXPORT, project=project, params={"format": "raw"})
    claimed = runs.run_claim(Job, job.pk, status="running")
    first = claimed.heartbeat_at
    with runs.Heartbeat(claimed, interval=0.1):
        time.sleep(0.6)
    claimed.refresh_from_db()
    assert claimed.heartbeat_at > first


def _unreachable_task(name: str):
    """A task whose app talks to a Redis port where nothing listens: the broker is down."""
    # set_as_current=False: a current app would capture every shared_task sent after this test
    down = Celery("down", broker="redis://127.0.0.1:1/0", set_as_current=False)
    down.conf.broker_connection_timeout = 1
    return down.task(name=name)(lambda *_: None)


def test_queue_down_answers_503_and_leaves_nothing_queued(tiny_models, admin_user, monkeypatch):
    project = make_project(tiny_models, first_batch=0)
    monkeypatch.setattr(runs, "_task_for", lambda run: _unreachable_task("feedback.run_training_round"))
    client = APIClient()
    client.force_authenticate(admin_user)

    response = client.post(f"/api/v1/projects/{project.pk}/rounds/", {"config": {}}, format="json")

    assert response.status_code == 503
    assert response.json()["detail"] == "the task queue is unavailable, retry in a moment"
    assert response["Retry-After"]
    assert not TrainingRound.objects.filter(project=project).exists()

    batch = client.post(f"/api/v1/projects/{project.pk}/batches/", {"prompts": 2}, format="json")
    assert batch.status_code == 503 and not Job.objects.exists()


def test_queued_run_whose_message_was_lost_is_sent_again(tiny_models, settings, celery_worker):
    settings.RLHF_REQUEUE_AFTER_S = 10
    project = make_project(tiny_models, first_batch=0)
    # Queued long ago, but the broker lost the message (Redis restarted without persistence).
    job = Job.objects.create(kind=Job.Kind.EXPORT, project=project, params=_export_params(),
                             enqueued_at=timezone.now() - timedelta(seconds=30))
    assert {"model": "Job", "id": job.pk, "action": "resent"} in runs.runs_reap()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and job.status != "done":
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == "done", job.error


def _export_params() -> dict:
    from feedback.services.exports import export_options

    return export_options({"format": "raw"})


def test_duplicate_delivery_of_a_claimed_job_runs_it_once(tiny_models, admin_user, django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=0)
    with django_capture_on_commit_callbacks(execute=False):
        job = job_batch_create(project=project, data={"prompts": 1, "samples_per_prompt": 2}, user=admin_user)
    results = []

    def deliver():
        try:
            results.append(job_execute(job.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r is None for r in results) == [False, True]
    assert Comparison.objects.filter(project=project).count() == 1


def _tripping_guards(monkeypatch):
    """The real guards run, and their verdict is that distinct-1 collapsed (what a degenerate policy gets)."""
    real = rounds_service.round_guards_evaluate

    def evaluate(**kwargs):
        result = real(**kwargs)
        return {**result, "passed": False, "tripped": ["distinct_1"]}

    monkeypatch.setattr(rounds_service, "round_guards_evaluate", evaluate)


def test_a_policy_that_trips_a_guard_is_registered_but_not_activated_until_staff_promote_it(tiny_models, alice,
                                                                                             admin_user, monkeypatch):
    _tripping_guards(monkeypatch)
    project, r = _round_with_votes(tiny_models, alice, enforce=True)
    parent = Checkpoint.objects.get(project=project, kind="policy", is_active=True)

    done = round_execute(r.pk)

    assert done.status == "needs_review", done.error
    assert "distinct_1" in done.error and "not active" in done.error
    assert done.policy_checkpoint is not None and not done.policy_checkpoint.is_active
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == parent.pk
    assert not Comparison.objects.filter(round=done).exists()  # no batch from a policy nobody approved
    assert len(done.metrics["guards"]["samples"]) == 2
    # A held round does not block the project.
    assert round_launch(project=project).status == "queued"
    TrainingRound.objects.filter(project=project, status="queued").delete()

    client = APIClient()
    client.force_authenticate(admin_user)
    url = f"/api/v1/projects/{project.pk}/rounds/{done.number}/review/"
    assert client.post(url, {"decision": "keep"}, format="json").status_code == 400
    response = client.post(url, {"decision": "promote", "reason": "looked fine to me"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "done"
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == done.policy_checkpoint_id
    assert client.post(url, {"decision": "discard"}, format="json").status_code == 400  # decided already


def test_discarding_a_held_round_keeps_the_parent(tiny_models, alice, admin_user, client, monkeypatch):
    _tripping_guards(monkeypatch)
    project, r = _round_with_votes(tiny_models, alice, enforce=True)
    parent = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    held = round_execute(r.pk)
    client.force_login(admin_user)

    page = client.get(f"/studio/rounds/{held.pk}/").content.decode()
    assert 'id="round-review-form"' in page and "parent and new policy side by side" in page

    client.post(f"/studio/rounds/{held.pk}/review/", {"decision": "discard", "reason": "repeats itself"})
    held.refresh_from_db()
    assert held.status == "discarded" and held.metrics["review"]["reason"] == "repeats itself"
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == parent.pk


def test_project_guard_settings_are_the_base_of_a_round_and_bad_ones_are_refused(tiny_models, admin_user):
    project = make_project(tiny_models, first_batch=0)
    client = APIClient()
    client.force_authenticate(admin_user)
    bad = client.patch(f"/api/v1/projects/{project.pk}/", {"guard_settings": {"distinct_2_min_ratio": 7}},
                       format="json")
    assert bad.status_code == 400 and "guard_settings.distinct_2_min_ratio" in bad.json()
    ok = client.patch(f"/api/v1/projects/{project.pk}/", {"guard_settings": {"distinct_2_min_ratio": 0.3}},
                      format="json")
    assert ok.status_code == 200 and ok.json()["guard_settings"] == {"distinct_2_min_ratio": 0.3}
    project.refresh_from_db()
    resolved = rounds_service.round_config_resolve(project, {"guards": {"prompts": 4}})
    assert resolved["guards"]["distinct_2_min_ratio"] == 0.3 and resolved["guards"]["prompts"] == 4


def test_a_round_whose_guards_trip_without_enforcement_activates_its_policy(tiny_models, alice, monkeypatch):
    _tripping_guards(monkeypatch)
    project, r = _round_with_votes(tiny_models, alice, enforce=False)
    done = round_execute(r.pk)
    assert done.status == "done", done.error
    assert not done.metrics["guards"]["passed"]  # reported, but not enforced
    assert done.metrics["device"]["device"] == "cpu" and done.claimed_by  # which device, which worker
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True).pk == done.policy_checkpoint_id


def test_studio_pages_say_the_queue_is_down_instead_of_failing(tiny_models, admin_user, client, monkeypatch):
    project = make_project(tiny_models, first_batch=0)
    monkeypatch.setattr(runs, "_task_for", lambda run: _unreachable_task("feedback.run_job"))
    client.force_login(admin_user)

    page = client.post(f"/studio/projects/{project.pk}/batches/", {"prompts": 2, "samples_per_prompt": 2, "split": "train"},
                       follow=True)

    assert page.status_code == 200
    assert "the task queue is unavailable" in page.content.decode()
    assert not Job.objects.exists()


def test_a_project_created_while_the_queue_is_down_says_how_to_prepare_round_0(admin_user, client, monkeypatch,
                                                                               tmp_path):
    from feedback.models import Project

    gguf = tmp_path / "policy.gguf"
    gguf.write_bytes(b"GGUF")  # a GGUF base needs the set-up job, which cannot be queued now
    monkeypatch.setattr(runs, "_task_for", lambda run: _unreachable_task("feedback.run_job"))
    client.force_login(admin_user)

    page = client.post("/studio/projects/new/", {
        "name": " Support bot ", "guidelines": "", "votes_per_comparison": 1, "policy_base_model": str(gguf),
        "reward_base_model": "", "max_new_tokens": 32, "temperature": 0.7, "top_p": 1.0, "batch_size": 8,
    }, follow=True)

    assert page.status_code == 200
    assert "round 0 is not being prepared" in page.content.decode()
    assert Project.objects.filter(name="Support bot").exists() and not Job.objects.exists()
