"""Writes to ``config.toml``: a ``[[topics]]`` table added, edited, renamed or deleted, with the
rest of the file untouched (deleting cuts the table's own lines out of the text, comments
around it kept: :func:`delete_topic_table`).

``config.toml`` is the user's file: its comments, its order and its blank lines are theirs. So a
command that adds to it (``monitor topics add``) must leave every other byte as it was:

* tomlkit (the only module that imports it) parses the file with its layout and decides where
  the new table goes: after the last ``[[topics]]`` table, or at the end when there is none;
* the new text is then the old text with one block inserted at that point, and nothing else:
  the block is cut out of tomlkit's rendering and spliced into the original, with exactly one
  blank line on each side; where tomlkit would move other lines, the block goes at the end of
  the file instead (``[[topics]]`` elements may stand anywhere in TOML);
* the new text must validate (:func:`monitor.config.parse_config`, the same checks as start-up,
  seed files included) before anything is written;
* the write is atomic: a temporary file in the same folder, flushed to disk, then renamed over
  ``config.toml`` (keeping its permissions). A crash leaves the old file or the new one, never
  half of one; a failed validation leaves the old file byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Table
from tomlkit.toml_document import TOMLDocument

from monitor.config import Config, parse_config
from monitor.errors import ConfigError

# Keys written in this order, the order the shipped config uses.
TOPIC_KEY_ORDER = (
    "name",
    "seed",
    "descriptions",
    "positive_examples",
    "negative_examples",
    "require",
    "exclude",
    "threshold",
    "channels",
)


def topic_table(values: Mapping[str, Any], comment: str = "") -> Table:
    """A ``[[topics]]`` element: keys in the usual order, long lists one item a line."""
    table = tomlkit.table()
    if comment:
        table.add(tomlkit.comment(comment))
    for key in sorted(values, key=_key_rank):
        table.add(key, _value(values[key]))
    return table


def _key_rank(key: str) -> tuple[int, str]:
    return (TOPIC_KEY_ORDER.index(key), key) if key in TOPIC_KEY_ORDER else (99, key)


def _value(value: Any) -> Any:
    """Lists of more than one text, or of lists, are written one item a line."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        array = tomlkit.array()
        array.extend([_value(v) for v in value])
        if len(value) > 1 and any(not isinstance(v, str) or len(v) > 30 for v in value):
            array.multiline(True)
        return array
    return value


def insert_topic(text: str, table: Table) -> str:
    """``text`` with ``table`` inserted as a new ``[[topics]]`` element; nothing else changes.

    The table goes right after the last ``[[topics]]`` table, where tomlkit puts it; when
    tomlkit's rendering would move other lines (it regroups a table split around the topics,
    such as ``[alerts.a]`` before them and ``[alerts.b]`` after), it goes at the end of the file
    instead, which TOML reads the same. Raises :class:`ConfigError` when ``text`` is not TOML.
    """
    document = _parse(text)
    topics = _topics(document)
    if topics is None:
        return _append(text, table)
    topics.append(table)
    return _splice(text, tomlkit.dumps(document)) or _append(text, table)


def _append(text: str, table: Table) -> str:
    """``text`` and, after one blank line, ``table`` as a ``[[topics]]`` element."""
    aot = tomlkit.aot()
    aot.append(table)
    block = tomlkit.dumps({"topics": aot}).strip("\n") + "\n"
    if not text.strip():
        return block
    text = text if text.endswith("\n") else text + "\n"
    return text + ("" if text.endswith("\n\n") else "\n") + block


def _splice(original: str, rendered: str) -> str | None:
    """Put the block tomlkit inserted into ``original`` back into ``original`` itself, with one
    blank line on each side, so that every other character stays the original's; None when
    the rendering is not ``original`` with one block inserted.

    tomlkit renders ``original[:k] + block + original[k:]`` with ``k`` at a line start; ``k`` is
    found as the latest line start, within the common prefix, whose rest of the original ends
    the rendering.
    """
    start = len(os.path.commonprefix([original, rendered]))  # noqa: RUF071 (characters, not paths)
    start = original.rfind("\n", 0, start) + 1 if start < len(original) else start
    while start > 0 and not rendered.endswith(original[start:]):
        start = original.rfind("\n", 0, start - 1) + 1
    before, after = original[:start], original[start:]
    if not (rendered.endswith(after) and rendered.startswith(before)):
        return None
    if len(rendered) <= len(before) + len(after):
        return None
    block = rendered[len(before) : len(rendered) - len(after)].strip("\n")
    if not block.startswith("[[topics]]"):
        return None
    if before and not before.endswith("\n"):
        before += "\n"  # a file whose last line has no newline gets one
    lead = "" if not before or before.endswith("\n\n") else "\n"
    trail = "\n" if not after or after.startswith("\n") else "\n\n"
    return before + lead + block + trail + after


def validate(text: str, config_path: Path) -> Config:
    """The config ``text`` would load as when written to ``config_path`` (or ConfigError)."""
    return parse_config(text, config_path)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: temporary file, fsync, rename (same folder, same mode)."""
    folder = path.resolve().parent
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _parse(text: str) -> TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigError(f"cannot edit the config: invalid TOML: {exc}") from None


def _read(config_path: Path) -> tuple[str, TOMLDocument]:
    """The file's text and its tomlkit document (ConfigError when unreadable or not TOML)."""
    try:
        original = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc}") from None
    return original, _parse(original)


def _topics(document: TOMLDocument) -> AoT | None:
    """The document's ``[[topics]]`` tables (None when it has none)."""
    topics = document.get("topics")
    if topics is not None and not isinstance(topics, AoT):
        raise ConfigError("cannot edit the config: `topics` is not a list of [[topics]] tables")
    return topics


def _topic_index(document: TOMLDocument, name: str, config_path: Path) -> tuple[AoT, int]:
    """Where the ``[[topics]]`` table named ``name`` is: its array and its index there."""
    topics = _topics(document)
    for index, table in enumerate(topics or ()):
        if table.get("name") == name:
            assert topics is not None
            return topics, index
    raise ConfigError(f'{config_path}: no [[topics]] table named "{name}"')


def _write_valid(config_path: Path, new_text: str, refusal: str) -> Config:
    """Write ``new_text`` when it validates; otherwise ConfigError ``refusal: <why>`` and the
    file is left as it was (the line named is in the text that was not written)."""
    try:
        config = validate(new_text, config_path)
    except ConfigError as exc:
        raise ConfigError(f"{refusal}: {exc}") from None
    write_atomically(config_path, new_text)
    return config


def add_topic_table(config_path: Path, values: Mapping[str, Any], comment: str = "") -> Config:
    """Insert a ``[[topics]]`` table into ``config_path`` when the result validates.

    Returns the new config. On any error (unreadable file, invalid result) the file is left
    exactly as it was and :class:`ConfigError` is raised naming the file, line and field.
    """
    original, _ = _read(config_path)
    new_text = insert_topic(original, topic_table(values, comment))
    return _write_valid(config_path, new_text, "not added, the new table would be invalid")


def update_topic_table(config_path: Path, name: str, values: Mapping[str, Any]) -> Config:
    """Set ``values`` in the ``[[topics]]`` table named ``name``, in place: its other keys,
    its comments and the rest of the file stay as they were (tomlkit keeps the layout of what
    it does not touch). A key whose value is None is removed. Validated before the atomic
    write, like :func:`add_topic_table`; on any error the file is unchanged."""
    _, document = _read(config_path)
    topics, index = _topic_index(document, name, config_path)
    table = topics[index]
    for key, value in values.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = _value(value)
    new_text = tomlkit.dumps(document)
    return _write_valid(config_path, new_text, "not saved, the edited table would be invalid")


def delete_topic_table(config_path: Path, name: str) -> Config:
    """Remove the ``[[topics]]`` table named ``name``; every comment outside it stays.

    The table's lines (its header to its last key, the comments between its keys included)
    are cut out of the original text, and one blank line is left where it stood; comment
    lines around it are kept, a comment just above the next header being that table's.
    tomlkit checks the cut: the result must parse to the document with the table removed,
    else tomlkit's own rendering is written (it keeps the file's values, and the comments
    outside the removed table but for the ones between the two tables). Validated and
    written atomically like :func:`add_topic_table`.
    """
    original, document = _read(config_path)
    topics, index = _topic_index(document, name, config_path)
    del topics[index]
    if not topics:
        del document["topics"]
    new_text = _cut_table(original, index)
    if new_text is None or not _reads_as(new_text, document):
        new_text = tomlkit.dumps(document)
    return _write_valid(config_path, new_text, "not deleted, the config would be invalid")


def rename_topic_table(config_path: Path, name: str, new_name: str) -> Config:
    """Set the ``name`` of the ``[[topics]]`` table named ``name`` to ``new_name``; only that
    value changes (its inline comment and the rest of the file stay). Validated (a name used
    twice is refused) and written atomically like :func:`add_topic_table`."""
    _, document = _read(config_path)
    topics, index = _topic_index(document, name, config_path)
    topics[index]["name"] = new_name
    new_text = tomlkit.dumps(document)
    return _write_valid(config_path, new_text, "not renamed, the config would be invalid")


def _cut_table(original: str, index: int) -> str | None:
    """``original`` without the lines of its ``index``-th ``[[topics]]`` table (header to last
    key) and with one blank line where they were; None when its header is not found."""
    lines = original.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _TOPICS_HEADER.match(line)]
    if index >= len(headers):
        return None
    start = headers[index]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    while end > start + 1 and _is_note(lines[end - 1]):
        end -= 1  # trailing blank and comment lines are not the table's
    before, after = lines[:start], lines[end:]
    while before and not before[-1].strip():
        before.pop()
    while after and not after[0].strip():
        after.pop(0)
    if before and not before[-1].endswith("\n"):
        before[-1] += "\n"
    return "".join(before) + ("\n" if before and after else "") + "".join(after)


def _reads_as(text: str, document: TOMLDocument) -> bool:
    """``text`` is TOML holding the values of ``document``."""
    try:
        return _parse(text).unwrap() == document.unwrap()
    except ConfigError:
        return False


_TOPICS_HEADER = re.compile(r"^\[\[\s*topics\s*\]\]\s*(#.*)?$")


def _is_note(line: str) -> bool:
    """A blank line or a comment line."""
    return not line.strip() or line.lstrip().startswith("#")


def set_channel_enabled(config_path: Path, name: str, enabled: bool) -> Config:
    """Set ``enabled`` in the ``[alerts.<name>]`` table, in place (tomlkit keeps the rest of
    the file as it was). Validated and written atomically like :func:`add_topic_table`: a
    channel enabled while one of its ``${VAR}``s is unset is refused, naming the variable."""
    _, document = _read(config_path)
    alerts = document.get("alerts")
    table = alerts.get(name) if isinstance(alerts, Mapping) else None
    if not isinstance(table, MutableMapping):
        raise ConfigError(f"{config_path}: no [alerts.{name}] table")
    table["enabled"] = enabled
    new_text = tomlkit.dumps(document)
    try:
        config = validate(new_text, config_path)
    except ConfigError as exc:
        raise ConfigError(f"not changed, the config would be invalid: {exc}") from None
    if enabled and config.alerts[name].unresolved:
        raise ConfigError("not enabled: " + "; ".join(config.alerts[name].unresolved))
    write_atomically(config_path, new_text)
    return config
