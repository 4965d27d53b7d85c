"""Scheduled exports: jobs on the runtime's scheduler, new events only in each file, old files pruned."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from vibekit_telemetry import Telemetry
from vibekit_telemetry.cli import cli
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.export.schedule import make_schedule, run_schedule

Make = Callable[..., Telemetry]


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_run_exports_what_is_new_and_keeps_the_newest_files(make_memory: Make, tmp_path: Path) -> None:
    telemetry = make_memory()
    schedule = make_schedule("hourly", format="ndjson", every="1h", output_dir=str(tmp_path / "out"), keep=2)
    now = int(time.time() * 1000)
    telemetry.track_start("claude", "code", "first", session_id="w1", timestamp=now - 5000)
    assert telemetry.flush()
    first = run_schedule(telemetry.store, schedule, now_ms=now)
    telemetry.track_start("codex", "chat", "second", session_id="w2", timestamp=now + 500)
    assert telemetry.flush()
    second = run_schedule(telemetry.store, schedule, now_ms=now + 2000)
    third = run_schedule(telemetry.store, schedule, now_ms=now + 4000)
    assert [e["session_id"] for e in _lines(Path(second.path))] == ["w2"]
    assert (first.record_count, second.record_count, third.record_count) == (1, 1, 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Path(second.path).name, Path(third.path).name]


def test_a_schedule_created_on_telemetry_runs_on_its_scheduler(make_memory: Make, tmp_path: Path) -> None:
    telemetry = make_memory()
    telemetry.track_start("gemini", "ask", "scheduled", session_id="g1")
    assert telemetry.flush()
    out = tmp_path / "exports"
    telemetry.create_export_schedule("fast", format="json", every=1, output_dir=str(out), compression="gzip")
    deadline = time.monotonic() + 30
    while not list(out.glob("fast-*.json.gz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.name.endswith(".json.gz") for p in out.iterdir()] == [True]
    jobs = telemetry.get_health_status()["scheduler"]
    assert jobs["export:fast"]["failures"] == 0


@pytest.mark.parametrize(("options", "field"), [
    ({"name": "../x", "format": "json", "every": "1h", "output_dir": "o"}, "name"),
    ({"name": "x", "format": "xml", "every": "1h", "output_dir": "o"}, "format"),
    ({"name": "x", "format": "json", "every": "soon", "output_dir": "o"}, "every"),
    ({"name": "x", "format": "json", "every": 0.1, "output_dir": "o"}, "every"),
    ({"name": "x", "format": "json", "every": "1h", "output_dir": "o", "keep": 0}, "keep"),
    ({"name": "x", "format": "json", "every": "1h", "output_dir": "o", "filter": {"colour": 1}}, "colour"),
])
def test_bad_schedules_are_refused_naming_the_field(make_memory: Make, options: dict[str, object],
                                                    field: str) -> None:
    telemetry = make_memory()
    name = options.pop("name")
    with pytest.raises(ValidationError) as caught:
        telemetry.create_export_schedule(name, **options)  # type: ignore[arg-type]
    assert field in caught.value.field


def test_configured_schedules_run_with_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    out = tmp_path / "nightly"
    config = tmp_path / "telemetry.toml"
    config.write_text(f'[telemetry]\ndb_path = "{db}"\n\n[[telemetry.exports.schedules]]\nname = "nightly"\n'
                      f'format = "csv"\nevery = "24h"\noutput_dir = "{out}"\nkeep = 3\n')
    telemetry = Telemetry(db_path=str(db))
    telemetry.track_start("claude", "code", "x", session_id="c1")
    assert telemetry.flush()
    telemetry.shutdown()
    result = CliRunner().invoke(cli, ["--config", str(config), "schedule", "run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("nightly: 1 events to ")
    (file,) = out.iterdir()
    assert file.name.startswith("nightly-") and file.suffix == ".csv"
    unknown = CliRunner().invoke(cli, ["--config", str(config), "schedule", "run", "--name", "weekly"])
    assert unknown.exit_code == 2 and "nightly" in unknown.output


@pytest.mark.parametrize(("entry", "named"), [
    ({"name": "x", "format": "xml", "every": "1h", "output_dir": "o"}, "schedules[0].format"),
    ({"name": "x", "format": "json", "every": "1h", "output_dir": "o", "bogus": 1}, "schedules[0].bogus"),
    ({"format": "json"}, "schedules[0]"),
])
def test_bad_configured_schedules_are_refused_at_load(entry: dict[str, object], named: str) -> None:
    from vibekit_telemetry.config import load_config

    with pytest.raises(ValidationError) as caught:
        load_config(exports={"schedules": [entry]})
    assert caught.value.field == "exports.schedules" and named in str(caught.value)
