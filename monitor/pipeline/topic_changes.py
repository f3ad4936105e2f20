"""Delete or rename a topic: its ``[[topics]]`` table in config.toml and its stored row together.

Config sync (:func:`monitor.store.queries.sync_topics`) keys topics by name: a topic missing
from the config is marked inactive (its matches, stories and judgements stay, and it shows as
"not in config" with its history), and a name it has not seen gets a new row. So:

* **delete** removes the table and marks the row inactive at once, as removing the table by
  hand and restarting would; its seed files under ``seeds/`` stay (they are the user's);
* **rename** renames the row in the same transaction as the file, so the history follows the
  new name instead of staying behind on an inactive topic. A stored topic of the new name,
  even an inactive one, refuses the rename (its history would be merged).

| step of a rename | what happens when it fails (or the process dies there) |
|---|---|
| 1. check the names against the loaded config | nothing written |
| 2. rename the row (uncommitted) | rolled back; config.toml untouched |
| 3. write the renamed table, validated, atomically | rolled back; config.toml untouched |
| 4. commit | config.toml is written back as it was; a kill between 3 and 4 leaves the new name in the file and the old one in the database: the next config sync starts a new topic and the old one's history stays under the old name, inactive (rename the row back by hand, or the table back) |

A daemon in another process reads the new config on SIGHUP or restart. Until then it keeps
the old name in memory, and matching skips the topic (it scores only topics with an active
row of their name: :func:`monitor.store.matches.active_topic_ids`); a deleted topic is
skipped the same way. Nothing is orphaned: its reload reads the file, which has the new name.
"""

from __future__ import annotations

from monitor import config_edit
from monitor.config import Config
from monitor.errors import MonitorError
from monitor.pipeline.runtime import Runtime
from monitor.pipeline.seeding import check_name
from monitor.store import db, queries


def _known(config: Config, name: str) -> None:
    if not any(t.name == name for t in config.topics):
        raise MonitorError(f'no topic "{name}" in {config.path}')


def delete_topic(runtime: Runtime, name: str) -> Config:
    """Remove topic ``name`` from config.toml (comments elsewhere kept) and mark its stored
    row inactive; its matches stay. Returns the new config (the caller puts it in use)."""
    _known(runtime.config, name)
    config = config_edit.delete_topic_table(runtime.config.path, name)
    with db.session_scope(runtime.sessions) as s:
        queries.sync_topics(s, config.topics)
    return config


def rename_topic(runtime: Runtime, name: str, new_name: str) -> Config:
    """Rename topic ``name`` to ``new_name`` in config.toml and in the database together, so
    its stored matches follow it. Returns the new config (the caller puts it in use)."""
    config = runtime.config
    _known(config, name)
    check_name(config, new_name)
    original = config.path.read_bytes()
    written = False
    try:
        with db.session_scope(runtime.sessions) as s:
            queries.rename_topic(s, name, new_name)
            config = config_edit.rename_topic_table(config.path, name, new_name)
            written = True
            queries.sync_topics(s, config.topics)
    except BaseException:
        if written:  # the database kept the old name: so does the file
            config_edit.write_atomically(config.path, original.decode("utf-8"))
        raise
    return config
