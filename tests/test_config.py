"""Configuration loading: defaults, the example file, environment overrides, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from aaa.config import Config, ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "aaa.example.toml"


def test_example_file_documents_every_default() -> None:
    """config/aaa.example.toml parses to exactly the built-in defaults."""
    loaded = load_config(EXAMPLE, env={})
    defaults = parse_config("", env={})
    assert loaded.database == defaults.database and loaded.radius == defaults.radius
    assert loaded.policy == defaults.policy and loaded.accounting == defaults.accounting
    assert loaded.coa == defaults.coa and loaded.secrets == defaults.secrets
    assert loaded.portal == defaults.portal
    assert (loaded.data_dir, loaded.timezone) == (defaults.data_dir, defaults.timezone)
    for section in ("database", "radius", "policy", "accounting", "coa", "secrets", "portal"):
        for key in getattr(Config(), section).__dataclass_fields__:
            assert f"\n{key} =" in EXAMPLE.read_text(), f"{section}.{key} is not documented"


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    """Without a file, the database is a SQLite file in data_dir; AAA_DATA_DIR moves it."""
    config = load_config(env={"AAA_DATA_DIR": str(tmp_path)})
    assert config.database_url == f"sqlite:///{tmp_path}/aaa.sqlite3"


def test_environment_overrides_database_url(tmp_path: Path) -> None:
    """AAA_DATABASE_URL wins over the file."""
    path = tmp_path / "aaa.toml"
    path.write_text('[database]\nurl = "sqlite:///x.db"\n')
    config = load_config(path, env={"AAA_DATABASE_URL": "postgresql://u@h/db"})
    assert config.database_url == "postgresql://u@h/db"
    assert load_config(path, env={}).database_url == "sqlite:///x.db"


def test_aaa_config_variable_locates_the_file(tmp_path: Path) -> None:
    """AAA_CONFIG points at the file when --config is not given."""
    path = tmp_path / "custom.toml"
    path.write_text("[radius]\nauth_port = 11812\n")
    assert load_config(env={"AAA_CONFIG": str(path)}).radius.auth_port == 11812


@pytest.mark.parametrize(("text", "key"), [
    ('[radius]\nauth_port = "x"', "radius.auth_port"),
    ("[radius]\nauth_port = 70000", "radius.auth_port"),
    ("[radius]\nstrip_realm = 1", "radius.strip_realm"),
    ("[radius]\nextra_dictionaries = [1]", "radius.extra_dictionaries"),
    ("[radius]\nbogus = 1", "radius.bogus"),
    ('timezone = "Mars/Olympus"', "timezone"),
    ('[database]\nurl = "mysql://x"', "database.url"),
    ("radius = 3", "radius"),
    ('[policy]\npartial_reduction = "half"', "policy.partial_reduction"),
    ("[policy]\npartial_reduction_value = 150", "policy.partial_reduction_value"),
    ("[radius\n", "not valid TOML"),
    ('[coa]\ntimeouts = ["x"]', "coa.timeouts"),
    ("[coa]\ntimeouts = []", "coa.timeouts"),
    ("[coa]\ntimeouts = [0, 1]", "coa.timeouts"),
    ("[coa]\npoll_interval = 0", "coa.poll_interval"),
    ("[accounting]\ncommit_interval_ms = 5000", "accounting.commit_interval_ms"),
    ("[accounting]\ncommit_interval_ms = -1", "accounting.commit_interval_ms"),
    ("[coa]\nfallback_disconnect = 1", "coa.fallback_disconnect"),
    ('[secrets]\nkey = "not base64!"', "secrets.key"),
    ('[secrets]\nkey = "c2hvcnQ="', "secrets.key"),
    ("[secrets]\npassword_length = 4", "secrets.password_length"),
    ("[portal]\nport = 70000", "portal.port"),
    ("[portal]\nsession_ttl = 0", "portal.session_ttl"),
    ("[portal]\nenabled = 1", "portal.enabled"),
])
def test_bad_values_name_the_key(text: str, key: str) -> None:
    """Each bad value raises ConfigError whose message names the key."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert key in str(info.value)


def test_coa_section_reads_numbers() -> None:
    """[coa] timeouts accept integers and floats (kept as float seconds)."""
    config = parse_config("[coa]\ntimeouts = [1, 2.5]\npoll_interval = 0.5\n", env={})
    assert config.coa.timeouts == (1.0, 2.5) and config.coa.poll_interval == 0.5


def test_secrets_key_from_environment() -> None:
    """AAA_SECRETS_KEY overrides secrets.key; a bad one names the variable, not its value."""
    key = "A" * 43 + "="
    config = parse_config('[secrets]\nkey_file = "/k"\n', env={"AAA_SECRETS_KEY": key})
    assert config.secrets.key == key and config.secrets.key_file == "/k"
    assert key not in repr(config)
    with pytest.raises(ConfigError) as info:
        parse_config("", env={"AAA_SECRETS_KEY": "bad-key"})
    assert "AAA_SECRETS_KEY" in str(info.value) and "bad-key" not in str(info.value)


def test_restart_needed_names_only_settings_a_reload_cannot_apply() -> None:
    """A reload applies policy, reply settings, realm stripping, dictionaries and CoA live;
    a changed port, database, data directory or portal setting is named for a restart."""
    from dataclasses import replace

    from aaa.config import CoaConfig, Config, PolicyConfig, RadiusConfig
    from aaa.service import restart_needed

    old = Config()
    live = replace(old, radius=replace(old.radius, acct_interim_interval=900, strip_realm=True),
                   policy=PolicyConfig(partial_reduction_value=70), coa=CoaConfig(poll_interval=5.0),
                   source="other.toml")
    assert restart_needed(old, live) == []
    moved = replace(live, data_dir="/srv/aaa", radius=RadiusConfig(auth_port=11812, metrics_port=1),
                    portal=replace(old.portal, port=9999))
    assert restart_needed(old, moved) == ["data_dir", "radius.auth_port", "radius.metrics_port",
                                          "portal.port"]
