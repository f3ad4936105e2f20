"""A new topic from a seed article: fetch or read it, save it under ``seeds/``, add the table.

``monitor topics add NAME --seed-url URL`` runs :func:`add_topic`, which either does everything
or changes nothing:

| step | what happens when it fails (or the process dies there) |
|---|---|
| 1. check the name, the options, the channels against the loaded config | nothing written |
| 2. fetch the page (polling limits) and extract its article, or read ``--seed-file`` | nothing written |
| 3. create ``seeds/<name>.txt`` exclusively (never over an existing file) | nothing written |
| 4. write the article into it | the new seed file (and a ``seeds/`` folder made for it) is removed |
| 5. insert the ``[[topics]]`` table, validate the whole new config (seed file included) | as 4; ``config.toml`` untouched |
| 6. rename the validated text over ``config.toml`` (atomic) | before the rename: as 4; a kill between 3 and 6 can leave an unused seed file, never a half-written config |
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor import config_edit
from monitor.config import Config, TopicConfig
from monitor.errors import MonitorError
from monitor.feeds.extract import ExtractedArticle, extract_article, fetch_article, is_html
from monitor.scoring import normalize

SEEDS_DIR = "seeds"
MAX_SLUG_CHARS = 60
# what a table without threshold/channels would get; written out so the user sees them
_DEFAULTS = TopicConfig(name="-", descriptions=["-"])
DEFAULT_THRESHOLD = _DEFAULTS.threshold
DEFAULT_CHANNELS = tuple(_DEFAULTS.channels)


@dataclass(frozen=True)
class NewTopic:
    """What the user asked for; empty fields are left to the config's defaults."""

    name: str
    seed_url: str = ""
    seed_file: Path | None = None
    descriptions: tuple[str, ...] = ()
    require: tuple[tuple[str, ...], ...] = ()
    threshold: float | None = None
    channels: tuple[str, ...] = ()
    source: str = ""  # where the seed came from, for the comment (default: url or file)
    added_by: str = "`monitor topics add`"


@dataclass(frozen=True)
class AddedTopic:
    """What was written: the topic's name, its seed file (relative to the config) and article."""

    name: str
    config: Config
    seed: str = ""
    article: ExtractedArticle | None = None


def add_topic(config: Config, new: NewTopic) -> AddedTopic:
    """Add ``new`` to ``config.path`` with its seed saved under ``seeds/``; all or nothing.

    Raises :class:`MonitorError` (one line, naming what is wrong) and then has written nothing.
    """
    _check_request(config, new)
    seeds_dir = config.base_dir / SEEDS_DIR
    if new.seed_file is not None and _inside(new.seed_file, seeds_dir):
        read_seed_file(new.seed_file)  # the same checks as a copied file
        return _write_table(config, new, _relative(config, new.seed_file), None)
    article = seed_article(config, new)
    if article is None:
        return _write_table(config, new, "", None)
    created_dir = not seeds_dir.exists()
    path = reserve_seed_file(seeds_dir, new.name)
    try:
        path.write_text(article.as_text(), encoding="utf-8")
        return _write_table(config, new, f"{SEEDS_DIR}/{path.name}", article)
    except BaseException:
        _remove(path, seeds_dir if created_dir else None)
        raise


def check_name(config: Config, name: str) -> None:
    """MonitorError unless ``name`` is a valid topic name that no topic of ``config`` has."""
    if not name.strip() or name != name.strip() or "\n" in name:
        raise MonitorError(f'topic name "{name}" must be non-empty, on one line, unpadded')
    if any(t.name == name for t in config.topics):
        raise MonitorError(
            f'topic "{name}" already exists in {config.path}; choose another name '
            "(or edit its table there)"
        )


def _check_request(config: Config, new: NewTopic) -> None:
    check_name(config, new.name)
    if new.seed_url and new.seed_file is not None:
        raise MonitorError("give --seed-url or --seed-file, not both")
    if not (new.seed_url or new.seed_file is not None or new.descriptions):
        raise MonitorError("give --seed-url URL, --seed-file PATH or at least one --description")
    for channel in new.channels:
        if channel not in config.alerts:
            defined = ", ".join(sorted(config.alerts)) or "none"
            raise MonitorError(f'--channel "{channel}" is not defined under [alerts] ({defined})')


def seed_article(config: Config, new: NewTopic) -> ExtractedArticle | None:
    """The article behind ``--seed-url`` or ``--seed-file``; None when the topic has no seed."""
    if new.seed_url:
        return fetch_article(new.seed_url, config.polling)
    if new.seed_file is not None:
        return read_seed_file(new.seed_file)
    return None


def read_seed_file(path: Path) -> ExtractedArticle:
    """A seed from a local file: an HTML page has its article extracted, text is kept as is."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise MonitorError(f"--seed-file {path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".html", ".htm", ".xhtml") or is_html(body, ""):
        return extract_article(body, str(path))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MonitorError(f"--seed-file {path}: not UTF-8 text (save it as UTF-8)") from None
    lines = [" ".join(line.split()) for line in text.splitlines()]
    paragraphs = tuple(line for line in lines if line)
    if not paragraphs:
        raise MonitorError(f"--seed-file {path}: the file has no text")
    return ExtractedArticle(url="", title="", paragraphs=paragraphs)


def seed_file_stem(name: str) -> str:
    """A safe file name stem for a topic name: ASCII letters, digits and dashes only.

    No path separators, no leading dot, no reserved names: ``../../etc/passwd`` becomes
    ``etc-passwd``, ``Korea Utara & Rusia`` becomes ``korea-utara-rusia``; a name with no
    ASCII letter at all (``북한``) becomes ``topic``.
    """
    ascii_name = normalize(name).encode("ascii", "ignore").decode()  # accents and ł folded
    stem = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:MAX_SLUG_CHARS]
    return stem.strip("-") or "topic"


def reserve_seed_file(folder: Path, name: str) -> Path:
    """Create ``folder/<stem>.txt`` (or ``<stem>-2.txt``...) exclusively and return it.

    An existing file is never overwritten: it may be another topic's seed."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = seed_file_stem(name)
    for n in range(1, 1000):
        path = folder / (f"{stem}.txt" if n == 1 else f"{stem}-{n}.txt")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return path
    raise MonitorError(f"{folder}: no free seed file name for {stem}.txt")


def _write_table(
    config: Config, new: NewTopic, seed: str, article: ExtractedArticle | None
) -> AddedTopic:
    values: dict[str, Any] = {"name": new.name}
    if seed:
        values["seed"] = [seed]
    if new.descriptions:
        values["descriptions"] = list(new.descriptions)
    if new.require:
        values["require"] = [list(group) for group in new.require]
    values["threshold"] = new.threshold if new.threshold is not None else DEFAULT_THRESHOLD
    values["channels"] = list(new.channels) or list(DEFAULT_CHANNELS)
    updated = config_edit.add_topic_table(config.path, values, _provenance(new))
    return AddedTopic(name=new.name, config=updated, seed=seed, article=article)


def _provenance(new: NewTopic) -> str:
    """A comment above the new table saying where its seed came from (one line, no controls)."""
    source = new.source or new.seed_url or (str(new.seed_file) if new.seed_file is not None else "")
    source = "".join(c for c in source if c.isprintable())
    return f"added by {new.added_by}; seed from {source}" if source else ""


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _relative(config: Config, path: Path) -> str:
    return path.resolve().relative_to(config.base_dir.resolve()).as_posix()


def _remove(path: Path, folder: Path | None) -> None:
    """Undo a reserved seed file (and the seeds folder when it was made for it)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if folder is not None:
        with contextlib.suppress(OSError):
            folder.rmdir()


@dataclass(frozen=True)
class TopicEdit:
    """New values for an existing topic; a new seed article replaces its seed files."""

    name: str
    descriptions: tuple[str, ...]
    require: tuple[tuple[str, ...], ...]
    threshold: float
    channels: tuple[str, ...]
    article: ExtractedArticle | None = None


def edit_topic(config: Config, edit: TopicEdit) -> Config:
    """Change a topic's table in ``config.path`` in place (its other keys and comments stay);
    all or nothing, like :func:`add_topic`. Returns the new config."""
    if not any(t.name == edit.name for t in config.topics):
        raise MonitorError(f'no topic "{edit.name}" in {config.path}')
    for channel in edit.channels:
        if channel not in config.alerts:
            defined = ", ".join(sorted(config.alerts)) or "none"
            raise MonitorError(f'channel "{channel}" is not defined under [alerts] ({defined})')
    values: dict[str, Any] = {
        "descriptions": list(edit.descriptions) or None,
        "require": [list(g) for g in edit.require] or None,
        "threshold": edit.threshold,
        "channels": list(edit.channels) or list(DEFAULT_CHANNELS),
    }
    if edit.article is None:
        return config_edit.update_topic_table(config.path, edit.name, values)
    seeds_dir = config.base_dir / SEEDS_DIR
    created_dir = not seeds_dir.exists()
    path = reserve_seed_file(seeds_dir, edit.name)
    try:
        path.write_text(edit.article.as_text(), encoding="utf-8")
        values["seed"] = [f"{SEEDS_DIR}/{path.name}"]
        return config_edit.update_topic_table(config.path, edit.name, values)
    except BaseException:
        _remove(path, seeds_dir if created_dir else None)
        raise
