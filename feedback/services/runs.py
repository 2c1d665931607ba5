"""One lifecycle for background work: training rounds and jobs (models.Run).

enqueue → claim → heartbeat + progress → done / failed / cancelled, and a reaper for the
runs whose worker is gone. The database row is the truth; the broker message only says
"look at run N". So a duplicated or redelivered message is harmless (the claim is a
conditional update that only one caller wins), a lost message is re-sent by the reaper,
and a worker killed mid-run leaves a row whose heartbeat goes stale, which the reaper
ends as failed (rounds) or queues again (jobs, whose steps are safe to repeat).
"""
import logging
import os
import socket
import threading
import time
import traceback as tb
from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from feedback.models import Job, Run, TrainingRound
from training.progress import Hooks

logger = logging.getLogger(__name__)

RUN_MODELS: tuple[type[Run], ...] = (TrainingRound, Job)


class QueueUnavailable(Exception):
    """The broker could not take the task; the caller answers 503 and nothing stays queued."""

    message = "the task queue is unavailable, retry in a moment"

    def __str__(self) -> str:
        return self.message


class RunLost(Exception):
    """This worker no longer owns the run (the reaper ended it, or another worker took it)."""


def worker_id() -> str:
    """host:pid of this process; a restarted worker has a new pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _task_for(run: Run | type[Run]):
    """The task that executes runs of this kind."""
    from feedback import tasks

    model = run if isinstance(run, type) else type(run)
    return tasks.run_training_round if issubclass(model, TrainingRound) else tasks.run_job


def _send(model: type[Run], pk: int, task) -> None:
    # Few, fast retries: a request must not hang while Redis is down; it answers 503 instead.
    task.apply_async(args=[pk], retry=True, retry_policy={
        "max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1,
    })
    model.objects.filter(pk=pk).update(enqueued_at=timezone.now())


def run_enqueue(run: Run) -> Run:
    """Send the run's task once the row is committed.

    If the broker refuses, the run is deleted while still queued (so nothing waits for a
    message that was never sent) and QueueUnavailable propagates to the caller.
    """
    model, pk, task = type(run), run.pk, _task_for(run)

    def send():
        try:
            _send(model, pk, task)
        except Exception as exc:  # kombu.OperationalError, redis errors, OSError: all mean "not sent"
            logger.warning("%s %s: the task queue refused it (%s); removed", model.__name__, pk, exc)
            model.objects.filter(pk=pk, status=model.QUEUED).delete()
            raise QueueUnavailable() from exc

    transaction.on_commit(send, robust=False)
    return run


def run_claim(model: type[Run], pk: int, *, status: str) -> Run | None:
    """Take a queued run for this worker; None when another caller got there first or it was cancelled."""
    now = timezone.now()
    claimed = model.objects.filter(pk=pk, status=model.QUEUED, cancel_requested=False).update(
        status=status, stage=status, claimed_by=worker_id(), heartbeat_at=now, started_at=now,
        attempts=F("attempts") + 1, progress_step=0, progress_total=0, error="", traceback="",
    )
    if not claimed:
        logger.info("%s %s: not queued any more (another worker got there first, or it was cancelled)",
                    model.__name__, pk)
        return None
    return model.objects.get(pk=pk)


def _owned(model: type[Run], pk: int):
    """The run's row, if this worker still holds it."""
    return model.objects.filter(pk=pk, claimed_by=worker_id(), status__in=model.RUNNING_STATUSES)


def run_set_stage(run: Run, status: str, **fields) -> None:
    """Move an owned run to its next stage (rounds: snapshot → reward → ...)."""
    if not _owned(type(run), run.pk).update(status=status, stage=status, progress_step=0, progress_total=0,
                                            heartbeat_at=timezone.now(), **fields):
        raise RunLost(f"{type(run).__name__} {run.pk} is no longer this worker's")
    run.status = status


def run_finish(run: Run, status: str, **fields) -> bool:
    """End an owned run with a final status; False if it was not ours any more (nothing written)."""
    return bool(_owned(type(run), run.pk).update(
        status=status, stage="", finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields))


def run_fail(run: Run, exc: BaseException, **fields) -> bool:
    """End an owned run as failed, keeping the error and its traceback."""
    from feedback.services.errors import FieldError

    message = str(exc) if isinstance(exc, FieldError) else f"{type(exc).__name__}: {exc}"
    return run_finish(run, run.FAILED, error=message, traceback=tb.format_exc()[-8000:], **fields)


class RunProgress:
    """Hooks target for a running run: writes stage/step/total (and per-step metrics) and beats."""

    def __init__(self, run: Run, metrics: dict | None = None):
        self.model, self.pk = type(run), run.pk
        self.metrics = metrics
        self._last_write = 0.0

    def __call__(self, *, stage: str, step: int, total: int, metrics: dict | None = None) -> None:
        fields = {}
        if metrics is not None and self.metrics is not None:
            self.metrics.setdefault(stage, []).append(metrics)
            fields["metrics"] = self.metrics
        now = time.monotonic()
        # Per-step metrics are always written; bare progress ticks at most twice a second.
        if not fields and step not in (0, total) and now - self._last_write < 0.5:
            return
        self._last_write = now
        # update() touches only these columns: cancel_requested is the web's to write.
        self.model.objects.filter(pk=self.pk).update(progress_step=step, progress_total=total,
                                                     heartbeat_at=timezone.now(), **fields)

    def should_stop(self) -> bool:
        # Stop when asked, and also when the run is no longer ours (reaped while we were slow).
        return not _owned(self.model, self.pk).filter(cancel_requested=False).exists()

    def hooks(self) -> Hooks:
        return Hooks(report=self, should_stop=self.should_stop)


class Heartbeat:
    """A thread that stamps the run's heartbeat every few seconds while the worker lives.

    Progress reports beat too, but a single PPO step or a model load can outlast the
    stale limit; this thread keeps a live worker from looking dead. If the process is
    killed, the thread dies with it and the heartbeat goes stale: that is the signal.
    """

    def __init__(self, run: Run, interval: float | None = None):
        self.model, self.pk, self.owner = type(run), run.pk, worker_id()
        self.interval = interval or settings.RLHF_HEARTBEAT_INTERVAL_S
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.model.__name__}-{self.pk}",
                                        daemon=True)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.model.objects.filter(pk=self.pk, claimed_by=self.owner).update(heartbeat_at=timezone.now())
                except Exception:  # a database blip: the next beat tries again
                    logger.warning("heartbeat of %s %s failed", self.model.__name__, self.pk, exc_info=True)
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def run_execute(model: type[Run], pk: int, *, first_status: str, body: Callable[[Run, RunProgress], dict | None],
                metrics: dict | None = None) -> Run | None:
    """Claim run `pk`, run `body(run, progress)` under a heartbeat and record how it ended.

    `body` returns the fields to write with the final status (which it may choose with a
    "status" key; default done) or None when it ended the run itself (run_finish inside
    its own transaction); it raises Cancelled to end cancelled, anything else to fail.
    """
    from training.progress import Cancelled

    run = run_claim(model, pk, status=first_status)
    if run is None:
        return None
    progress = RunProgress(run, metrics)
    with Heartbeat(run):
        try:
            fields = body(run, progress)
            if fields is not None:
                status = fields.pop("status", "done")
                if not run_finish(run, status, **fields):
                    logger.warning("%s %s ended but was no longer ours; its result is dropped", model.__name__, pk)
        except RunLost as exc:
            logger.warning("%s", exc)
        except Cancelled:
            if run_finish(run, model.CANCELLED, error="cancelled on request",
                          **({"metrics": metrics} if metrics is not None else {})):
                run_after_failure(run)
            else:
                logger.info("%s %s stopped: it is no longer this worker's", model.__name__, pk)
        except Exception as exc:  # the row records any failure; the worker itself goes on
            logger.exception("%s %s failed", model.__name__, pk)
            if run_fail(run, exc, **({"metrics": metrics} if metrics is not None else {})):
                run_after_failure(run)
    run.refresh_from_db()
    return run


def run_cancel(run: Run) -> Run:
    """Ask a run to stop: a queued run, or one whose worker is gone, ends at once; a live one at its next step."""
    model = type(run)
    active = (model.QUEUED, *model.RUNNING_STATUSES)
    model.objects.filter(pk=run.pk, status__in=active).update(cancel_requested=True)
    now = timezone.now()
    model.objects.filter(pk=run.pk, status=model.QUEUED).update(
        status=model.CANCELLED, finished_at=now, error="cancelled before it started")
    run.refresh_from_db()
    if run.status in model.RUNNING_STATUSES and not worker_alive(run):
        # Nobody would ever see the flag: end it here, on the same condition the reaper uses.
        model.objects.filter(pk=run.pk, status=run.status, heartbeat_at=run.heartbeat_at).update(
            status=model.CANCELLED, stage="", finished_at=now,
            error=f"cancelled; its worker ({run.claimed_by or 'unknown'}) was gone")
        run.refresh_from_db()
    return run


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def worker_alive(run: Run, now=None) -> bool:
    """Whether the worker that claimed `run` still looks alive.

    Dead when its heartbeat is older than RLHF_HEARTBEAT_STALE_S, or at once when it ran on
    this host and its process no longer exists (a restarted worker has a new pid).
    """
    now = now or timezone.now()
    if run.heartbeat_at is None or now - run.heartbeat_at > timedelta(seconds=settings.RLHF_HEARTBEAT_STALE_S):
        return False
    host, _, pid = (run.claimed_by or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid():
        return _pid_alive(int(pid))
    return True


def _why_dead(run: Run, now) -> str:
    if run.heartbeat_at is None:
        return "it never reported"
    age = (now - run.heartbeat_at).total_seconds()
    return f"no heartbeat for {age:.0f} s" if age > settings.RLHF_HEARTBEAT_STALE_S else "its process has exited"


def runs_reap(*, project_id: int | None = None) -> list[dict]:
    """End or requeue runs whose worker is gone; re-send queued runs whose message may be lost.

    Safe to call from anywhere and concurrently: every change is a conditional update on the
    status and heartbeat that were read, so two reapers never both act on one run.
    Returns what was done, one dict per run.
    """
    now = timezone.now()
    done = []
    for model in RUN_MODELS:
        rows = model.objects.filter(status__in=model.RUNNING_STATUSES)
        if project_id is not None:
            rows = rows.filter(project_id=project_id)
        for run in rows:
            if worker_alive(run, now):
                continue
            reason = f"worker {run.claimed_by or '?'} lost during {run.status}: {_why_dead(run, now)}"
            same = model.objects.filter(pk=run.pk, status=run.status, heartbeat_at=run.heartbeat_at)
            if run.REQUEUE_SAFE and run.attempts < settings.RLHF_RUN_MAX_ATTEMPTS and not run.cancel_requested:
                if same.update(status=model.QUEUED, stage="", claimed_by="", heartbeat_at=None, progress_step=0,
                               progress_total=0, error=f"requeued: {reason}"):
                    logger.warning("%s %s requeued: %s", model.__name__, run.pk, reason)
                    done.append({"model": model.__name__, "id": run.pk, "action": "requeued", "reason": reason})
                    _resend(model, run.pk)
                continue
            status = model.CANCELLED if run.cancel_requested else model.FAILED
            with transaction.atomic():
                if not same.update(status=status, stage="", finished_at=now, error=reason):
                    continue  # another reaper, or the worker itself, got there first
                run_after_failure(run)
            logger.warning("%s %s ended %s: %s", model.__name__, run.pk, status, reason)
            done.append({"model": model.__name__, "id": run.pk, "action": status, "reason": reason})
        # A queued run whose message was lost (Redis restarted without persistence) would
        # wait forever: send it again. A duplicate message is harmless (the claim is conditional).
        stale = now - timedelta(seconds=settings.RLHF_REQUEUE_AFTER_S)
        queued = model.objects.filter(status=model.QUEUED).filter(Q(enqueued_at__lt=stale) | Q(enqueued_at=None))
        if project_id is not None:
            queued = queued.filter(project_id=project_id)
        for pk in queued.values_list("pk", flat=True):
            if _resend(model, pk):
                done.append({"model": model.__name__, "id": pk, "action": "resent"})
    return done


def _resend(model: type[Run], pk: int) -> bool:
    try:
        _send(model, pk, _task_for(model))
        return True
    except Exception as exc:  # still no broker: the next reap tries again
        logger.warning("%s %s: could not be re-sent (%s)", model.__name__, pk, exc)
        return False


def run_after_failure(run: Run) -> None:
    """Undo what a run must not leave behind when it ends without finishing (rounds: the active policy)."""
    if isinstance(run, TrainingRound):
        from feedback.services.rounds import round_rollback_unfinished

        try:
            round_rollback_unfinished(run)
        except Exception:  # the run is ended either way; what is left is logged for a person
            logger.exception("cleaning up after %s %s failed", type(run).__name__, run.pk)


def reap_quietly(**kwargs) -> None:
    """runs_reap for request paths: a failure to reap must never break the page."""
    try:
        runs_reap(**kwargs)
    except Exception:
        logger.exception("reaping runs failed")
