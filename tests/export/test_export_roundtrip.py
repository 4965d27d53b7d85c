"""Export -> import is lossless for every format: unicode, line breaks, delimiters, quotes, huge and nested values."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibekit_telemetry import Telemetry

T0 = 1_704_888_000_000
# Text with what breaks naive writers: delimiters, quotes, CR/LF, tabs, NUL, non-BMP characters.
tricky = st.text(st.characters(blacklist_categories=["Cs"]) | st.sampled_from([",", ";", '"', "\n", "\r",
                                                                               "\t", "\x00", "😀", "é"]),
                 max_size=40)
json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
                                                                                allow_infinity=False) | tricky
metadata = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky, inner,
                                                                                              max_size=3),
                        max_leaves=12).map(lambda v: {"v": v}) | st.none()


@st.composite
def sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One session of events (start, streams, custom, end or error) with arbitrary field values."""
    sid = str(uuid.uuid4())
    at = T0 + draw(st.integers(0, 10**9))
    events: list[dict[str, Any]] = [{"event_type": "start", "session_id": sid, "category": draw(tricky.filter(bool)),
                                     "action": draw(st.none() | tricky), "label": draw(st.none() | tricky),
                                     "metadata": draw(metadata), "timestamp": at,
                                     "sandbox_id": draw(st.none() | tricky), "repo_url": draw(st.none() | tricky)}]
    for i in range(draw(st.integers(0, 3))):
        events.append({"event_type": "stream", "session_id": sid, "stream_data": draw(tricky),
                       "timestamp": at + i + 1, "value": draw(st.none() | st.floats(-1e300, 1e300))})
    events.append({"event_type": draw(st.sampled_from(["end", "error"])), "session_id": sid, "timestamp": at + 10,
                   "duration": draw(st.none() | st.floats(0, 1e12)), "label": draw(st.none() | tricky),
                   "context": draw(st.none() | st.dictionaries(tricky, tricky, max_size=2))})
    return events


FORMATS = [("json", "out.json"), ("json", "out.pretty.json.gz"), ("ndjson", "out.ndjson.zst"),
           ("csv", "out.csv"), ("csv", "out.semicolon.csv.br"), ("parquet", "out.parquet")]


def _snapshot(telemetry: Telemetry, sids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = [e.to_dict() for e in telemetry.query(session_ids=sids)]
    found = [telemetry.get_session(s) for s in sids]
    return sorted(events, key=lambda e: e["event_id"]), [s.to_dict() for s in found if s is not None]


@pytest.mark.parametrize(("fmt", "name"), FORMATS, ids=[n for _, n in FORMATS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(batch=st.lists(sessions(), min_size=1, max_size=3))
def test_export_then_import_gives_back_the_same_events_and_sessions(
        fmt: str, name: str, batch: list[list[dict[str, Any]]], make_memory: Callable[..., Telemetry],
        tmp_path: Path) -> None:
    source, target = make_memory(), make_memory()
    events = [e for session in batch for e in session]
    sids = [session[0]["session_id"] for session in batch]
    assert source.track_batch(events) == len(events)
    path = str(tmp_path / f"{uuid.uuid4().hex}-{name}")
    options: dict[str, Any] = {"pretty": "pretty" in name, "delimiter": ";" if "semicolon" in name else ","}
    result = source.export(fmt, {"session_ids": sids}, output_path=path, **options)
    assert result.record_count == len(events)

    report = target.import_file(path)
    assert (report.imported, report.skipped, report.rejected) == (len(events), 0, 0)
    assert _snapshot(target, sids) == _snapshot(source, sids)
    again = target.import_file(path)  # idempotent by event_id
    assert (again.imported, again.skipped) == (0, len(events))


@pytest.mark.parametrize(("fmt", "name"), FORMATS, ids=[n for _, n in FORMATS])
def test_huge_strings_survive_every_format(fmt: str, name: str, make_memory: Callable[..., Telemetry],
                                           tmp_path: Path) -> None:
    huge = ("line,with;\"quotes\"\r\n" * 60_000)[:1_000_000]
    source = make_memory(max_field_length=2_000_000)
    target = make_memory(max_field_length=2_000_000)
    sid = source.track_start("claude", "code", huge, metadata={"blob": huge, "deep": _nested(40)})
    source.track_stream(sid, huge)
    source.track_end(sid, "completed")
    path = str(tmp_path / name)
    source.export(fmt, output_path=path, delimiter=";" if "semicolon" in name else ",")
    assert target.import_file(path).imported == 3
    assert _snapshot(target, [sid]) == _snapshot(source, [sid])


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "é\n"}
    for i in range(depth):
        value = {f"level{i}": value, "list": [i, None, True]}
    return value


@pytest.fixture(scope="module")
def encrypted_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Telemetry]:
    """A SQLite store with encryption at rest: exports read its raw rows (iter_rows) and decrypt them."""
    pytest.importorskip("cryptography", reason="encryption at rest needs the crypto extra (cryptography)")
    path = tmp_path_factory.mktemp("encrypted") / "source.db"
    telemetry = Telemetry(db_path=str(path), raise_on_error=True, stream_flush_interval_ms=10,
                          security={"encryption": {"enabled": True, "key": "ab" * 32}})
    telemetry.track_start("claude", "code", "secret label", session_id="check")
    assert telemetry.flush()
    with sqlite3.connect(path) as raw:  # stored encrypted: the export has to decrypt
        assert raw.execute("SELECT label FROM events WHERE session_id = 'check'").fetchone()[0].startswith("vkenc1:")
    yield telemetry
    telemetry.shutdown()


@pytest.mark.parametrize(("fmt", "name"), FORMATS, ids=[n for _, n in FORMATS])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(batch=st.lists(sessions(), min_size=1, max_size=3))
def test_sqlite_raw_rows_export_is_lossless_and_decrypted(
        fmt: str, name: str, batch: list[list[dict[str, Any]]], encrypted_source: Telemetry,
        make_memory: Callable[..., Telemetry], tmp_path: Path) -> None:
    source, target = encrypted_source, make_memory()
    events = [e for session in batch for e in session]
    sids = [session[0]["session_id"] for session in batch]
    assert source.track_batch(events) == len(events)
    path = str(tmp_path / f"{uuid.uuid4().hex}-{name}")
    options: dict[str, Any] = {"pretty": "pretty" in name, "delimiter": ";" if "semicolon" in name else ","}
    assert source.export(fmt, {"session_ids": sids}, output_path=path, **options).record_count == len(events)
    report = target.import_file(path)
    assert (report.imported, report.rejected) == (len(events), 0)
    assert _snapshot(target, sids) == _snapshot(source, sids)
