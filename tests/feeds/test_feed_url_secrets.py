"""A feed URL can carry credentials (``https://user:password@host/feed?token=...``): the listing
of feeds, in the CLI and the API, masks them as the logs do, while the stored identity keeps
them so polling still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from monitor.store import db, read_models
from monitor.store.models import Feed

SECRET_FEED = "http://reader:hunter2pass@127.0.0.1:9/private.xml?token=s3cr3tT0ken"


def test_feed_credentials_are_masked_in_listings(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    url = f"sqlite:///{tmp_path / 'feeds.db'}"
    config = write_config(f"""
        [database]
        url = "{url}"

        [[feeds]]
        url = "{SECRET_FEED}"
    """)
    listing = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "feeds", "list", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    assert "hunter2pass" not in listing.stdout
    assert "s3cr3tT0ken" not in listing.stdout
    (row,) = json.loads(listing.stdout)
    assert row["url"] == "http://reader:***@127.0.0.1:9/private.xml?token=***"

    sessions = db.make_session_factory(db.make_engine(url, null_pool=True))
    with db.session_scope(sessions) as session:
        assert session.scalar(select(Feed.url)) == SECRET_FEED  # the identity is kept whole
        (api_row,) = read_models.list_feed_health(session)
    assert api_row["url"] == row["url"]
    assert "hunter2pass" not in json.dumps(api_row, default=str)
