"""Every command and group, enumerated from the typer app, meets usage mistakes with one short
line on stderr and exit code 2, never a traceback: an unknown option, a missing argument (or
an option without its value), and a bad value for every typed parameter.

The commands run in-process through :func:`monitor.cli.main` (the console-script entry point,
so its error handler is what is tested); a new command or option is covered without editing
this file. All of these mistakes are caught while the command line is parsed, so no config
file or database is needed.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from monitor.cli import app, common, main, query_cmd

from .test_cli import monitor


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    mentions: str = ""  # the parameter the message must name

    def __str__(self) -> str:
        return " ".join(self.argv) or "(no arguments)"


def _walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app), ()))

# A value each parser accepts, to fill the other required parameters of a command.
GOOD_PARSED = {
    common.duration: "1m",
    common.database_id: "1",
    common.match_id: "m1",
    common.feed_key: "1",
    query_cmd.when: "7d",
    query_cmd.show_key: "a1",
}

# A value each parser refuses, where "x!" would pass (a feed may be named "x!").
BAD_PARSED = {common.feed_key: "99999999999999999999"}


def _annotation(param: Any) -> Any:
    annotation = param.type_descriptor.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    is_optional = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return args[0] if is_optional and len(args) == 1 else annotation


def _is_checked(param: Any) -> bool:
    """Whether the parameter's values are checked (so a bad value exists)."""
    if param.type_descriptor.parameter_info.parser is not None:
        return True
    annotation = _annotation(param)
    return typing.get_origin(annotation) is typing.Literal or annotation in (int, float)


def _good_value(param: Any) -> str:
    parser = param.type_descriptor.parameter_info.parser
    if parser is not None:
        return GOOD_PARSED.get(parser, "1")
    annotation = _annotation(param)
    if typing.get_origin(annotation) is typing.Literal:
        return str(typing.get_args(annotation)[0])
    return "1" if annotation in (int, float) else "x"


def _bad_value(param: Any) -> str:
    return BAD_PARSED.get(param.type_descriptor.parameter_info.parser, "x!")


def _is_argument(param: Any) -> bool:
    return type(param).__name__.endswith("Argument")


def _build(command: Any, path: tuple[str, ...], bad: Any = None) -> tuple[str, ...]:
    """``path``, a valid value for every required parameter, and a bad one for ``bad``;
    positional arguments in their declared order."""
    argv = path
    for param in command.params:
        if param is not bad and not param.required:
            continue
        value = _bad_value(param) if param is bad else _good_value(param)
        argv = (*argv, value) if _is_argument(param) else (*argv, param.opts[0], value)
    return argv


def _extra(path: tuple[str, ...], command: Any) -> Case:
    """Every positional argument given, then one too many."""
    argv = _build(command, path)
    for param in command.params:
        if _is_argument(param) and not param.required:
            argv = (*argv, _good_value(param))
    return Case((*argv, "unexpected"), "unexpected")


def _leaf_cases(path: tuple[str, ...], command: Any) -> Iterator[Case]:
    yield Case((*_build(command, path), "--no-such-option"), "--no-such-option")
    required = [p for p in command.params if p.required]
    valued = [p for p in command.params if not _is_argument(p) and not p.is_flag]
    if required:
        yield Case(path, _name(required[0]))
    elif valued:
        yield Case((*path, valued[-1].opts[0]), valued[-1].opts[0])
    else:
        yield _extra(path, command)
    for param in command.params:
        if _is_checked(param):
            yield Case(_build(command, path, bad=param), _name(param))


def _name(param: Any) -> str:
    """How typer's messages name a parameter."""
    return (param.metavar or param.name) if _is_argument(param) else param.opts[0]


def _group_cases(path: tuple[str, ...], group: Any) -> Iterator[Case]:
    yield Case((*path, "--no-such-option"), "--no-such-option")
    yield Case((*path, "nosuchcmd"), "nosuchcmd")
    for param in group.params:
        if not param.is_flag:
            yield Case((*path, param.opts[0]), param.opts[0])  # an option without its value
        if _is_checked(param):
            yield Case((*path, param.opts[0], "x!", "config", "check"), param.opts[0])


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for path, command in COMMANDS:
        is_group = bool(getattr(command, "commands", None))
        cases += _group_cases(path, command) if is_group else _leaf_cases(path, command)
    return cases


def run_main(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["monitor", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


def test_every_command_is_enumerated() -> None:
    """The walk reaches nested commands (a broken walk would make the next test vacuous)."""
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"run", "matches", "alerts test", "feeds add", "topics preview", "config check"} <= (
        paths
    )
    assert len(all_cases()) >= 3 * len(COMMANDS) - 10


@pytest.mark.parametrize("case", all_cases(), ids=str)
def test_usage_mistake_is_one_line_and_exit_2(
    case: Case,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here: nothing may get as far as loading one
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    code, _out, err = run_main(case.argv, capsys, monkeypatch)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert len(lines[0]) <= 240, err
    assert case.mentions.lower() in lines[0].lower(), err
    assert "Traceback" not in err


def test_group_without_a_command_shows_its_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for path, command in COMMANDS:
        if getattr(command, "commands", None):
            code, out, err = run_main(path, capsys, monkeypatch)
            assert code == 2, path
            assert "Usage: monitor" in out, path
            assert err == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("topics", "preview", "--topic"), "Option '--topic' requires an argument"),
        (("feedback", "x5", "irrelevant"), 'expected a match id like 42 or m42, got "x5"'),
        (("feedback", "5", "maybe"), "'maybe' is not one of 'relevant', 'irrelevant'"),
        (("alerts", "test"), "Missing option '--channel'"),
        (("nosuchcmd",), "No such command 'nosuchcmd'"),
        (("health", "--max-age", "fast"), 'expected a duration like "15m", got "fast"'),
        (("run", "--grace", "fast"), 'expected a duration like "15m", got "fast"'),
        (("matches", "--since", "99999999d"), "goes back further than the calendar does"),
        (("topics", "preview", "--since", "99999999d"), "is too long (at most 36500d)"),
        (("feeds", "add", "http://x/", "--interval", "fast"), 'got "fast"'),
        (("alerts", "retry", "99999999999999999999"), "ids run from 1 to 9223372036854775807"),
        (("show", "m99999999999999999999"), "expected an article id (a123 or 123)"),
        (("matches", "--feed", "99999999999999999999"), "ids run from 1 to"),
        (("feeds", "remove", "99999999999999999999"), "ids run from 1 to"),
    ],
)
def test_the_reported_mistakes(
    argv: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _out, err = run_main(argv, capsys, monkeypatch)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_path_has_no_traceback(tmp_path: Path) -> None:
    """The same through `python -m monitor`, as a user runs it."""
    result = monitor("matches", "--since", "99999999d", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: Invalid value for '--since'")
    assert "Traceback" not in result.stderr


def test_help_texts_show_square_brackets() -> None:
    """Help is plain text: `[alerts.<name>]` is not eaten as rich markup."""
    result = monitor("alerts", "test", "--help")
    assert "Channel name from [alerts.<name>]." in " ".join(result.stdout.split())
