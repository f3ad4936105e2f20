"""The daemon: APScheduler (3.x) ticks the stages, signals stop it gracefully.

Each stage is its own periodic job on its own thread (``max_instances=1``, ``coalesce``), so an
embedding backlog never delays polling and a slow SMTP server never delays matching. The
database, not the scheduler, decides which feeds and deliveries are due, so a tick is cheap.

Lifecycle (after arq/rq): SIGTERM or SIGINT sets the stop event, which stages check between
units of work; the scheduler stops taking new jobs; in-flight jobs get ``grace_s`` to finish;
then the process exits 0. SIGHUP re-reads the config file between ticks: feeds and topics are
synced into the database and used from the next tick on; a broken file is logged and the running
config is kept (``database.url`` and ``polling.tick`` need a restart). With SQLite, an exclusive lock file next to the database keeps a
second daemon, or a ``run --once`` cycle, from running on the same file.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.config import load_config, sqlite_path
from monitor.errors import ConfigError, DatabaseError, MonitorError
from monitor.logs import event
from monitor.memory import release_free_memory
from monitor.pipeline import cycle
from monitor.pipeline.runtime import Runtime
from monitor.store import db, queries

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 30.0


class SqliteOwnerLock:
    """An exclusive, process-lifetime lock on ``<database>.lock`` (released by the OS on death)."""

    def __init__(self, database_url: str) -> None:
        self.path: Path | None = None
        self._handle: IO[str] | None = None
        path = sqlite_path(database_url)
        if path is not None:
            self.path = Path(path + ".lock")

    def acquire(self) -> None:
        if self.path is None:
            return
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise DatabaseError(
                f"{self.path.with_suffix('')} is already used by a running monitor daemon "
                f"({owner}). SQLite allows one daemon per database file; stop the other one, "
                "or move to PostgreSQL to run several workers."
            ) from None
        handle.truncate(0)
        handle.write(f"pid {queries.worker_id()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class _BusyStageFilter(logging.Filter):
    """Drop APScheduler's "skipped: maximum number of running instances" warning.

    A stage working through a backlog outlives many ticks; that is normal (``max_instances=1``
    is the design), and the warning would otherwise be logged once per tick per busy stage.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


class Daemon:
    """Runs the stages periodically until asked to stop."""

    def __init__(self, runtime: Runtime, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.runtime = runtime
        self.grace_s = grace_s
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=6)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._lock = SqliteOwnerLock(runtime.config.database_url)
        self._stopped = threading.Event()
        self._reload = threading.Event()
        self.abandoned = False  # in-flight work outlived the grace period: the caller must exit

    def _job(self, name: str, stage: Callable[[Runtime], Any]) -> Callable[[], None]:
        def run() -> None:
            if self.runtime.stop.is_set():
                return
            try:
                stage(self.runtime)
            except MonitorError as exc:
                event(log, logging.ERROR, "stage failed", stage=name, error=str(exc))
            except Exception:
                # the loop never dies: log with traceback, the next tick tries again
                log.exception("stage crashed", extra={"fields": {"stage": name}})
            finally:
                release_free_memory()  # each stage's garbage leaves the process, not an arena

        return run

    def start(self) -> None:
        self._lock.acquire()
        tick = self.runtime.config.polling.tick
        for name, stage in cycle.STAGES:
            self.scheduler.add_job(
                self._job(name, stage),
                "interval",
                seconds=tick,
                id=name,
                name=name,
                next_run_time=self.runtime.clock.now(),
            )
        logging.getLogger("apscheduler.scheduler").addFilter(_BusyStageFilter())
        self.scheduler.start()
        config = self.runtime.config
        event(
            log,
            logging.INFO,
            "daemon started",
            worker=self.runtime.worker_id,
            feeds=len(config.feeds),
            topics=len(config.topics),
            database=db.redact_url(config.database_url),
            tick_s=tick,
        )

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: FrameType | None) -> None:
            event(log, logging.INFO, "stop requested", signal=signal.Signals(signum).name)
            self.runtime.stop.set()

        def ask_reload(_signum: int, _frame: FrameType | None) -> None:
            self._reload.set()  # done by wait(): no database work inside a signal handler

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGHUP, ask_reload)

    def wait(self) -> None:
        """Block until the stop event is set, then shut down within the grace period."""
        while not self.runtime.stop.wait(timeout=1.0):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
        self.shutdown()

    def reload(self) -> bool:
        """Re-read the config file; keep the running config when the new one is broken."""
        old = self.runtime.config
        try:
            new = load_config(old.path)
            new.check_channels()
            if new.database_url != old.database_url:
                raise ConfigError(f"{old.path}: database.url changed: restart the daemon to use it")
            with db.session_scope(self.runtime.sessions) as session:
                queries.sync_config(session, new)
        except MonitorError as exc:
            event(
                log,
                logging.ERROR,
                "config reload failed; the running config is kept",
                error=str(exc),
            )
            return False
        self.runtime.config = new
        event(log, logging.INFO, "config reloaded", feeds=len(new.feeds), topics=len(new.topics))
        return True

    def shutdown(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.runtime.stop.set()
        started = time.monotonic()
        finisher = threading.Thread(
            target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True
        )
        finisher.start()
        finisher.join(timeout=self.grace_s)
        self.abandoned = finisher.is_alive()
        if self.abandoned:
            event(
                log,
                logging.WARNING,
                "grace period over; abandoning in-flight work",
                grace_s=self.grace_s,
            )
        try:
            with db.session_scope(self.runtime.sessions) as session:
                queries.forget_worker(session, self.runtime.worker_id)
        except Exception as exc:  # shutting down: report, never mask the exit
            event(log, logging.WARNING, "could not deregister worker", error=str(exc))
        self._lock.release()
        event(log, logging.INFO, "daemon stopped", seconds=round(time.monotonic() - started, 2))

    def exit_if_abandoned(self) -> None:
        """End the process now when a stage thread outlived the grace period.

        Python joins executor threads at exit, so a stage stuck on a hostile feed would keep a
        stopped daemon alive for ever; the database work is transactional, nothing is lost.
        """
        if self.abandoned:
            logging.shutdown()
            os._exit(0)
