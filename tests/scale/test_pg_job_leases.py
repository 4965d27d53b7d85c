"""Job leases on a shared PostgreSQL: one holder per job and schema, freed when its session ends; none on SQLite."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from replica_support import wait_for

from vibekit_telemetry.scheduler import Scheduler
from vibekit_telemetry.store.sql import SQLStore


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
        assert first._leases is not None
        holder = first._leases._conn.info.backend_pid
        with first.engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(%(pid)s)", {"pid": holder})
        wait_for(lambda: second.job_lease("exports"), "the other store to take the free lease")
        with pytest.raises(psycopg.OperationalError):
            first.job_lease("exports")  # the dead session is noticed, not trusted
        assert first.job_lease("exports") is False  # reconnected: the other replica holds it now
    finally:
        first.shutdown()
        second.shutdown()


def test_two_schedulers_share_a_job_and_each_runs_its_per_process_one(pg_url: str) -> None:
    stores = [SQLStore(pg_url), SQLStore(pg_url)]
    schedulers = [Scheduler(), Scheduler()]
    runs: dict[str, list[int]] = {"shared": [], "own": []}
    try:
        for index, (store, scheduler) in enumerate(zip(stores, schedulers, strict=True)):
            scheduler.lease = store.job_lease
            scheduler.every("shared", 0.05, lambda i=index: runs["shared"].append(i), first_in=0)
            scheduler.every("own", 0.05, lambda i=index: runs["own"].append(i), first_in=0, per_process=True)
            scheduler.start()
        wait_for(lambda: len(runs["shared"]) >= 5 and set(runs["own"]) == {0, 1}, "a few periods")
        assert len(set(runs["shared"])) == 1  # one holder ran the shared job every time
        statuses = [s.status()["shared"] for s in schedulers]
        assert sorted(s["leader"] for s in statuses) == [False, True]
        assert "leader" not in schedulers[0].status()["own"]
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        for store in stores:
            store.shutdown()
