"""Issue 7, attack 5: `telemetry query "<SQL>"` is read-only for real, bounded in time and size, stoppable."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Dataset, Run, as_json

from pg_support import PG_DSN
from vibekit_telemetry.store.adhoc_sql import AdhocSqlError, SqlLimits, first_keyword, run_sqlite
from vibekit_telemetry.store.base import AdhocSql
from vibekit_telemetry.store.sql import SQLStore

FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT {select} FROM c"


def _refused(result: object, *words: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert output.startswith("Error: ") and "Traceback" not in output
    for word in words:
        assert word in output, output


def test_attach_and_vacuum_into_create_no_file(run: Run, seeded: Dataset, tmp_path: Path) -> None:
    attached, copied = tmp_path / "attached.db", tmp_path / "copy.db"
    _refused(run("query", f"ATTACH '{attached}' AS x"), "ATTACH", "read-only")
    _refused(run("query", f"VACUUM INTO '{copied}'"), "VACUUM")
    _refused(run("query", f"/* hidden */ VACUUM INTO '{copied}'"), "VACUUM")
    assert not attached.exists() and not copied.exists()


def test_the_authorizer_stops_what_the_statement_check_lets_through(seeded: Dataset, db_file: Path,
                                                                    tmp_path: Path) -> None:
    # These start with WITH, SELECT or PRAGMA: only the SQLite authorizer can tell them apart.
    for sql, named in (("WITH a AS (SELECT 1) DELETE FROM events", "DELETE"),
                       ("WITH a AS (SELECT 1) INSERT INTO events (event_id) VALUES ('x')", "INSERT"),
                       ("SELECT load_extension('/tmp/evil')", "load_extension"),
                       ("PRAGMA user_version = 7", "PRAGMA user_version"),
                       ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"),
                       ("PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint")):
        with pytest.raises(AdhocSqlError) as refused:
            run_sqlite(db_file, sql)
        assert refused.value.reason == "refused" and named in str(refused.value), (sql, refused.value)
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 14
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0


def test_reading_pragmas_and_sql_still_work(run: Run, seeded: Dataset) -> None:
    columns = as_json(run("query", "PRAGMA table_info(events)", "--format", "json"))
    assert "session_id" in {c["name"] for c in columns}
    rows = as_json(run("query", "/* counts */\nSELECT COUNT(*) AS n FROM events", "--format", "json"))
    assert rows == [{"n": 14}]
    assert as_json(run("query", "VALUES (1, 'a')", "--format", "json")) == [{"column1": 1, "column2": "a"}]


def test_a_never_ending_recursive_cte_stops_at_the_timeout(run: Run, seeded: Dataset) -> None:
    _refused(run("query", FOREVER.format(select="COUNT(*)"), "--timeout", "1"), "1 s timeout", "--timeout")
    # A result that grows in SQLite's memory stops too (at the value size cap or the timeout).
    grown = run("query", FOREVER.format(select="group_concat(x)"), "--timeout", "5")
    assert grown.exit_code == 1 and ("too large" in grown.output or "timeout" in grown.output), grown.output


def test_rows_are_capped(run: Run, seeded: Dataset) -> None:
    result = run("query", FOREVER.format(select="x"), "--max-rows", "5", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [r["x"] for r in as_json(result)] == [1, 2, 3, 4, 5]
    assert "cut at 5 rows" in result.stderr


def test_the_databases_own_error_is_one_clean_line(run: Run, seeded: Dataset) -> None:
    _refused(run("query", "SELECT * FROM nowhere"), "SQL failed", "no such table: nowhere")
    _refused(run("query", "SELECT FROM WHERE"), "SQL failed", "syntax error")


def test_the_store_api_runs_read_only_sql(seeded: Dataset, db_file: Path) -> None:
    store = SQLStore(db_file)
    assert isinstance(store, AdhocSql)
    result = store.run_readonly_sql("SELECT event_type, COUNT(*) FROM events GROUP BY 1 ORDER BY 1",
                                    SqlLimits(max_rows=2))
    assert result.columns == ["event_type", "COUNT(*)"] and len(result.rows) == 2 and result.truncated
    with pytest.raises(AdhocSqlError) as refused:
        store.run_readonly_sql("DELETE FROM events")
    assert refused.value.reason == "refused"
    with pytest.raises(AdhocSqlError) as memory_db:
        SQLStore("sqlite://").run_readonly_sql("SELECT 1")
    assert "in-memory" in str(memory_db.value)


def test_statement_keywords() -> None:
    assert first_keyword("  /* a */ -- b\n ( select 1)") == "select"
    assert first_keyword("\n\nWITH x AS (SELECT 1) SELECT * FROM x") == "with"
    assert first_keyword(";") == ""


def _wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def _has_open(pid: int, path: Path) -> bool:
    """Whether process pid holds path open (a descriptor closed while we look is skipped, not an error)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path.resolve()):
                return True
        except OSError:
            continue  # closed between the listing and the look: the CLI opens and closes files as it starts
    return False


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "vibekit_telemetry.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to see the statement start")
def test_ctrl_c_interrupts_a_running_sqlite_statement(seeded: Dataset, db_file: Path) -> None:
    process = _cli("--db", str(db_file), "query", FOREVER.format(select="COUNT(*)"), "--timeout", "600")
    try:
        # The database file is opened just before the statement runs.
        _wait_until(lambda: _has_open(process.pid, db_file))
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_ctrl_c_outside_the_statement_exits_130_without_a_traceback() -> None:
    # Ctrl-C while a command opens the store (before the statement's own handler is installed) is a
    # KeyboardInterrupt in the command: the shell's 130 and one line, as for the statement itself.
    from click.testing import CliRunner

    from vibekit_telemetry.cli.context import TelemetryCommand

    def opening_the_store() -> None:
        raise KeyboardInterrupt

    command = TelemetryCommand("query", callback=opening_the_store)
    result = CliRunner().invoke(command, [])
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "Traceback" not in result.output


# -- PostgreSQL ---------------------------------------------------------------------------------------

def _pg_reason() -> str | None:
    try:
        import psycopg

        psycopg.connect(PG_DSN).close()
    except Exception as exc:
        return f"PostgreSQL is not reachable on 127.0.0.1:5432 db 'test': {exc}".splitlines()[0]
    return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL as the local superuser `postgres`, on a schema of its own holding a sequence and a table."""
    reason = _pg_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = "vk_sql_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE SEQUENCE {schema}.ids")
        conn.execute(f"CREATE TABLE {schema}.notes (id int)")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_postgres_superuser_is_refused_unless_allowed(run: Run, pg_url: str) -> None:
    _refused(run("query", "SELECT 1 AS one", db=pg_url), "superuser 'postgres'", "--allow-superuser")
    allowed = run("query", "SELECT 1 AS one", "--allow-superuser", "--format", "json", db=pg_url)
    assert as_json(allowed) == [{"one": 1}]


def test_postgres_copy_to_program_never_runs(run: Run, pg_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    copy = f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'"
    _refused(run("query", copy, db=pg_url), "COPY is not allowed")
    _refused(run("query", copy, "--allow-superuser", db=pg_url), "COPY is not allowed")
    chained = run("query", f"SELECT 1; {copy}", "--allow-superuser", db=pg_url)
    assert chained.exit_code == 1, chained.output
    assert not marker.exists()


def test_postgres_errors_are_one_clean_line(run: Run, pg_url: str) -> None:
    _refused(run("query", "SELECT * FROM nowhere", "--allow-superuser", db=pg_url), "SQL failed", "nowhere")


def test_postgres_runs_read_only(run: Run, pg_url: str) -> None:
    for sql in ("SELECT nextval('ids')", "WITH gone AS (DELETE FROM notes RETURNING id) SELECT * FROM gone",
                "SELECT set_config('default_transaction_read_only', 'off', false), nextval('ids')"):
        result = run("query", sql, "--allow-superuser", db=pg_url)
        assert result.exit_code == 1 and ("read-only" in result.output or "data-modifying" in result.output), \
            (sql, result.output)


def test_postgres_pg_sleep_stops_at_the_timeout(pg_url: str) -> None:
    # pg_sleep(40) against a 1 s timeout: finishing well inside 30 s proves the server cancelled it.
    process = _cli("--db", pg_url, "query", "SELECT pg_sleep(40)", "--timeout", "1", "--allow-superuser")
    try:
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 1 and "1 s timeout" in err, err


def _sleeping(application: str) -> bool:
    # The statement itself (DECLARE … CURSOR, then the FETCH that runs it), not the setup queries on
    # the same connection just before it: Ctrl-C there is not the statement's to cancel.
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                           "AND application_name = %s AND (query LIKE %s OR query LIKE %s)",
                           (application, "%pg_sleep(40)%", "FETCH %")).fetchone()
    return bool(row and row[0])


def test_postgres_ctrl_c_cancels_the_statement_on_the_server(pg_url: str) -> None:
    marker = f"vk_sql_{uuid.uuid4().hex[:12]}"  # names this CLI's connection in pg_stat_activity
    process = _cli("--db", f"{pg_url}&application_name={marker}", "query", "SELECT pg_sleep(40)",
                   "--allow-superuser")
    try:
        _wait_until(lambda: _sleeping(marker))
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130 and "cancelled on the server" in err, err
    _wait_until(lambda: not _sleeping(marker), timeout=10)
