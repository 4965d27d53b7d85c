"""deploy/try_central.py, README's "Running a central server" rehearsed end to end, passes on real services."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML reads the Prometheus and compose files (pip install pyyaml)")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1).ping())
    except Exception:
        return False


def test_the_central_server_walkthrough_runs(pg_url: str, tmp_path: Path) -> None:
    url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    redis = ["--redis-url", "redis://127.0.0.1:6379/0"] if _redis_up() else []
    done = subprocess.run([sys.executable, str(DEPLOY / "try_central.py"), "--database-url", url,
                           "--workdir", str(tmp_path), *redis], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 sessions" in done.stdout
    assert "OK: agent hosts -> two replicas on PostgreSQL -> metrics for the dashboards" in done.stdout


def test_the_walkthrough_refuses_a_database_that_is_not_postgresql(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(DEPLOY / "try_central.py"), "--database-url", "sqlite:///x.db"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--database-url: expected a postgresql:// URL" in done.stderr


def test_prometheus_sends_a_read_key_the_compose_file_mounts() -> None:
    # The replicas run with auth: without a key, every scrape of /metrics is a 401 and the dashboards stay empty.
    job = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    key_file = job["authorization"]["credentials_file"]
    mounts = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["prometheus"]["volumes"]
    assert any(m.split(":")[1] == key_file and (DEPLOY / m.split(":")[0]).is_file() for m in mounts), mounts
