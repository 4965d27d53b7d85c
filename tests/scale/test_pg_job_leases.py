"""Scheduled jobs run in exactly one replica at a time on a shared PostgreSQL; the next takes over on a crash."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest
from replica_support import Replica, wait_for

from vibekit_telemetry.scheduler import Scheduler
from vibekit_telemetry.store.sql import SQLStore

JOB = "export:replicated"


@pytest.fixture
def other_schema_url(pg_url: str) -> Iterator[str]:
    """A second test schema in the same database (advisory locks are per database, not per schema)."""
    from pg_support import PG_DSN

    schema = "vk_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield re.sub(r"search_path%3D\w+", f"search_path%3D{schema}", pg_url)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_lease_has_one_holder_until_it_lets_go(pg_url: str, other_schema_url: str) -> None:
    first, second, elsewhere = SQLStore(pg_url), SQLStore(pg_url), SQLStore(other_schema_url)
    try:
        assert first.job_lease("retention") is True
        assert first.job_lease("retention") is True  # still ours, asked again each period
        assert second.job_lease("retention") is False
        assert second.job_lease("analytics") is True  # leases are per job
        assert elsewhere.job_lease("retention") is True  # another schema is another deployment
        first.shutdown()  # its session ends: the lease is free
        assert second.job_lease("retention") is True
    finally:
        for store in (first, second, elsewhere):
            store.shutdown()


def test_sqlite_has_no_leases_and_every_job_runs(tmp_path: Path) -> None:
    store = SQLStore(tmp_path / "one.db")
    scheduler = Scheduler()
    try:
        assert store.job_lease("retention") is None
        scheduler.lease = store.job_lease
        runs: list[int] = []
        scheduler.every("shared", 0.05, lambda: runs.append(1), first_in=0)
        scheduler.start()
        wait_for(lambda: runs, "the job to run")
        assert "leader" not in scheduler.status()["shared"]  # nothing to lead on one host
    finally:
        scheduler.stop()
        store.shutdown()


def test_a_lease_lost_with_the_connection_is_retaken_not_assumed(pg_url: str) -> None:
    first, second = SQLStore(pg_url), SQLStore(pg_url)
    try:
        assert first.job_lease("exports") is True
        # The server ends the holder's session (a restart, a failover, an idle timeout).
        with first.engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_locks "
                                 "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()")
        assert second.job_lease("exports") is True
        with pytest.raises(psycopg.OperationalError):
            first.job_lease("exports")  # the dead session is noticed, not trusted
        assert first.job_lease("exports") is False  # reconnected: the other replica holds it now
    finally:
        first.shutdown()
        second.shutdown()


def _stamps(directory: Path) -> list[int]:
    """The window ends (ms) of the scheduled export's files, oldest first."""
    from datetime import UTC, datetime

    out = []
    for path in directory.glob("replicated-*.ndjson"):
        stamp = path.name[len("replicated-"):-len(".ndjson")]
        seconds, millis = stamp.rstrip("Z").split(".")
        when = datetime.strptime(seconds, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        out.append(int(when.timestamp()) * 1000 + int(millis))
    return sorted(out)


def test_two_replicas_run_a_scheduled_export_once_per_period(pg_url: str, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    config = tmp_path / "telemetry.toml"
    schedule = {"name": "replicated", "format": "ndjson", "every": 1, "output_dir": str(exports), "keep": 1000}
    inline = ", ".join(f"{key} = {json.dumps(value)}" for key, value in schedule.items())
    config.write_text(f"[telemetry.exports]\nschedules = [{{{inline}}}]\n")
    replicas = [Replica(pg_url, tmp_path, env={"TELEMETRY_CONFIG": str(config)}) for _ in range(2)]
    try:
        for replica in replicas:
            replica.wait_up()
        # Both replicas have met the job at least once: one runs it, the other stands by.
        statuses = wait_for(lambda: (s := [r.jobs()[JOB] for r in replicas]) and all("leader" in j for j in s)
                            and s, "both replicas to meet the export job")
        leaders = [i for i, job in enumerate(statuses) if job["leader"]]
        assert len(leaders) == 1, statuses
        holder, standby = replicas[leaders[0]], replicas[1 - leaders[0]]
        wait_for(lambda: len(_stamps(exports)) >= 4 and standby.jobs()[JOB]["skipped"] >= 3, "four periods")
        assert standby.jobs()[JOB]["runs"] == 0
        stamps = _stamps(exports)
        # One scheduler runs a job at least one interval after its previous run ended; two replicas
        # running it would put two files within one period.
        assert min(b - a for a, b in pairwise(stamps)) >= 1000, stamps

        holder.kill()  # no goodbye: PostgreSQL ends its session and frees the lease
        before = len(stamps)
        wait_for(lambda: standby.jobs()[JOB]["runs"] >= 2, "the standby to take the job over")
        assert standby.jobs()[JOB]["leader"] is True
        assert len(_stamps(exports)) > before
    finally:
        for replica in replicas:
            replica.stop()
