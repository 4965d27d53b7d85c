"""The store side of export and import on memory, SQLite and PostgreSQL: id lookups, streamed export, re-import."""

from __future__ import annotations

import json
from pathlib import Path

from _store_helpers import ev

from vibekit_telemetry import Telemetry
from vibekit_telemetry.export.exports import export_events
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store import QueryableStore
from vibekit_telemetry.store.base import EventLookup


def test_existing_event_ids_names_only_stored_ids(store: QueryableStore) -> None:
    assert isinstance(store, EventLookup)
    store.store_batch([ev("start", "s1", event_id="a"), ev("stream", "s1", None, at=1, event_id="b")])
    many = [f"missing-{i}" for i in range(1200)]  # more than one chunk of the IN list
    assert store.existing_event_ids(["a", "zzz", "b", *many]) == {"a", "b"}
    assert store.existing_event_ids([]) == set()


def test_export_streams_every_matching_event_in_order(store: QueryableStore, tmp_path: Path) -> None:
    events = [ev("start", f"s{i // 10}", at=i, event_id=f"e{i:05d}", label=f"l{i}", metadata={"i": i})
              if i % 10 == 0 else ev("stream", f"s{i // 10}", None, at=i, event_id=f"e{i:05d}", stream_data=str(i))
              for i in range(12_345)]
    store.store_batch(events)
    out = tmp_path / "all.ndjson.gz"
    result = export_events(store, "ndjson", output_path=str(out), filter={"since": events[5].timestamp})
    assert result.record_count == 12_340
    import gzip

    rows = [json.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
    assert [r["event_id"] for r in rows] == [f"e{i:05d}" for i in range(5, 12_345)]
    assert rows[5]["metadata"] == {"i": 10} and rows[6]["stream_data"] == "11"


def test_export_import_round_trip_between_backends(store: QueryableStore, tmp_path: Path) -> None:
    service = {"service_name": "agent", "service_version": "2.0"}
    store.store_batch([ev("start", "r1", event_id="r-1", label="x\ny", metadata={"k": [1, {"z": None}]}, **service),
                       ev("end", "r1", None, at=5, event_id="r-2", metadata={"status": "completed"}, **service)])
    out = tmp_path / "r.parquet"
    export_events(store, "parquet", output_path=str(out))
    target = Telemetry(storage=[{"type": "memory"}], raise_on_error=True)
    try:
        assert target.import_file(str(out)).imported == 2
        assert [e.to_dict() for e in target.query()] == [e.to_dict() for e in store.query(QueryFilter())]
        assert target.get_session("r1").status == "completed"  # type: ignore[union-attr]
    finally:
        target.shutdown()
