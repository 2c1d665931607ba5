"""Django's SQLite backend, with writers that wait for the lock without oversleeping.

SQLite's own busy handler (`timeout`) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and
then 100 ms between attempts to take the write lock. Under a steady stream of short write
transactions from several processes (gunicorn's workers, the Celery worker) a writer that
found the lock taken keeps sleeping long after it was freed: the web requests' server
time reached 350-650 ms at p99 while a transaction holds the lock for a few ms
(BENCHMARKS.md, "The default install beside Label Studio's"). Here `BEGIN IMMEDIATE` is
retried every 0.5-1 ms for the first 100 ms, then at steps doubling up to 8 ms (a long
write, such as a big import, is not polled a thousand times a second), up to the
connection's own busy timeout; every other statement keeps SQLite's handler.
"""
import os
import random
import sqlite3
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_FAST_S, _FAST_STEP_S, _MAX_STEP_S = 0.1, 0.001, 0.008


def _busy(exc: BaseException | None) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _file_identity(path) -> tuple | None:
    """(device, inode) of the database file; None when there is none at `path`."""
    try:
        found = os.stat(path)
    except (OSError, ValueError, TypeError):
        return None
    return found.st_dev, found.st_ino


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        conn = super().get_new_connection(conn_params)
        # what `timeout` (or init_command) set, restored after each wait below
        self.busy_timeout_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        self.opened_file = None if self.is_in_memory_db() else _file_identity(self.settings_dict["NAME"])
        return conn

    def is_usable(self):
        """Whether the file this connection opened is still the one at the database's path.

        A connection kept between requests (CONN_MAX_AGE, CONN_HEALTH_CHECKS) would
        otherwise go on reading and writing a file that was deleted or replaced, say by a
        restored backup, and every write would be lost with it. (Django's SQLite backend
        answers True whatever happened.) Checked once per request, before its first query.
        """
        return self.opened_file is None or _file_identity(self.settings_dict["NAME"]) == self.opened_file

    def _start_transaction_under_autocommit(self):
        if self.transaction_mode is None:
            return super()._start_transaction_under_autocommit()
        begin = f"BEGIN {self.transaction_mode}"
        with self.wrap_database_errors:
            raw = self.connection.cursor()
            raw.execute("PRAGMA busy_timeout = 0")
            began = False
            try:
                self._begin_when_free(begin)
                began = True
            finally:
                try:
                    raw.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
                except sqlite3.Error:
                    if began:  # Django believes it is still in autocommit: leave no transaction open
                        self.connection.rollback()
                    raise
                finally:
                    raw.close()

    def _begin_when_free(self, begin: str) -> None:
        started = time.monotonic()
        deadline = started + self.busy_timeout_ms / 1000
        step = _FAST_STEP_S
        while True:
            try:
                # through Django's cursor, so BEGIN shows in query logs and execute_wrapper
                self.cursor().execute(begin)
                return
            except OperationalError as exc:  # Django's, wrapping the sqlite3 error
                if not _busy(exc.__cause__) or time.monotonic() >= deadline:
                    raise
            if time.monotonic() - started > _FAST_S:
                step = min(step * 2, _MAX_STEP_S)
            time.sleep(random.uniform(step / 2, step))
