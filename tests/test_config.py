"""Configuration: keyword arguments over environment over TOML file over defaults; bad values named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import TelemetryConfig, ValidationError
from vibekit_telemetry.config import DEFAULT_DB_PATH, default_config_toml, load_config


def test_defaults_store_in_vibekit_dir() -> None:
    config = load_config()
    [entry] = config.storage_entries()
    assert entry.type == "sqlite" and entry.options["path"] == DEFAULT_DB_PATH
    assert config.stream_batch_size == 50 and config.stream_flush_interval_ms == 1000


def test_camel_case_dict_like_the_seeds() -> None:
    config = load_config({"serviceName": "my-ai-app", "serviceVersion": "1.0.0",
                          "storage": [{"type": "sqlite", "enabled": True,
                                       "options": {"path": "x.db"}}],
                          "analytics": {"enabled": True, "metrics": {"enabled": True}}})
    assert config.service_name == "my-ai-app" and config.analytics.enabled
    assert config.storage_entries()[0].options["path"] == "x.db"


def test_local_store_block_of_seed_003() -> None:
    config = load_config(localStore={"isEnabled": True, "path": "./t.db", "pruneDays": 7, "maxSizeMB": 100})
    [entry] = config.storage_entries()
    assert entry.options["path"] == "./t.db" and entry.options["prune_days"] == 7
    assert entry.options["max_size_mb"] == 100


def test_env_overrides_file_and_kwargs_override_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "t.toml"
    file.write_text(default_config_toml("from-file.db"))
    assert load_config(config_file=file).db_path == "from-file.db"
    monkeypatch.setenv("TELEMETRY_DB_PATH", "from-env.db")
    monkeypatch.setenv("TELEMETRY_STREAM_BATCH_SIZE", "7")
    config = load_config(config_file=file)
    assert config.db_path == "from-env.db" and config.stream_batch_size == 7
    assert load_config(config_file=file, db_path="from-kwarg.db").db_path == "from-kwarg.db"


def test_config_file_found_by_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "conf.toml"
    file.write_text('[telemetry]\nservice_name = "svc-from-file"\n')
    monkeypatch.setenv("TELEMETRY_CONFIG", str(file))
    assert load_config().service_name == "svc-from-file"


def test_bad_env_value_is_ignored_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TELEMETRY_STREAM_BATCH_SIZE", "lots")
    config = load_config()
    assert config.stream_batch_size == 50
    assert "TELEMETRY_STREAM_BATCH_SIZE" in caplog.text


@pytest.mark.parametrize("name", ["TELEMETRY_DISABLED", "DO_NOT_TRACK"])
def test_opt_out_variables(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "1")
    assert load_config().disabled


@pytest.mark.parametrize(("options", "field"), [
    ({"stream_batch_size": 0}, "stream_batch_size"),
    ({"backpressure": "panic"}, "backpressure"),
    ({"storage": [{"type": "mongodb"}]}, "storage.0.type"),
    ({"max_queue_size": "big"}, "max_queue_size"),
])
def test_bad_options_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_config(**options)
    assert info.value.field == field


def test_bad_toml_file(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text("[telemetry\nservice_name=")
    with pytest.raises(ValidationError) as info:
        load_config(config_file=file)
    assert info.value.field == "config_file"


def test_typed_config_object() -> None:
    config = load_config(TelemetryConfig(service_name="typed", stream_batch_size=5))
    assert config.service_name == "typed" and config.stream_batch_size == 5


def test_seed_001_storage_options_in_camel_case() -> None:
    config = load_config(storage=[{"type": "sqlite", "enabled": True,
                                   "options": {"path": ".vibekit/telemetry.db", "streamBatchSize": 100,
                                               "streamFlushInterval": 1000, "maxSizeMB": 50, "pruneDays": 7}}])
    assert config.stream_batch_size == 100 and config.stream_flush_interval_ms == 1000
    [entry] = config.storage_entries()
    assert entry.options == {"path": ".vibekit/telemetry.db", "max_size_mb": 50, "prune_days": 7}


def test_unknown_sqlite_option_is_named(tmp_path: Path) -> None:
    from vibekit_telemetry import Telemetry

    with pytest.raises(ValidationError) as info:
        Telemetry(storage=[{"type": "sqlite", "options": {"path": str(tmp_path / "x.db"), "colour": "red"}}])
    assert info.value.field == "storage[0].options.colour"


@pytest.mark.parametrize(("option", "bad"), [
    ("busy_timeout_ms", "abc"), ("busy_timeout_ms", -5), ("busy_timeout_ms", True), ("busy_timeout_ms", 10**12),
    ("busy_timeout_ms", "5000"), ("busy_timeout_ms", 2.5),
    # 0 or less would put prune()'s cut-off at now or later: every event deleted by a typo.
    ("prune_days", 0), ("prune_days", -5), ("prune_days", "x"), ("prune_days", float("nan")),
    ("max_size_mb", 0), ("max_size_mb", -1), ("max_size_mb", "big"),
    ("wal", "false"), ("enable_wal", 0), ("enable_indexes", "no"), ("text_index", "yes"), ("path", 42),
])
def test_bad_sqlite_option_values_are_named_and_nothing_is_created(tmp_path: Path, option: str, bad: object) -> None:
    from vibekit_telemetry import Telemetry

    path = tmp_path / "x.db"
    options = {"path": str(path), option: bad}
    with pytest.raises(ValidationError) as info:
        Telemetry(storage=[{"type": "sqlite", "options": options}])
    assert info.value.field == f"storage[0].options.{option}"
    assert repr(bad) in str(info.value)
    assert not path.exists()


def test_a_store_built_directly_checks_the_same_values(tmp_path: Path) -> None:
    from vibekit_telemetry.store.sql import SQLStore

    for name, bad in (("prune_days", -5), ("max_size_mb", 0), ("busy_timeout_ms", "5s")):
        with pytest.raises(ValidationError) as info:
            SQLStore(tmp_path / "x.db", **{name: bad})
        assert info.value.field == f"SQLStore.{name}"
    assert not (tmp_path / "x.db").exists()


def test_good_sqlite_option_values_are_taken(tmp_path: Path) -> None:
    from vibekit_telemetry import Telemetry

    telemetry = Telemetry(storage=[{"type": "sqlite", "options": {
        "path": str(tmp_path / "x.db"), "busy_timeout_ms": 0, "prune_days": 1.5, "max_size_mb": 10,
        "wal": False, "enable_indexes": True, "text_index": False}}])
    try:
        store: Any = telemetry.store
        assert (store.busy_timeout_ms, store.prune_days, store.max_size_mb, store.wal) == (0, 1.5, 10, False)
    finally:
        telemetry.shutdown()


def test_retention_from_the_environment_applies_to_the_primary_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from vibekit_telemetry import Telemetry

    monkeypatch.setenv("TELEMETRY_PRUNE_DAYS", "7")
    monkeypatch.setenv("TELEMETRY_MAX_SIZE_MB", "50.5")
    telemetry = Telemetry(db_path=str(tmp_path / "a.db"))
    store: Any = telemetry.store
    assert (store.prune_days, store.max_size_mb) == (7.0, 50.5)
    telemetry.shutdown()
    # The storage entry's own value wins over the environment's.
    telemetry = Telemetry(storage=[{"type": "sqlite", "options": {"path": str(tmp_path / "b.db"), "prune_days": 30}}])
    store = telemetry.store
    assert (store.prune_days, store.max_size_mb) == (30.0, 50.5)
    telemetry.shutdown()
    # 0 or less would delete every event: ignored with a warning naming the variable.
    for bad in ("0", "-5", "soon", "inf"):
        monkeypatch.setenv("TELEMETRY_PRUNE_DAYS", bad)
        telemetry = Telemetry(db_path=str(tmp_path / "c.db"))
        assert telemetry.store.prune_days is None  # type: ignore[attr-defined]
        telemetry.shutdown()
        # Once, though the storage entries are read by the stores and by the exporters.
        assert caplog.text.count(f"ignoring TELEMETRY_PRUNE_DAYS={bad!r}") == 1
