"""What `pip install .` ships: a wheel installed into a fresh directory must be able to migrate
(the migrations travel inside the package as ``monitor._migrations``), and every folder of the
package must be listed in pyproject.toml, since packages are listed rather than found."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from monitor.store import db

REPO = Path(__file__).resolve().parent.parent
# what the Dockerfile's build stage copies before `pip install .`
SOURCES = ("pyproject.toml", "README.md", "monitor", "migrations")


def _listed_packages() -> set[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["tool"]["setuptools"]["packages"])


def test_every_folder_of_the_package_is_listed_in_pyproject() -> None:
    folders = {
        ".".join(path.relative_to(REPO).parts)
        for path in (REPO / "monitor").rglob("*")
        if path.is_dir() and path.name != "__pycache__" and any(path.iterdir())
    }
    listed = _listed_packages()
    assert folders | {"monitor"} <= listed, f"add to pyproject.toml: {folders - listed}"
    assert {"monitor._migrations", "monitor._migrations.versions"} <= listed


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so the checkout gets no build/ or egg-info."""
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path / "dist"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        dist,
        source,
        cwd=tmp_path,
    )
    [wheel] = dist.glob("monitor-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A new venv holding only the wheel; the heavy dependencies (torch, ...) are borrowed from
    the test interpreter's site-packages through a .pth line (a path line, so that folder's own
    .pth files, such as an editable install of monitor, are not run)."""
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
        ).strip()
    )
    (purelib / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        wheel,
        cwd=tmp_path,
    )
    return venv


def test_wheel_installed_in_a_fresh_directory_runs_db_upgrade(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    venv = _fresh_venv(tmp_path, wheel)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    (workdir / "config.toml").write_text('[database]\nurl = "sqlite:///new.db"\n')
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "MONITOR_MIGRATIONS_DIR", "MONITOR_CONFIG")
        and not k.startswith("MONITOR_DATABASE")
    }
    location = _run(
        venv / "bin" / "python", "-c", "import monitor; print(monitor.__file__)", cwd=workdir
    )
    assert Path(location.strip()).is_relative_to(venv), location

    _run(venv / "bin" / "monitor", "db", "upgrade", cwd=workdir, env=env)

    url = f"sqlite:///{workdir / 'new.db'}"
    head = ScriptDirectory.from_config(db.alembic_config(url)).get_current_head()
    engine = db.make_engine(url, null_pool=True)
    try:
        assert db.current_revision(engine) == head
        assert inspect(engine).has_table("feeds")
    finally:
        engine.dispose()
    current = _run(venv / "bin" / "monitor", "db", "current", cwd=workdir, env=env)
    assert head in current


def test_dockerfile_and_readme_install_cpu_torch_first_and_copy_the_migrations() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    build_stage = dockerfile.split("\nFROM ", 2)[1]
    for name in SOURCES:
        assert f"COPY {name}" in build_stage or f" {name} " in build_stage, name
    assert build_stage.index('"$TORCH_SPEC"') < build_stage.index("pip install .")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    systemd = readme.split("### Running under systemd", 1)[1].split("###", 1)[0]
    installs = [line.split("#")[0].split() for line in systemd.splitlines() if "bin/pip " in line]
    assert "torch==2.13.0" in installs[0], installs
    assert any(words[-1] == "." for words in installs[1:]), installs
