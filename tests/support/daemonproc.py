"""Run the real daemon (``python -m monitor run``) in tests and look at what it stored.

Shared by the fault suite and the multi-worker test: a config writer with short intervals, a
process wrapper that can SIGTERM, SIGHUP or ``kill -9`` the daemon, a ``wait_until`` that fails
with a message, and small read-only queries on the daemon's database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from monitor.store import db
from monitor.store.models import Article, Delivery, Feed
from tests.support.models import pin_model

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

# loading the model in a fresh daemon takes seconds alone, over a minute on a loaded 2-core box
MODEL_WAIT_S = 180.0
ON_TOPIC_DESCRIPTION = "North Korea sends artillery shells and missiles to Russia for its war"


def config_text(
    database_url: str,
    feeds: Sequence[str],
    *,
    slack_url: str = "",
    email: dict[str, Any] | None = None,
    interval_s: float = 2.0,
    lease_s: float = 10.0,
    total_timeout_s: float = 3.0,
    topic: bool = True,
    extra: str = "",
) -> str:
    """A config with short intervals; a topic about North Korea arming Russia when ``topic``."""
    channels = []
    lines = [
        f'[database]\nurl = "{database_url}"\nlease = "{lease_s}s"\n',
        f'[polling]\ninterval = "{interval_s}s"\nmin_interval = "1s"\n'
        f'max_interval = "{interval_s}s"\nerror_backoff_cap = "{interval_s}s"\ntick = "1s"\n'
        'connect_timeout = "2s"\nread_timeout = "2s"\n'
        f'total_timeout = "{total_timeout_s}s"\n'
        'parse_timeout = "1s"\nparse_workers = 1\nper_host = 16\nconcurrency = 32\n',
        # story grouping off (only identical vectors join): each on-topic entry is its own alert,
        # so "delivered exactly once" is counted per entry at the receiver
        '[delivery]\nretry_base = "1s"\nretry_cap = "2s"\nstory_similarity = 1.0\n',
        "[alerts.console]\nenabled = false\n",
    ]
    if slack_url:
        lines.append(f'[alerts.slack]\nurl = "{slack_url}"\n')
        channels.append("slack")
    if email:
        lines.append(
            "[alerts.email]\n"
            + "".join(
                f"{k} = {v!r}\n".replace("'", '"') if isinstance(v, str | list) else f"{k} = {v}\n"
                for k, v in email.items()
            )
        )
        channels.append("email")
    lines.append(extra)
    for url in feeds:
        lines.append(f'[[feeds]]\nurl = "{url}"\n')
    if topic:
        lines.append(
            '[[topics]]\nname = "nk-arms"\n'
            f'descriptions = ["{ON_TOPIC_DESCRIPTION}"]\n'
            'require = [["north korea", "pyongyang", "kim jong un"], ["russia", "moscow", '
            '"putin"]]\nthreshold = 0.2\n'
            f"channels = {channels!r}\n".replace("'", '"')
        )
    return pin_model("\n".join(lines))


class DaemonProc:
    """One ``monitor run`` subprocess whose output goes to a log file."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config, self.log_path = config, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProc:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "monitor",
                    "--config",
                    str(self.config),
                    "run",
                    "--grace",
                    "10",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_started(self, timeout_s: float = 60.0) -> DaemonProc:
        """Block until the daemon logged "daemon started" (schema migrated, config synced)."""
        wait_until(lambda: "daemon started" in self.output(), timeout_s, "daemon started", [self])
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill9(self) -> None:
        """SIGKILL the daemon and its parser processes (its whole process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL when the grace period is not kept. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        return int(self.proc.returncode)

    def assert_alive(self) -> None:
        assert self.alive(), (
            f"daemon exited ({self.proc and self.proc.returncode}):\n" + (self.output()[-4000:])
        )

    def assert_clean_log(self) -> None:
        text = self.output()
        assert "Traceback" not in text, text[-6000:]


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, daemons: Sequence[DaemonProc] = ()
) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` (and show the daemons' logs)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for daemon in daemons:
            daemon.assert_alive()
        time.sleep(0.3)
    logs = "\n".join(d.output()[-3000:] for d in daemons)
    raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}\n{logs}")


class Db:
    """Read-only looks at the daemon's database, one short connection per question."""

    def __init__(self, url: str) -> None:
        self.engine = db.make_engine(url, null_pool=True)
        self.sessions = db.make_session_factory(self.engine)

    def count(self, model: Any, *where: Any) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def article_links(self) -> list[str]:
        with self.sessions() as session:
            return list(session.scalars(select(Article.link)))

    def new_articles(self) -> int:
        return self.count(Article, Article.is_history.is_(False))

    def sent(self) -> int:
        return self.count(Delivery, Delivery.status == "sent")

    def pending(self) -> int:
        return self.count(Delivery, Delivery.status != "sent", Delivery.status != "failed")

    def feeds(self) -> list[Feed]:
        with self.sessions() as session:
            return list(session.scalars(select(Feed).order_by(Feed.id)))

    def close(self) -> None:
        self.engine.dispose()
