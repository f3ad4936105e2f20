"""A topic made or edited in the browser: seed URL or pasted text, descriptions, alias groups,
threshold and channels; "Preview" scores the stored articles with the unsaved topic, "Save"
writes it to config.toml.

Where topics live: config.toml, through the same code as `monitor topics add`
(:mod:`monitor.pipeline.seeding`, :mod:`monitor.config_edit`). The daemon builds its topic
models from the config, `monitor topics list` and `monitor eval` read it, and it is the file
users keep under version control; a second home in the database would have to be merged with
it on every start. After saving, this process uses the new config at once; a daemon running
in another process picks it up on SIGHUP or restart (its seeds are files under seeds/).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from monitor.config import Config, TopicConfig
from monitor.errors import MonitorError
from monitor.feeds.extract import ExtractedArticle, fetch_article
from monitor.pipeline import preview as previewing
from monitor.pipeline import seeding
from monitor.pipeline.runtime import Runtime
from monitor.store import db, queries
from monitor.web import charts, forms
from monitor.web.guard import Admin, Reader
from monitor.web.render import page
from monitor.web.topics import topic_rows

router = APIRouter(include_in_schema=False)

WINDOWS = {"7d": 7, "30d": 30, "90d": 90}
MAX_SEED_CHARS = 60_000


@dataclass(frozen=True)
class TopicForm:
    """The form's fields as text, so a failed save shows them back unchanged."""

    mode: str = "new"  # "new" | "edit"
    name: str = ""
    seed_url: str = ""
    seed_text: str = ""
    descriptions: str = ""  # one a line
    require: str = ""  # one alias group a line, aliases separated by commas
    threshold: str = f"{seeding.DEFAULT_THRESHOLD:g}"
    channels: tuple[str, ...] = field(default_factory=lambda: tuple(seeding.DEFAULT_CHANNELS))
    window: str = "7d"

    @classmethod
    def parse(cls, data: dict[str, list[str]]) -> TopicForm:
        def one(key: str, default: str = "") -> str:
            return (data.get(key) or [default])[-1]

        return cls(
            mode="edit" if one("mode") == "edit" else "new",
            name=one("name").strip(),
            seed_url=one("seed_url").strip(),
            seed_text=one("seed_text").strip()[:MAX_SEED_CHARS],
            descriptions=one("descriptions"),
            require=one("require"),
            threshold=one("threshold", "0.5").strip(),
            channels=tuple(c for c in data.get("channels", []) if c),
            window=one("window", "7d") if one("window") in WINDOWS else "7d",
        )

    @classmethod
    def of(cls, spec: TopicConfig, base_dir: Path) -> TopicForm:
        """An existing topic's values (its seed text shown, to be replaced if edited)."""
        texts = []
        for seed in spec.seed:
            path = seed if seed.is_absolute() else base_dir / seed
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
        return cls(
            mode="edit",
            name=spec.name,
            seed_text="\n\n".join(texts).strip(),
            descriptions="\n".join(spec.descriptions),
            require="\n".join(", ".join(group) for group in spec.require),
            threshold=f"{spec.threshold:g}",
            channels=tuple(spec.channels),
        )

    def lines(self) -> tuple[str, ...]:
        return tuple(line.strip() for line in self.descriptions.splitlines() if line.strip())

    def groups(self) -> tuple[tuple[str, ...], ...]:
        out = []
        for line in self.require.splitlines():
            aliases = tuple(a.strip() for a in line.split(",") if a.strip())
            if aliases:
                out.append(aliases)
        return tuple(out)

    def threshold_value(self) -> float:
        try:
            return float(self.threshold)
        except ValueError:
            raise MonitorError(
                f'threshold: expected a number like 0.5, got "{self.threshold}"'
            ) from None


def _seed_article(runtime: Runtime, form: TopicForm) -> ExtractedArticle | None:
    """The seed: the pasted text (what a preview fetched is pasted back), else the URL's
    article, else none."""
    if form.seed_text:
        paragraphs = tuple(" ".join(p.split()) for p in form.seed_text.splitlines() if p.strip())
        return ExtractedArticle(url=form.seed_url, title="", paragraphs=paragraphs)
    if form.seed_url:
        return fetch_article(form.seed_url, runtime.config.polling)
    return None


def _spec(config: Config, form: TopicForm, seed: Path | None) -> TopicConfig:
    """The topic as the config would hold it (validated like config.toml)."""
    current = next((t for t in config.topics if t.name == form.name), None)
    seeds = [seed] if seed else (list(current.seed) if current and form.mode == "edit" else [])
    try:
        return TopicConfig(
            name=form.name or "preview",
            seed=seeds,
            descriptions=list(form.lines()),
            require=[list(g) for g in form.groups()],
            threshold=form.threshold_value(),
            channels=list(form.channels) or list(seeding.DEFAULT_CHANNELS),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "topic"
        raise MonitorError(f"{where}: {first['msg']}") from None


def render_topics(
    request: Request, form: TopicForm, status: int = 200, **extra: Any
) -> HTMLResponse:
    """The /topics page with ``form`` (and a preview, an error or a notice in ``extra``)."""
    with db.session_scope(request.app.state.runtime.sessions) as s:
        context = {"preview": None, "error": "", "message": "", **extra}
        return page(
            request,
            "topics.html.j2",
            status,
            topics=topic_rows(request, s),
            form=form,
            channels=sorted(request.app.state.runtime.config.alerts),
            windows=list(WINDOWS),
            **context,
        )


@router.get("/topics", response_class=HTMLResponse)
def topics_page(request: Request, _role: Reader) -> Response:
    return render_topics(request, TopicForm())


@router.get("/topics/{name}/edit", response_class=HTMLResponse)
def edit_form(request: Request, name: str, _role: Admin) -> Response:
    config = request.app.state.runtime.config
    spec = next((t for t in config.topics if t.name == name), None)
    if spec is None:
        return page(request, "not_found.html.j2", 404, message=f'no topic "{name}" in the config')
    return render_topics(request, TopicForm.of(spec, config.base_dir))


@router.post("/topics/preview", response_class=HTMLResponse)
async def preview(request: Request, _role: Admin) -> Response:
    form = TopicForm.parse(await forms.lists(request))
    runtime: Runtime = request.app.state.runtime
    try:
        result, form = await run_in_threadpool(_preview, runtime, form)
    except MonitorError as exc:
        return await run_in_threadpool(render_topics, request, form, 400, error=str(exc))
    chart = charts.histogram(result.scores, result.threshold, width=0.1) if result.scores else None
    return await run_in_threadpool(render_topics, request, form, preview=result, chart=chart)


def _preview(runtime: Runtime, form: TopicForm) -> tuple[previewing.Preview, TopicForm]:
    article = _seed_article(runtime, form)
    if article is not None and not form.seed_text:
        form = replace(form, seed_text=article.as_text().strip())  # shown, and saved as is
    since = datetime.now(UTC) - timedelta(days=WINDOWS[form.window])
    with tempfile.TemporaryDirectory(prefix="monitor-seed-") as folder:
        seed = None
        if article is not None:
            seed = Path(folder) / "seed.txt"
            seed.write_text(article.as_text(), encoding="utf-8")
        spec = _spec(runtime.config, form, seed)
        with db.session_scope(runtime.sessions) as s:
            return previewing.preview_unsaved(runtime, s, spec, since), form


@router.post("/topics", response_class=HTMLResponse)
async def save(request: Request, _role: Admin) -> Response:
    form = TopicForm.parse(await forms.lists(request))
    runtime: Runtime = request.app.state.runtime
    try:
        config = await run_in_threadpool(_save, runtime, form)
    except MonitorError as exc:
        return await run_in_threadpool(render_topics, request, form, 400, error=str(exc))
    runtime.config = config  # this process scores with it from the next cycle
    with db.session_scope(runtime.sessions) as s:
        queries.sync_topics(s, config.topics)
    return RedirectResponse(f"/topics/{quote(form.name, safe='')}", status_code=303)


def _save(runtime: Runtime, form: TopicForm) -> Config:
    config = runtime.config
    check_url_name(form.name)
    article = _seed_article(runtime, form)
    _spec(config, form, Path("seed.txt") if article else None)  # the checks of a preview
    if form.mode == "edit":
        current = next((t for t in config.topics if t.name == form.name), None)
        edit = seeding.TopicEdit(
            name=form.name,
            descriptions=form.lines(),
            require=form.groups(),
            threshold=form.threshold_value(),
            channels=form.channels,
            article=None if _same_seed(form, current, config) else article,
        )
        return seeding.edit_topic(config, edit)
    with tempfile.TemporaryDirectory(prefix="monitor-seed-") as folder:
        seed_file = None
        if article is not None:
            seed_file = Path(folder) / "seed.txt"
            seed_file.write_text(article.as_text(), encoding="utf-8")
        new = seeding.NewTopic(
            name=form.name,
            seed_file=seed_file,
            descriptions=form.lines(),
            require=form.groups(),
            threshold=form.threshold_value(),
            channels=form.channels,
            source=form.seed_url or ("pasted text" if article else ""),
            added_by="the web app",
        )
        return seeding.add_topic(config, new).config


def check_url_name(name: str) -> None:
    """A topic named in the browser must also work in page URLs: no "/"."""
    if "/" in name:
        raise MonitorError(f'topic name "{name}": no "/" (the name is part of page URLs)')


def _same_seed(form: TopicForm, current: TopicConfig | None, config: Config) -> bool:
    """The seed text was left as shown: keep the seed files, write no new one."""
    if current is None:
        return False
    shown = TopicForm.of(current, config.base_dir).seed_text
    return " ".join(form.seed_text.split()) == " ".join(shown.split())
