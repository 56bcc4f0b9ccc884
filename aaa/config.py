"""Configuration: one TOML file loaded into frozen dataclasses.

Located by ``--config``, then ``AAA_CONFIG``, then ``./aaa.toml`` when present; with no
file at all the embedded defaults apply (a SQLite database in ``./data``).
``AAA_DATABASE_URL`` overrides ``database.url`` and ``AAA_SECRETS_KEY`` ``secrets.key``.
Every key is documented in ``config/aaa.example.toml``. A bad file or value raises
``ConfigError`` naming the key.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_CONFIG_PATH = Path("aaa.toml")


class ConfigError(Exception):
    """The configuration file or one of its values is unusable."""


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = ""  # empty: a SQLite file in `data_dir`
    echo: bool = False


@dataclass(frozen=True, slots=True)
class RadiusConfig:
    bind: str = "127.0.0.1"
    auth_port: int = 1812
    acct_port: int = 1813
    metrics_port: int = 9812
    acct_interim_interval: int = 300
    session_timeout: int = 0
    strip_realm: bool = False
    extra_dictionaries: tuple[str, ...] = ()
    # SO_RCVBUF of the authentication socket: bounds how long a request can wait in the
    # kernel under overload (the kernel doubles it for its own bookkeeping).
    receive_buffer_kb: int = 256
    # The LOG_RETENTION routine deletes authentication-log rows older than this (0: keep all).
    auth_log_retention_days: int = 90
    # Write the authentication log from a process of its own (false: a thread of the daemon).
    auth_log_process: bool = True
    # Keep the subscriber view in `data_dir`/view.snapshot, so that a daemon (re)started
    # while the database is down answers from the view it last knew.
    view_snapshot: bool = True


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    partial_reduction: str = "relative"  # relative (percent off the plan) | absolute (kbit/s)
    partial_reduction_value: int = 50
    debt_download_kbps: int = 256
    debt_upload_kbps: int = 256
    other_download_attribute: str = ""
    other_upload_attribute: str = ""
    other_rate_unit: str = "bps"  # bps | kbps


@dataclass(frozen=True, slots=True)
class AccountingConfig:
    journal_dir: str = ""  # empty: `journal` inside data_dir
    journal_max_mb: int = 1024
    stale_after_intervals: int = 3
    # Under load a group commit starts no sooner than this (ms) after the previous one was
    # stored, so records gather into bigger transactions; after a quiet spell a record is
    # committed at once. 0: whatever is queued is committed at once.
    commit_interval_ms: float = 5.0


@dataclass(frozen=True, slots=True)
class CoaConfig:
    timeouts: tuple[float, ...] = (2.0, 4.0, 8.0)  # seconds to wait after each try
    poll_interval: float = 1.0
    fallback_disconnect: bool = True


@dataclass(frozen=True, slots=True)
class PortalConfig:
    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = 9814
    session_ttl: int = 1800  # seconds a portal login lasts
    login_attempts: int = 5  # failed logins per CPF/CNPJ within login_window
    login_attempts_per_ip: int = 20  # failed logins per client address within login_window
    login_window: int = 900  # seconds
    allow_self_service_tickets: bool = True


@dataclass(frozen=True, slots=True)
class SecretsConfig:
    key: str = field(default="", repr=False)  # base64 of 32 bytes; AAA_SECRETS_KEY overrides
    key_file: str = ""  # a file holding that base64 text (used when `key` is empty)
    password_length: int = 16  # length of suggested equipment passwords
    encrypt_subscriber_passwords: bool = False  # seal services' PPPoE passwords with `key`


SECRETS_KEY_BYTES = 32


_CHOICES = {
    "policy.partial_reduction": ("relative", "absolute"),
    "policy.other_rate_unit": ("bps", "kbps"),
}


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: str = "data"
    timezone: str = "America/Sao_Paulo"
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    radius: RadiusConfig = field(default_factory=RadiusConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    accounting: AccountingConfig = field(default_factory=AccountingConfig)
    coa: CoaConfig = field(default_factory=CoaConfig)
    portal: PortalConfig = field(default_factory=PortalConfig)
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    source: str = "<defaults>"

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{Path(self.data_dir) / 'aaa.sqlite3'}"

    @property
    def journal_dir(self) -> Path:
        return Path(self.accounting.journal_dir or Path(self.data_dir) / "journal")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _build(cls: type[Any], raw: Mapping[str, Any], prefix: str) -> Any:
    """Build dataclass `cls` from a TOML table, checking each key's type."""
    known = {f.name: f for f in fields(cls) if f.name != "source"}
    values: dict[str, Any] = {}
    defaults = cls()
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"{name}: unknown key")
        default = getattr(defaults, key)
        if hasattr(default, "__dataclass_fields__"):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name}: must be a table")
            values[key] = _build(type(default), value, f"{name}.")
            continue
        values[key] = _coerce(name, default, value)
    return cls(**values)


def _coerce(name: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: must be an integer, got {value!r}")
        if value < 0:
            raise ConfigError(f"{name}: must not be negative, got {value}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{name}: must be a non-negative number, got {value!r}")
        return float(value)
    if isinstance(default, tuple) and default and isinstance(default[0], float):
        if (not isinstance(value, list)
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
            raise ConfigError(f"{name}: must be a list of numbers")
        return tuple(float(v) for v in value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name}: must be a list of strings")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{name}: must be a string, got {value!r}")
    return value


def _validate(config: Config) -> Config:
    try:
        ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"timezone: unknown time zone {config.timezone!r}") from exc
    for key in ("auth_port", "acct_port", "metrics_port"):
        port = getattr(config.radius, key)
        if not 0 <= port <= 65535:
            raise ConfigError(f"radius.{key}: not a port number: {port}")
    if not 16 <= config.radius.receive_buffer_kb <= 65536:
        raise ConfigError("radius.receive_buffer_kb: must be from 16 to 65536 (KiB), "
                          f"got {config.radius.receive_buffer_kb}")
    for key, allowed in _CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in allowed:
            raise ConfigError(f"{key}: must be one of {', '.join(allowed)}, got {value!r}")
    if config.policy.partial_reduction == "relative" and config.policy.partial_reduction_value > 100:
        raise ConfigError("policy.partial_reduction_value: a relative reduction is at most 100 (%)")
    coa = config.coa
    if not 1 <= len(coa.timeouts) <= 10 or not all(0 < t <= 60 for t in coa.timeouts):
        raise ConfigError("coa.timeouts: 1 to 10 tries, each waiting more than 0 and at most 60 s")
    if not 0 < coa.poll_interval <= 60:
        raise ConfigError(f"coa.poll_interval: must be more than 0 and at most 60 s, got {coa.poll_interval}")
    if config.accounting.commit_interval_ms > 1000:
        raise ConfigError("accounting.commit_interval_ms: at most 1000 (ms), "
                          f"got {config.accounting.commit_interval_ms}")
    if not 8 <= config.secrets.password_length <= 128:
        raise ConfigError("secrets.password_length: must be from 8 to 128 characters, "
                          f"got {config.secrets.password_length}")
    if config.secrets.key:
        decode_secrets_key(config.secrets.key, "secrets.key")
    portal = config.portal
    if not 0 <= portal.port <= 65535:
        raise ConfigError(f"portal.port: not a port number: {portal.port}")
    for key in ("session_ttl", "login_attempts", "login_attempts_per_ip", "login_window"):
        if getattr(portal, key) < 1:
            raise ConfigError(f"portal.{key}: must be at least 1")
    url = config.database_url
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise ConfigError(f"database.url: only sqlite:// and postgresql:// URLs are supported: {url}")
    return config


def decode_secrets_key(text: str, name: str) -> bytes:
    """The key bytes of a base64 key; ConfigError naming `name` (never echoing the value)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name}: not valid base64") from None
    if len(key) != SECRETS_KEY_BYTES:
        raise ConfigError(f"{name}: must be the base64 of {SECRETS_KEY_BYTES} bytes, got {len(key)} bytes")
    return key


def parse_config(text: str, source: str = "<string>", env: Mapping[str, str] | None = None) -> Config:
    """Parse TOML text into a Config, applying environment overrides."""
    env = os.environ if env is None else env
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    config: Config = _build(Config, raw, "")
    overrides: dict[str, Any] = {"source": source}
    if env.get("AAA_DATABASE_URL"):
        overrides["database"] = DatabaseConfig(url=env["AAA_DATABASE_URL"], echo=config.database.echo)
    if env.get("AAA_SECRETS_KEY"):
        decode_secrets_key(env["AAA_SECRETS_KEY"], "AAA_SECRETS_KEY")
        overrides["secrets"] = replace(config.secrets, key=env["AAA_SECRETS_KEY"])
    if env.get("AAA_DATA_DIR"):
        overrides["data_dir"] = env["AAA_DATA_DIR"]
    config = Config(**{**{f.name: getattr(config, f.name) for f in fields(Config)}, **overrides})
    return _validate(config)


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Find and load the configuration file (or the defaults when there is none)."""
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get("AAA_CONFIG"))
    chosen = Path(path) if path is not None else Path(env.get("AAA_CONFIG") or DEFAULT_CONFIG_PATH)
    if not chosen.exists():
        if explicit:
            raise ConfigError(f"config file not found: {chosen}")
        return parse_config("", "<defaults>", env)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read: {exc.strerror}") from exc
    return parse_config(text, str(chosen), env)
