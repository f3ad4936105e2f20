"""Shared by the bench scripts: start the real daemon, sample its resources, write a config.

The daemon is always the real thing (``python -m monitor run`` in a subprocess) so the figures
include the scheduler, the parser processes and the model. Resources are read from ``/proc``
(Linux), summed over the daemon and its child processes (the parser pool).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # bench scripts reuse tests/support's loopback server
    sys.path.insert(0, str(REPO_ROOT))

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Descendants of ``pid``: any of its threads may have started a child."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                kids += [
                    int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
            except OSError:
                continue
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def _pss(pid: int) -> int | None:
    """Proportional set size: shared pages split between the processes that share them, so
    the sum over a process tree is not inflated by copy-on-write pages."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _stat(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds of the process itself; children are sampled on their own)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0.0
    # after the ")": state is fields[0]; utime=11 stime=12 rss=21
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    return int(fields[21]) * PAGE, cpu


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


@dataclass
class Sample:
    at_s: float
    rss_bytes: int
    cpu_s: float
    fds: int


@dataclass
class ProcessTree:
    """Samples memory (PSS summed over the tree; RSS where PSS is unavailable), CPU time and
    open descriptors of a process tree."""

    pid: int
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    _cpu_by_pid: dict[int, float] = field(default_factory=dict)

    def sample(self) -> Sample:
        pids = [self.pid, *_children(self.pid)]
        rss = 0.0
        fds = 0
        for pid in pids:
            r, c = _stat(pid)
            pss = _pss(pid)
            rss += pss if pss is not None else r
            fds += _fds(pid)
            self._cpu_by_pid[pid] = c  # the last value of a finished child still counts
        cpu = sum(self._cpu_by_pid.values())
        sample = Sample(time.monotonic() - self.started, int(rss), cpu, fds)
        self.samples.append(sample)
        return sample

    @property
    def peak_rss(self) -> int:
        return max((s.rss_bytes for s in self.samples), default=0)

    @property
    def cpu_s(self) -> float:
        return max((s.cpu_s for s in self.samples), default=0.0)


def shipped_base(config_path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The shipped config and its topics, seed paths made absolute, alerting only "slack"."""
    import tomllib

    base_path = Path(config_path).resolve()
    base = tomllib.loads(base_path.read_text(encoding="utf-8"))
    topics = []
    for topic in base.get("topics", []):
        topic = dict(topic)
        topic["seed"] = [str((base_path.parent / s).resolve()) for s in topic.get("seed", [])]
        topic["channels"] = ["slack"]
        topics.append(topic)
    return base, topics


def start_daemon(config: Path, log: TextIO) -> subprocess.Popen[bytes]:
    """``python -m monitor --config CONFIG run`` with this checkout first on the path."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "run", "--grace", "20"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_daemon(proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    """SIGTERM, wait for the grace period, SIGKILL as a last resort; return the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


# -- a tiny TOML writer: config files only hold tables of scalars and lists of them ----------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{text}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _table(lines: list[str], header: str, table: Mapping[str, Any]) -> None:
    lines.append(header)
    for key, value in table.items():
        if not isinstance(value, Mapping) and not _is_table_list(value):
            lines.append(f"{key} = {_value(value)}")
    lines.append("")


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def dump_toml(data: Mapping[str, Any]) -> str:
    """Render nested dicts (two levels) and arrays of tables as TOML text."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            scalars = {k: v for k, v in value.items() if not isinstance(v, Mapping)}
            if scalars or not value:
                _table(lines, f"[{key}]", scalars)
            for sub, table in value.items():
                if isinstance(table, Mapping):
                    _table(lines, f'[{key}."{sub}"]', table)
        elif _is_table_list(value):
            for table in value:
                _table(lines, f"[[{key}]]", table)
        else:
            lines.insert(0, f"{key} = {_value(value)}")
    return "\n".join(lines) + "\n"


def mb(n: float) -> str:
    return f"{n / 1024 / 1024:.0f} MB"
