#!/usr/bin/env python3
"""Rehearse README's "Running a central server" on one machine, without Docker, and check every step.

    python deploy/try_central.py --database-url postgresql://postgres@127.0.0.1:5432/telemetry \\
        [--redis-url redis://127.0.0.1:6379/0] [--workdir DIR]

What it does, as the README's steps (each with the same commands and variables):

1. generates an ingest key for the agent hosts and a read key for Prometheus and the checks
   (`telemetry keys generate`); the servers get only their hashes;
2. starts two `telemetry api` replicas on the PostgreSQL database at the same moment (the schema is
   created once under a lock), rate limits in Redis when --redis-url is given;
3. runs two agent hosts, each recording into its own SQLite file and forwarding to one replica
   (`TELEMETRY_SERVER_URL`, `TELEMETRY_API_KEY`), as a load balancer would spread them;
4. checks `telemetry forward status` on each host (nothing left to send) and that every event of
   both hosts can be read back through either replica;
5. scrapes each replica's /metrics as deploy/prometheus/prometheus.yml does (the read key as a
   bearer token) and checks it exports every metric the Grafana dashboard and the alert rules query;
6. stops the replicas.

Exit status 0 when every check passed, 1 with the failed step otherwise. Run it against a database
you can write to; it leaves the events it sent there. tests/scale/test_try_central.py runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parent
METRIC = re.compile(r"\btelemetry_[a-z_]+\b")


class StepFailed(Exception):
    """A step of the rehearsal did not do what the README says."""


def step(text: str) -> None:
    """Print the step being run."""
    print(f"==> {text}", flush=True)


def telemetry(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run the `telemetry` CLI (this interpreter's), return its stdout; StepFailed on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})}, cwd=cwd, timeout=300)
    if done.returncode != 0:
        raise StepFailed(f"telemetry {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return done.stdout


def http_get(url: str, key: str | None = None, *, bearer: bool = False) -> tuple[int, str]:
    """GET a URL with the key as X-API-Key (or as a bearer token, as Prometheus sends it); (status, body)."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"} if bearer else {"X-API-Key": key}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def free_port() -> int:
    """A loopback port no one listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_replicas(database_url: str, redis_url: str | None, config_entries: str, workdir: Path) -> list[Any]:
    """Step 2: two replicas started together; wait until both are ready."""
    replicas = []
    for n in (1, 2):
        port = free_port()
        env = {**os.environ, "NO_COLOR": "1", "TELEMETRY_DATABASE_URL": database_url,
               "TELEMETRY_API_KEYS": config_entries, **({"TELEMETRY_REDIS_URL": redis_url} if redis_url else {})}
        log = (workdir / f"replica-{n}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "vibekit_telemetry.cli", "api", "--host", "127.0.0.1",
                                    "--port", str(port), "--log-level", "warning"],
                                   env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        replicas.append((process, f"http://127.0.0.1:{port}", workdir / f"replica-{n}.log"))
    for process, url, log_path in replicas:
        deadline = time.monotonic() + 90
        while http_status(url + "/health/ready") != 200:
            if process.poll() is not None:
                raise StepFailed(f"replica {url} exited: {log_path.read_text(errors='replace')[-800:]}")
            if time.monotonic() > deadline:
                raise StepFailed(f"replica {url} not ready after 90 s")
            time.sleep(0.2)
        print(f"    replica {url} ready")
    return replicas


def http_status(url: str) -> int:
    """The status of a GET, 0 when nothing answers."""
    try:
        return http_get(url)[0]
    except OSError:
        return 0


def run_hosts(replicas: list[Any], key: str, workdir: Path) -> dict[str, int]:
    """Step 3 and 4: two agent hosts record and forward; return each host's session ids -> event counts."""
    counts: dict[str, int] = {}
    # The hosts run side by side, as real ones do.
    with ThreadPoolExecutor(len(replicas)) as pool:
        for found in pool.map(lambda args: run_host(*args, key, workdir), enumerate(replicas, start=1)):
            counts.update(found)
    return counts


def run_host(n: int, replica: Any, key: str, workdir: Path) -> dict[str, int]:
    """One agent host: record a demo workload, forward it, check nothing is left; its sessions' counts."""
    counts: dict[str, int] = {}
    _, url, _ = replica
    host = workdir / f"host-{n}"
    host.mkdir(exist_ok=True)
    env = {"TELEMETRY_SERVER_URL": url, "TELEMETRY_API_KEY": key, "TELEMETRY_DB_PATH": str(host / "host.db")}
    telemetry("demo", "--sessions", "3", "--seed", str(n), "--days", "0.01", env=env, cwd=host)
    status = json.loads(telemetry("forward", "status", "--format", "json", env=env, cwd=host))
    lags = [row.get("lag") for row in status] if isinstance(status, list) else status
    print(f"    host {n} -> {url}: forward status {json.dumps(status)}")
    if not isinstance(status, list) or not status or any(lag != 0 for lag in lags):
        raise StepFailed(f"host {n} still has events to forward: {status}")
    with sqlite3.connect(host / "host.db") as db:
        for session_id, events in db.execute("SELECT session_id, count(*) FROM events "
                                              "WHERE session_id IS NOT NULL GROUP BY session_id"):
            counts[session_id] = events
    return counts


def check_central(replicas: list[Any], key: str, counts: dict[str, int]) -> None:
    """Step 4: every host event can be read back through either replica."""
    for _, url, _ in replicas:
        for session_id, expected in counts.items():
            status, body = http_get(f"{url}/api/sessions/{session_id}", key)
            if status != 200:
                raise StepFailed(f"{url}: session {session_id} not found ({status} {body[:200]})")
            session = json.loads(body)
            got = session.get("event_count", session.get("eventCount"))
            if got != expected:
                raise StepFailed(f"{url}: session {session_id} has {got} events, the host recorded {expected}")
    print(f"    {len(counts)} sessions, {sum(counts.values())} events, identical through both replicas")


def exported_metrics(text: str) -> set[str]:
    """Series names on a /metrics page (counters also as _total, histograms with _bucket/_sum/_count)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name, f"{name}_total"} if kind == "counter" else {name}
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def queried_metrics() -> set[str]:
    """Every metric the Grafana dashboard and the Prometheus alert rules in deploy/ query."""
    dashboard = json.loads((DEPLOY / "grafana/dashboards/telemetry.json").read_text(encoding="utf-8"))
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    # alerts.yml without a YAML parser: every `expr:` line (the rules keep each on one line).
    queries += [line.split("expr:", 1)[1] for line in (DEPLOY / "prometheus/alerts.yml").read_text().splitlines()
                if "expr:" in line]
    return {name for query in queries for name in METRIC.findall(query)}


def check_metrics(replicas: list[Any], read_key: str) -> None:
    """Step 5: what Prometheus scrapes from each replica feeds every dashboard panel and alert."""
    wanted = queried_metrics()
    for _, url, _ in replicas:
        status, text = http_get(url + "/metrics", read_key, bearer=True)
        if status != 200:
            raise StepFailed(f"{url}/metrics answered {status}")
        missing = wanted - exported_metrics(text)
        if missing:
            raise StepFailed(f"{url}/metrics lacks {sorted(missing)}, which deploy/ queries")
    print(f"    both replicas export the {len(wanted)} metrics the dashboard and alerts query")


def main(argv: list[str] | None = None) -> int:
    """Run the rehearsal; 0 when every step passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True, help="postgresql://… the replicas share")
    parser.add_argument("--redis-url", help="redis://… for rate limits shared by the replicas")
    parser.add_argument("--workdir", type=Path, help="where hosts' files and replica logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        parser.error(f"--database-url: expected a postgresql:// URL, got {args.database_url!r}")
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="vibekit-central-"))
    workdir.mkdir(parents=True, exist_ok=True)
    replicas: list[Any] = []
    try:
        step("1. keys: ingest for the agent hosts, read for Prometheus (the servers keep only hashes)")
        ingest = json.loads(telemetry("keys", "generate", "--scopes", "ingest", "--format", "json"))
        read = json.loads(telemetry("keys", "generate", "--scopes", "read", "--format", "json"))
        step("2. two `telemetry api` replicas on one PostgreSQL, started together")
        entries = f"{ingest['config_entry']},{read['config_entry']}"
        replicas = start_replicas(args.database_url, args.redis_url, entries, workdir)
        step("3. agent hosts record locally and forward, one per replica")
        counts = run_hosts(replicas, ingest["key"], workdir)
        step("4. every event is on the central server, read through either replica")
        check_central(replicas, read["key"], counts)
        step("5. Prometheus/Grafana: each replica's /metrics has what deploy/ queries")
        check_metrics(replicas, read["key"])
    except StepFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        step("6. stopping the replicas")
        for process, _, _ in replicas:
            process.terminate()
        for process, _, _ in replicas:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    print("OK: agent hosts -> two replicas on PostgreSQL -> metrics for the dashboards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
