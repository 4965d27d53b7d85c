"""Configuration mistakes are visible: unknown options name the closest known one; `telemetry config check`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from vibekit_telemetry import Telemetry
from vibekit_telemetry.cli import cli
from vibekit_telemetry.errors import ValidationError


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "config" in r.getMessage()]


def test_a_misspelt_keyword_warns_with_the_closest_option(make_telemetry: Callable[..., Telemetry],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vibekit_telemetry"):
        telemetry = make_telemetry(smaple_rate=0.5)
    (message,) = _warnings(caplog)
    assert "'smaple_rate'" in message and "'sample_rate'" in message and "keyword arguments" in message
    assert telemetry.runtime is not None and telemetry.runtime.config.sample_rate == 1.0


def test_a_misspelt_keyword_raises_when_raise_on_error(make_telemetry: Callable[..., Telemetry]) -> None:
    with pytest.raises(ValidationError, match=r"smaple_rate.*did you mean 'sample_rate'") as caught:
        make_telemetry(smaple_rate=0.5, raise_on_error=True)
    assert caught.value.field == "smaple_rate"


def test_nested_sections_and_camel_case_are_checked(make_telemetry: Callable[..., Telemetry],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vibekit_telemetry"):
        make_telemetry(reliability={"circuitBreaker": {"treshold": 3, "timeout": 500}, "bufferSize": 10})
    (message,) = _warnings(caplog)  # circuitBreaker and bufferSize are known spellings; treshold is not
    assert "reliability.circuitBreaker.treshold" in message and "reliability.circuitBreaker.threshold" in message


def test_the_toml_file_and_environment_are_checked(make_telemetry: Callable[..., Telemetry], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "telemetry.toml"
    config.write_text('[telemetry]\nservice_name = "x"\nbackpresure = "drop_newest"\n', encoding="utf-8")
    monkeypatch.setenv("TELEMETRY_CONFIG", str(config))
    monkeypatch.setenv("TELEMETRY_MAX_QUEU_SIZE", "10")
    monkeypatch.setenv("TELEMETRY_SOMETHING_ELSE_ENTIRELY", "1")  # another component's: not a typo
    with caplog.at_level(logging.WARNING, logger="vibekit_telemetry"):
        make_telemetry()
    messages = _warnings(caplog)
    assert any("'backpresure'" in m and "'backpressure'" in m and str(config) in m for m in messages)
    assert any("TELEMETRY_MAX_QUEU_SIZE" in m and "TELEMETRY_MAX_QUEUE_SIZE" in m for m in messages)
    assert not any("SOMETHING_ELSE" in m for m in messages)


def test_config_check_prints_each_value_with_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "telemetry.toml"
    config.write_text('[telemetry]\nservice_name = "from-file"\nsample_rate = 0.5\n'
                      '[telemetry.reliability]\nbuffer_size = 1000\n', encoding="utf-8")
    monkeypatch.setenv("TELEMETRY_MAX_QUEUE_SIZE", "1234")
    monkeypatch.setenv("TELEMETRY_PRUNE_DAYS", "14")
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["option"]: row for row in json.loads(result.output)["options"]}
    assert rows["storage[0].options.prune_days"] == {"option": "storage[0].options.prune_days", "value": 14.0,
                                                     "source": "env TELEMETRY_PRUNE_DAYS"}
    assert rows["service_name"]["value"] == "from-file" and rows["service_name"]["source"] == f"file {config}"
    assert rows["reliability.buffer_size"]["value"] == 1000
    assert rows["max_queue_size"] == {"option": "max_queue_size", "value": 1234,
                                      "source": "env TELEMETRY_MAX_QUEUE_SIZE"}
    assert "stream_batch_size" not in rows  # a default: listed with --all only
    everything = CliRunner().invoke(cli, ["config", "check", "--config", str(config), "--all", "--format", "json"])
    assert {"option": "stream_batch_size", "value": 50, "source": "default"} in json.loads(everything.output)["options"]


def test_config_check_exits_2_on_an_unknown_option(tmp_path: Path) -> None:
    config = tmp_path / "telemetry.toml"
    config.write_text('[telemetry]\nsmaple_rate = 0.5\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    assert "did you mean 'sample_rate'" in result.output


_TYPOS = '[telemetry.api]\nrate_limt = 5\n[telemetry.security.pii]\nenabeld = true\n'


def test_telemetry_api_prints_unknown_nested_options_among_its_start_up_lines(tmp_path: Path) -> None:
    from servers import ServerProcess

    config = tmp_path / "telemetry.toml"
    config.write_text(_TYPOS, encoding="utf-8")
    with ServerProcess(tmp_path / "t.db", env={"TELEMETRY_CONFIG": str(config)}) as server:
        output = server.output()
    start_up = output[:output.index("Serving")]
    expected = [f"warning: unknown option 'api.rate_limt' (from the config file {config}); did you mean "
                "'api.rate_limit'? (ignored)",
                f"warning: unknown option 'security.pii.enabeld' (from the config file {config}); did you mean "
                "'security.pii.enabled'? (ignored)"]
    for line in expected:
        assert line in start_up, output
    assert output.count("'api.rate_limt'") == 1, output  # printed once, not again by each config load


def test_health_and_config_check_show_unknown_nested_options(tmp_path: Path) -> None:
    config = tmp_path / "telemetry.toml"
    config.write_text(_TYPOS, encoding="utf-8")
    db = str(tmp_path / "h.db")
    Telemetry(db_path=db).shutdown()
    health = CliRunner().invoke(cli, ["--db", db, "--config", str(config), "health"])
    assert health.exit_code == 0, health.output
    text = " ".join(health.output.split())  # Rich folds long lines at the terminal's width
    assert "config: unknown option 'api.rate_limt'" in text and "did you mean 'api.rate_limit'?" in text
    assert "did you mean 'security.pii.enabled'?" in text
    as_json = CliRunner().invoke(cli, ["--db", db, "--config", str(config), "health", "--format", "json"])
    warnings = json.loads(as_json.stdout)["config_warnings"]
    assert [w.split("'")[1] for w in warnings] == ["api.rate_limt", "security.pii.enabeld"]
    check = CliRunner().invoke(cli, ["config", "check", "--config", str(config), "--format", "json"])
    assert check.exit_code == 2
    unknown = json.loads(check.stdout)["unknown"]
    assert any("'security.pii.enabeld'" in u and "'security.pii.enabled'" in u for u in unknown), unknown
