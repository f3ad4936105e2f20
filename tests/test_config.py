"""config.toml loading: the shipped file is valid, and every kind of mistake gives one clear
message naming the file, the line and the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import (
    Config,
    iter_documented_fields,
    load_config,
    parse_duration,
)
from monitor.errors import ConfigError
from tests.conftest import REPO_ROOT

WriteConfig = Callable[..., Path]

MINIMAL = """
[[feeds]]
url = "http://127.0.0.1:9/a.xml"

[[topics]]
name = "t"
descriptions = ["something"]
"""


def _error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return str(info.value)


def test_shipped_config_is_valid_and_tracks_the_seed_topics() -> None:
    config = load_config(REPO_ROOT / "config.toml", environ={})
    assert {t.name for t in config.topics} == {"nk-russia-alliance", "nk-russia-sanctions"}
    assert 20 <= len(config.feeds) <= 40
    assert {f.language for f in config.feeds} >= {"en", "id"}
    assert config.enabled_channels().keys() == {"console"}
    for topic in config.topics:
        for seed in topic.seed:
            assert config.resolve(seed).is_file()


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("15m") == 900
    assert parse_duration("2h") == 7200
    assert parse_duration("1d") == 86400
    assert parse_duration(30) == 30
    with pytest.raises(ValueError, match='expected a duration like "15m", got "fast"'):
        parse_duration("fast")


def test_bad_duration_names_file_line_and_field(write_config: WriteConfig) -> None:
    path = write_config(
        """
        [[feeds]]
        url = "http://127.0.0.1:9/1"
        [[feeds]]
        url = "http://127.0.0.1:9/2"
        [[feeds]]
        url = "http://127.0.0.1:9/3"
        [[feeds]]
        url = "http://127.0.0.1:9/4"
        interval = "fast"
        """
    )
    assert _error(path) == (
        f'{path}:9: feeds[3].interval: expected a duration like "15m", got "fast"'
    )


def test_invalid_toml_gives_line(write_config: WriteConfig) -> None:
    path = write_config('[polling]\ninterval = "15m\n')
    message = _error(path)
    assert message.startswith(f"{path}: invalid TOML:")
    assert "line 2" in message


def test_unknown_key_lists_allowed_keys(write_config: WriteConfig) -> None:
    path = write_config('[polling]\nintervall = "15m"\n')
    message = _error(path)
    assert message.startswith(f"{path}:2: polling.intervall: unknown key")
    assert "interval" in message


def test_unknown_table(write_config: WriteConfig) -> None:
    path = write_config('[pollling]\ninterval = "15m"\n')
    assert _error(path).startswith(f"{path}:1: pollling: unknown key")


def test_wrong_type(write_config: WriteConfig) -> None:
    path = write_config('[polling]\nconcurrency = "lots"\n')
    message = _error(path)
    assert message.startswith(f"{path}:2: polling.concurrency:")
    assert "integer" in message


def test_out_of_range(write_config: WriteConfig) -> None:
    path = write_config("[polling]\nconcurrency = 0\n")
    assert "polling.concurrency: Input should be greater than or equal to 1" in _error(path)


def test_missing_environment_variable(write_config: WriteConfig) -> None:
    path = write_config('[database]\nurl = "${DATABASE_URL}"\n')
    assert _error(path, environ={}) == (
        f"{path}:2: database.url: environment variable DATABASE_URL is not set "
        "(set it, or write ${DATABASE_URL:-default})"
    )


def test_missing_channel_variable_waits_until_the_channel_is_used(
    write_config: WriteConfig,
) -> None:
    """A channel's unset ${VAR} does not stop the load (read-only commands need no secret);
    the channel raises it, naming file, line, field and variable, when it is used."""
    path = write_config(
        '[alerts.slack]\nurl = "${SLACK_HOOK}"\n'
        '[alerts.ops]\ntype = "webhook"\nurl = "https://h.example/x"\nsecret = "${OPS_KEY}"\n'
    )
    config = load_config(path, environ={})
    expected = (
        f"{path}:2: alerts.slack.url: environment variable SLACK_HOOK is not set "
        "(set it, or write ${SLACK_HOOK:-default})"
    )
    assert config.alerts["slack"].unresolved == (expected,)
    with pytest.raises(ConfigError) as info:
        config.alerts["slack"].check_resolved()
    assert str(info.value) == expected
    assert config.unresolved_channel_variables() == [
        expected,
        f"{path}:6: alerts.ops.secret: environment variable OPS_KEY is not set "
        "(set it, or write ${OPS_KEY:-default})",
    ]
    with pytest.raises(ConfigError, match="OPS_KEY"):
        config.check_channels()
    resolved = load_config(path, environ={"SLACK_HOOK": "https://h.example/s", "OPS_KEY": "k"})
    resolved.check_channels()
    assert resolved.alerts["ops"].secret.get_secret_value() == "k"


def test_every_problem_is_reported_at_once(write_config: WriteConfig) -> None:
    """One message per problem, in line order: an unset variable, a bad value, an unknown
    key, an unreadable seed file, a duplicate topic and an undefined channel."""
    path = write_config(
        """
        [database]
        url = "${NO_SUCH_DB_URL}"
        [polling]
        interval = "fast"
        tick = "soon"
        colour = "blue"
        [[topics]]
        name = "t"
        seed = ["missing.txt"]
        channels = ["pager"]
        [[topics]]
        name = "t"
        descriptions = ["x"]
        """
    )
    lines = _error(path, environ={}).splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == [
        "database.url",
        "polling.interval",
        "polling.tick",
        "polling.colour",
        "topics[0].seed[0]",
        "topics[0].channels",
        "topics[1].name",
    ]
    assert lines[0].startswith(f"{path}:2: database.url: environment variable NO_SUCH_DB_URL")
    assert 'alerts channel "pager", which is not defined' in lines[5]
    assert 'topic name "t" is used twice' in lines[6]


def test_environment_interpolation_and_defaults(write_config: WriteConfig) -> None:
    path = write_config(
        """
        [database]
        url = "${DB:-sqlite:///x.db}"
        [alerts.slack]
        url = "https://hooks.example/${TOKEN}"
        """
    )
    config = load_config(path, environ={"TOKEN": "s3cret"})
    assert config.database.url == "sqlite:///x.db"
    assert config.alerts["slack"].url.get_secret_value() == "https://hooks.example/s3cret"
    assert "s3cret" not in repr(config)
    assert "s3cret" not in config.model_dump_json()


def test_unreadable_seed_file(write_config: WriteConfig) -> None:
    path = write_config('[[topics]]\nname = "t"\nseed = ["missing.txt"]\n')
    message = _error(path)
    assert message.startswith(f"{path}:3: topics[0].seed[0]: cannot read seed file")
    assert "missing.txt" in message
    assert "file not found" in message


def test_missing_required_field(write_config: WriteConfig) -> None:
    path = write_config('[[feeds]]\nname = "no url"\n')
    assert _error(path) == f"{path}:1: feeds[0].url: required field is missing"


def test_bad_feed_url(write_config: WriteConfig) -> None:
    path = write_config('[[feeds]]\nurl = "ftp://example.org/feed"\n')
    assert 'feeds[0].url: expected an http(s) URL, got "ftp://example.org/feed"' in _error(path)


def test_topic_refers_to_undefined_channel(write_config: WriteConfig) -> None:
    path = write_config('[[topics]]\nname = "t"\ndescriptions = ["x"]\nchannels = ["pager"]\n')
    assert 'alerts channel "pager", which is not defined' in _error(path)


def test_enabled_email_without_host(write_config: WriteConfig) -> None:
    path = write_config('[alerts.email]\nrecipients = ["a@example.org"]\n')
    assert f"{path}:1: alerts.email: an enabled email channel needs smtp_host" == _error(path)


def test_duplicate_topic_names(write_config: WriteConfig) -> None:
    path = write_config(
        '[[topics]]\nname = "t"\ndescriptions = ["x"]\n[[topics]]\nname = "t"\ndescriptions = ["y"]\n'
    )
    assert 'topic name "t" is used twice' in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.toml").endswith(
        "file not found (use --config PATH or $MONITOR_CONFIG)"
    )


def test_relative_paths_resolve_against_config_folder(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "s.txt").write_text("seed text", encoding="utf-8")
    path = write_config(
        MINIMAL + 'seed = ["seeds/s.txt"]\n[database]\nurl = "sqlite:///data/m.db"\n'
    )
    config = load_config(path, environ={})
    assert config.resolve(config.topics[0].seed[0]) == tmp_path / "seeds" / "s.txt"
    assert config.database_url == f"sqlite:///{(tmp_path / 'data' / 'm.db').resolve()}"


def test_defaults_work_without_any_file_content(write_config: WriteConfig) -> None:
    config = load_config(write_config(""), environ={})
    assert isinstance(config, Config)
    assert config.polling.interval == 900
    assert config.enabled_channels().keys() == {"console"}


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [path for path, _help in iter_documented_fields() if f"`{path}`" not in readme]
    assert not missing, f"settings missing from README's configuration reference: {missing}"
    assert all(help_text for _path, help_text in iter_documented_fields())


def test_sqlite_path_is_read_from_a_url_in_one_place(tmp_path: Path) -> None:
    from monitor.config import sqlite_path

    assert sqlite_path("sqlite:///data/monitor.db?timeout=5") == "data/monitor.db"
    assert sqlite_path("sqlite:////var/lib/monitor.db") == "/var/lib/monitor.db"
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("postgresql+psycopg://u:p@h/db") is None
    path = tmp_path / "config.toml"
    path.write_text('[database]\nurl = "sqlite:///data/monitor.db"\n')
    assert load_config(path).database_url == f"sqlite:///{(tmp_path / 'data/monitor.db').resolve()}"
