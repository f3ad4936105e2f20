"""`monitor topics add`: a topic from a seed page served by a real local server, all or nothing.

The pages are written for these tests (tests/fixtures/pages/): an article wrapped in a cookie
banner, a navigation menu, a comment section and a footer, and a page with no article at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import config_edit
from monitor.config import load_config
from monitor.pipeline.seeding import seed_file_stem
from tests.conftest import FIXTURES, REPO_ROOT
from tests.support.httpserver import LocalServer, Reply

PAGES = FIXTURES / "pages"
ARTICLE_PAGE = (PAGES / "article_with_clutter.html").read_bytes()
NO_ARTICLE_PAGE = (PAGES / "no_article.html").read_bytes()
HTML = {"Content-Type": "text/html; charset=utf-8"}
ARTICLE_SENTENCES = (
    "The ferry linking Lakeside harbour with the island of Merrow resumed its timetable",
    "Engineers from the county council rebuilt the landing stage",
    "the damaged piles could be recycled as breakwater material",
)
CLUTTER = (
    "cookies",  # the banner
    "Sport pages",  # the navigation
    "Subscribe to the Courier",
    "Dorothy",  # the comments
    "bring back the evening crossing",
    "Reader comments",
    "Copyright",  # the footer
    "Privacy policy",
)

# A config with comments and blank lines in odd places, and a table after the topics.
CONFIG = """\
# my monitor config: comments and layout must survive an edit
[database]
url = "sqlite:///monitor.db"   # next to this file

[alerts.console]
type = "console"

# --- topics ---
[[topics]]
name = "existing"          # the first topic
descriptions = [
  "Something that already exists",   # a comment inside an array
]
threshold = 0.4

[alerts.desk]   # a channel after the topics
type = "console"
"""


def monitor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(cwd / "config.toml"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def site() -> Iterator[LocalServer]:
    with LocalServer() as server:
        server.route("/news/ferry", Reply(body=ARTICLE_PAGE, headers=HTML))
        server.route("/news/empty", Reply(body=NO_ARTICLE_PAGE, headers=HTML))
        server.route("/news/blank", Reply(body=b"", headers=HTML))
        server.route(
            "/news/report.pdf",
            Reply(body=b"%PDF-1.7 ...", headers={"Content-Type": "application/pdf"}),
        )
        server.route("/news/moved", Reply(status=301, headers={"Location": "/news/ferry"}))
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def closed_port_url() -> str:
    """A loopback URL nobody listens on: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/news/ferry"


def test_seed_url_saves_the_article_body_and_nothing_around_it(
    folder: Path, site: LocalServer
) -> None:
    result = monitor(
        "topics",
        "add",
        "harbour ferry",
        "--seed-url",
        site.url("/news/moved"),
        "--description",
        "Ferry services to the island",
        "--no-preview",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    assert "added topic harbour ferry" in result.stdout
    seed = (folder / "seeds" / "harbour-ferry.txt").read_text(encoding="utf-8")
    assert seed.startswith("Harbour ferry service returns after storm repairs\n")
    for sentence in ARTICLE_SENTENCES:
        assert sentence in seed
    for text in CLUTTER:
        assert text not in seed, f"{text!r} leaked into the seed:\n{seed}"
    # fetched with the project's fetcher: its User-Agent, the redirect followed
    request = site.requests_to("/news/ferry")[0]
    assert (request.header("User-Agent") or "").startswith("monitor/")
    topic = load_config(folder / "config.toml").topics[-1]
    assert topic.name == "harbour ferry"
    assert topic.seed == [Path("seeds/harbour-ferry.txt")]
    assert topic.descriptions == ["Ferry services to the island"]
    assert topic.channels == ["console"]


def test_the_new_table_goes_after_the_last_topic_and_every_other_byte_is_kept() -> None:
    original = CONFIG.replace("[alerts.desk]   # a channel after the topics", "[logging]  # after")
    original = original.replace('type = "console"\n', 'level = "INFO"\n', 2).replace(
        'level = "INFO"\n', 'type = "console"\n', 1
    )
    table = config_edit.topic_table(
        {"name": "new", "descriptions": ["A new topic"], "threshold": 0.5}, "added by a test"
    )
    new_text = config_edit.insert_topic(original, table)
    block = (
        '[[topics]]\n# added by a test\nname = "new"\ndescriptions = ["A new topic"]\n'
        "threshold = 0.5\n\n"
    )
    # right after the last topic, before the table that follows it, one blank line around it
    assert new_text == original.replace("[logging]", block + "[logging]")
    parsed = tomllib.loads(new_text)
    assert [t["name"] for t in parsed["topics"]] == ["existing", "new"]
    assert parsed["logging"] == {"level": "INFO"}


def test_a_table_split_around_the_topics_stays_put_and_the_topic_is_appended() -> None:
    # tomlkit would regroup [alerts.console] and [alerts.desk]: the file's order wins
    table = config_edit.topic_table({"name": "new", "descriptions": ["x"]})
    new_text = config_edit.insert_topic(CONFIG, table)
    assert new_text == CONFIG + '\n[[topics]]\nname = "new"\ndescriptions = ["x"]\n'
    parsed = tomllib.loads(new_text)
    assert [t["name"] for t in parsed["topics"]] == ["existing", "new"]
    assert parsed["alerts"]["desk"] == {"type": "console"}


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("not a url", "is not an http(s) URL"),
        ("ftp://example.org/story", "is not an http(s) URL"),
        ("closed", "cannot fetch"),
        ("/news/missing", "HTTP 404"),
        ("/news/empty", "no article text found"),
        ("/news/blank", "no article text found"),
        ("/news/report.pdf", "is not an HTML page (content type application/pdf)"),
    ],
)
def test_a_bad_seed_url_gives_one_line_and_changes_nothing(
    folder: Path, site: LocalServer, where: str, message: str
) -> None:
    url = closed_port_url() if where == "closed" else where
    url = site.url(where) if where.startswith("/") else url
    result = monitor("topics", "add", "harbour", "--seed-url", url, cwd=folder)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert (folder / "config.toml").read_text(encoding="utf-8") == CONFIG
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml"]


def test_an_existing_name_is_refused_before_anything_is_fetched(
    folder: Path, site: LocalServer
) -> None:
    result = monitor("topics", "add", "existing", "--seed-url", site.url("/news/ferry"), cwd=folder)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'error: topic "existing" already exists in {folder / "config.toml"}; choose another '
        "name (or edit its table there)"
    ]
    assert site.requests_to("/news/ferry") == []
    assert (folder / "config.toml").read_text(encoding="utf-8") == CONFIG
    assert not (folder / "seeds").exists()


def test_an_invalid_result_removes_the_saved_seed_and_keeps_the_config(
    folder: Path, site: LocalServer
) -> None:
    result = monitor(
        "topics",
        "add",
        "harbour",
        "--seed-url",
        site.url("/news/ferry"),
        "--threshold",
        "7",
        cwd=folder,
    )
    assert result.returncode == 2
    assert "not added, the new table would be invalid: " in result.stderr
    assert "topics[1].threshold" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert (folder / "config.toml").read_text(encoding="utf-8") == CONFIG
    assert not (folder / "seeds").exists()


def test_seed_file_text_and_html_are_copied_under_seeds(folder: Path, tmp_path: Path) -> None:
    text_seed = tmp_path / "elsewhere.txt"
    text_seed.write_text("Ferry returns\n\nThe island ferry runs again after repairs.\n", "utf-8")
    (folder / "seeds").mkdir()
    (folder / "seeds" / "harbour.txt").write_text("another topic's seed\n", encoding="utf-8")
    result = monitor(
        "topics", "add", "harbour", "--seed-file", str(text_seed), "--no-preview", cwd=folder
    )
    assert result.returncode == 0, result.stderr
    # never over an existing file
    assert (folder / "seeds" / "harbour.txt").read_text("utf-8") == "another topic's seed\n"
    assert (folder / "seeds" / "harbour-2.txt").read_text("utf-8") == (
        "Ferry returns\n\nThe island ferry runs again after repairs.\n"
    )
    page = tmp_path / "saved-page.html"
    page.write_bytes(ARTICLE_PAGE)
    result = monitor(
        "topics", "add", "harbour page", "--seed-file", str(page), "--no-preview", cwd=folder
    )
    assert result.returncode == 0, result.stderr
    saved = (folder / "seeds" / "harbour-page.txt").read_text("utf-8")
    assert ARTICLE_SENTENCES[1] in saved
    assert "Dorothy" not in saved
    names = {t.name: t.seed for t in load_config(folder / "config.toml").topics}
    assert names["harbour"] == [Path("seeds/harbour-2.txt")]
    assert names["harbour page"] == [Path("seeds/harbour-page.txt")]


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("Harbour Ferry", "harbour-ferry"),
        ("../../etc/passwd", "etc-passwd"),
        (".hidden", "hidden"),
        ("Korea Utara & Rusia", "korea-utara-rusia"),
        ("Kórea Północna", "korea-polnocna"),
        ("북한", "topic"),
    ],
)
def test_seed_file_names_are_safe(name: str, stem: str) -> None:
    assert seed_file_stem(name) == stem


POLISH_ARTICLE = (
    "Żółta kładka nad kanałem w Gdańsku jest już otwarta dla pieszych. Mieszkańcy dzielnicy "
    "czekali na nią dwa lata, a łączna długość przejścia wynosi czterdzieści metrów. Urzędnicy "
    "mówią, że koszt budowy był niższy, niż zakładano, bo użyto stali z rozbiórki starego mostu."
)


def test_the_charset_the_server_names_wins_over_guessing(folder: Path, site: LocalServer) -> None:
    # no <meta charset>: only the header says ISO-8859-2
    page = f"<html><body><article><p>{POLISH_ARTICLE}</p></article></body></html>"
    site.route(
        "/pl/kladka",
        Reply(
            body=page.encode("iso-8859-2"),
            headers={"Content-Type": "text/html; charset=ISO-8859-2"},
        ),
    )
    result = monitor(
        "topics", "add", "kładka", "--seed-url", site.url("/pl/kladka"), "--no-preview", cwd=folder
    )
    assert result.returncode == 0, result.stderr
    assert (folder / "seeds" / "kladka.txt").read_text("utf-8") == POLISH_ARTICLE + "\n"


def test_control_characters_never_reach_the_seed_or_the_terminal(
    folder: Path, site: LocalServer
) -> None:
    body = ARTICLE_PAGE.replace(
        b"<h1>Harbour ferry", b"<h1>\x1b]0;pwned\x07\x1b[2JHarbour ferry"
    ).replace(b"Engineers from", b"\x1b[31mEngineers from")
    site.route("/news/escapes", Reply(body=body, headers=HTML))
    result = monitor(
        "topics",
        "add",
        "harbour",
        "--seed-url",
        site.url("/news/escapes"),
        "--no-preview",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    seed = (folder / "seeds" / "harbour.txt").read_text("utf-8")
    assert "\x1b" not in seed
    assert "\x07" not in seed
    assert "\x1b" not in result.stdout
    assert ARTICLE_SENTENCES[1] in seed


def test_the_polling_size_cap_holds_for_seed_pages(tmp_path: Path, site: LocalServer) -> None:
    config = CONFIG.replace(
        "[alerts.console]", "[polling]\nmax_body_bytes = 1024\n\n[alerts.console]"
    )
    (tmp_path / "config.toml").write_text(config, encoding="utf-8")
    result = monitor(
        "topics", "add", "harbour", "--seed-url", site.url("/news/ferry"), cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot fetch ")
    assert "over the limit of 1024 bytes" in result.stderr
    assert (tmp_path / "config.toml").read_text(encoding="utf-8") == config
    assert not (tmp_path / "seeds").exists()
