"""The lake: DuckDB over the batch objects (the analysis seed 004 says is missing), and loading them back.

Objects are read where they are (a directory, or object storage through fsspec registered in DuckDB);
`--since` prunes whole `dt=` partitions before DuckDB opens a file. Every query sees one view, `usage`,
with seed 004's columns plus `ts` (the timestamp as TIMESTAMP, UTC).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ..errors import ValidationError
from .objects import SUFFIXES, Destination

COLUMNS: Final[dict[str, str]] = {
    "eventName": "VARCHAR", "userId": "VARCHAR", "sessionId": "VARCHAR", "timestamp": "VARCHAR",
    "toolVersion": "VARCHAR", "command": "VARCHAR", "duration": "DOUBLE", "contextTokens": "BIGINT",
    "promptTokens": "BIGINT", "completionTokens": "BIGINT", "provider": "VARCHAR", "model": "VARCHAR",
    "fileProvider": "VARCHAR", "fileModel": "VARCHAR", "thinkingProvider": "VARCHAR", "thinkingModel": "VARCHAR",
    "options": "JSON", "hasError": "BOOLEAN", "errorType": "VARCHAR",
}
PLACEHOLDER_IDS: Final = "('anonymous_opt_out', 'anonymous_pending_prompt')"
# The questions `telemetry lake stats` answers, each one query over the view.
STATS: Final[dict[str, str]] = {
    "per_day": f"""SELECT CAST(ts AS DATE) AS day, count(*) AS commands,
        count(*) FILTER (WHERE hasError) AS errors,
        count(DISTINCT userId) FILTER (WHERE userId NOT IN {PLACEHOLDER_IDS}) AS active_users
        FROM usage GROUP BY 1 ORDER BY 1""",
    "commands": """SELECT command, count(*) AS runs, count(*) FILTER (WHERE hasError) AS errors,
        round(count(*) FILTER (WHERE hasError) / count(*), 4) AS error_rate,
        round(quantile_cont(duration, 0.5), 1) AS p50_ms, round(quantile_cont(duration, 0.95), 1) AS p95_ms
        FROM usage GROUP BY 1 ORDER BY runs DESC, command""",
    "errors": """SELECT command, errorType AS error_type, count(*) AS count FROM usage WHERE hasError
        GROUP BY 1, 2 ORDER BY count DESC, command, error_type""",
    "tokens": """SELECT provider, model, count(*) AS runs, sum(promptTokens) AS prompt_tokens,
        sum(completionTokens) AS completion_tokens, sum(contextTokens) AS context_tokens
        FROM usage WHERE provider IS NOT NULL OR model IS NOT NULL GROUP BY 1, 2 ORDER BY runs DESC, 1, 2""",
    "versions": f"""SELECT toolVersion AS version, count(*) AS runs,
        count(DISTINCT userId) FILTER (WHERE userId NOT IN {PLACEHOLDER_IDS}) AS users
        FROM usage GROUP BY 1 ORDER BY runs DESC, version""",
}


STATS_COLUMNS: Final = ("ts", "command", "duration", "hasError", "errorType", "userId", "provider", "model",
                         "promptTokens", "completionTokens", "contextTokens", "toolVersion")


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise ValidationError("lake", "DuckDB for lake queries: pip install 'vibekit-telemetry[usage]'") from None
    return duckdb


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


class Lake:
    """The batch objects under `source` (a directory or s3://bucket/prefix), optionally from `since_ms` on."""

    def __init__(self, source: str, *, since_ms: int | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        self.place = Destination(source, storage_options, "source")
        self.since_ms = since_ms

    def files(self) -> list[str]:
        """Return the batch objects, oldest partition first, skipping partitions before `since`."""
        fs, root = self.place.fs, self.place.root
        if fs is None:
            base = Path(root)
            if not base.is_dir():
                raise ValidationError("source", "an existing directory of batches", root)
            found = [str(p) for p in base.glob("dt=*/hour=*/*") if p.name.endswith(SUFFIXES)]
        else:
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            found = [f"{protocol}://{p}" for p in fs.glob(f"{root}/dt=*/hour=*/*") if p.endswith(SUFFIXES)]
        if self.since_ms is not None:
            first = f"dt={_day(self.since_ms)}"
            found = [f for f in found if _partition(f) >= first]
        return sorted(found)

    def connect(self) -> Any:
        """Return a DuckDB connection with the `usage` view over the objects."""
        duckdb = _duckdb()
        conn = duckdb.connect()
        if self.place.fs is not None:
            conn.register_filesystem(self.place.fs)
        files = self.files()
        columns = ", ".join(f"{json.dumps(name)} {kind}" for name, kind in COLUMNS.items())
        if files:
            spec = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS.items()) + "}"
            listing = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
            source = f"read_json({listing}, format = 'newline_delimited', columns = {spec})"
        else:
            conn.execute(f"CREATE TABLE empty_usage ({columns})")
            source = "empty_usage"
        where = ""
        if self.since_ms is not None:
            where = f" WHERE ts >= make_timestamp({int(self.since_ms) * 1000})"
        conn.execute(f"""CREATE VIEW usage AS SELECT * FROM (
            SELECT *, CAST(CAST("timestamp" AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP) AS ts
            FROM {source}){where}""")
        return conn

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one SQL statement over the `usage` view; return (column names, rows)."""
        conn = self.connect()
        try:
            result = conn.execute(sql)
            if result.description is None:
                return [], []
            return [d[0] for d in result.description], result.fetchall()
        finally:
            conn.close()

    def stats(self) -> dict[str, list[dict[str, Any]]]:
        """Return every STATS question's rows as dicts: per_day, commands, errors, tokens, versions."""
        conn = self.connect()
        try:
            # Parse the objects once (the columns the questions need), not once per question: JSON parsing
            # is most of the cost (bench/bench_usage.py).
            needed = ", ".join(json.dumps(c) for c in STATS_COLUMNS)
            conn.execute(f"CREATE TEMP TABLE usage_once AS SELECT {needed} FROM usage")
            out: dict[str, list[dict[str, Any]]] = {}
            for name, sql in STATS.items():
                result = conn.execute(sql.replace("FROM usage", "FROM usage_once"))
                names = [d[0] for d in result.description]
                out[name] = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
            return out
        finally:
            conn.close()

    def export(self, out: str, fmt: str = "ndjson") -> int:
        """Write every payload (since `since`) to one local file as ndjson, csv or parquet; return the rows."""
        formats = {"ndjson": "(FORMAT json)", "csv": "(FORMAT csv, HEADER)", "parquet": "(FORMAT parquet)"}
        if fmt not in formats:
            raise ValidationError("format", "ndjson, csv or parquet", fmt)
        conn = self.connect()
        try:
            target = out.replace("'", "''")
            select = "SELECT " + ", ".join(json.dumps(c) for c in COLUMNS) + " FROM usage ORDER BY ts"
            conn.execute(f"COPY ({select}) TO '{target}' {formats[fmt]}")
            return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])
        finally:
            conn.close()

    def payloads(self, chunk: int = 10_000) -> Iterator[dict[str, Any]]:
        """Yield every payload as the client sent it (null fields left out), in chunks of `chunk` rows."""
        conn = self.connect()
        try:
            result = conn.execute("SELECT " + ", ".join(json.dumps(c) for c in COLUMNS) + " FROM usage")
            names = list(COLUMNS)
            while rows := result.fetchmany(chunk):
                for row in rows:
                    data = {k: v for k, v in zip(names, row, strict=True) if v is not None}
                    if isinstance(data.get("options"), str):
                        data["options"] = json.loads(data["options"])
                    yield data
        finally:
            conn.close()


def _partition(path: str) -> str:
    for part in path.replace("\\", "/").split("/"):
        if part.startswith("dt="):
            return part
    return ""
