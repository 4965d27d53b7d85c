"""A real `telemetry api` process for tests: started on a free loopback port, ready once /health answers.

Its output is read on a thread (a full pipe never stalls the server), stop() is SIGTERM then SIGKILL,
kill() is `kill -9` (no shutdown at all: what durability tests need).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

# The startup line; other lines name 127.0.0.1 URLs too (the OTLP/gRPC receiver), so anchor on "Serving".
_SERVING = re.compile(r"Serving .*? at (https?)://127\.0\.0\.1:(\d+)")


def free_port() -> int:
    """A loopback port free right now (for a server that must keep its port across a restart)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The pids of a process's children (a server's writer process, with --writer-process)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def running(pid: int) -> bool:
    """Whether a process runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, seconds: float = 15.0) -> bool:
    """Wait until a process has exited; False if it still runs after `seconds`."""
    deadline = time.monotonic() + seconds
    while running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class ServerProcess:
    """`telemetry api` in its own process on loopback, up (answering /health) when the constructor returns.

    Args:
        db: the SQLite file to serve (None: the configuration decides, e.g. TELEMETRY_DATABASE_URL in env).
        args: extra `telemetry api` arguments.
        env: extra environment variables.
        nofile: a lower RLIMIT_NOFILE (soft) for the server process, as `ulimit -n` would set.
        log_level: the server's --log-level ("info" keeps the access log in output()).
        port: 0 for a free port; a fixed one to restart a server on the URL its clients keep.
        cwd: the server's working directory.
        startup_s: how long the server may take to answer /health.
        ready: wait for /health here; False to start several servers together, then wait_ready() each.
        own_group: start it as the leader of a process group of its own (signal it with os.killpg, as a
            terminal's Ctrl-C or a service manager stopping a unit does).
        verify: how /health is checked over HTTPS (the server's certificate, for --tls-cert).
    """

    def __init__(self, db: Path | None, *args: str, env: dict[str, str] | None = None, nofile: int | None = None,
                 log_level: str = "info", port: int = 0, cwd: Path | None = None, startup_s: float = 60.0,
                 ready: bool = True, own_group: bool = False, verify: Any = True) -> None:
        # Wide enough that Rich never wraps the startup line (a PostgreSQL URL with options is long).
        environment = {**os.environ, "COLUMNS": "1000", "NO_COLOR": "1", **(env or {})}

        def limit_files() -> None:  # runs in the child before exec
            if nofile is not None:
                _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

        database = ["--db", str(db)] if db is not None else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vibekit_telemetry.cli", *database, "api", "--port", str(port),
             "--log-level", log_level, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, cwd=cwd,
            preexec_fn=limit_files if nofile is not None else None, start_new_session=own_group)
        self.lines: list[str] = []
        self._found = threading.Event()
        self.url = ""
        self.verify = verify  # httpx's: a CA file or SSL context for a server with --tls-cert
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.startup_s = startup_s
        if ready:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait for the startup line, then for /health to answer 200; kill the process if it never does."""
        deadline = time.monotonic() + self.startup_s
        if not self._found.wait(self.startup_s) or not self.url:
            self.kill()
            raise RuntimeError(f"`telemetry api` did not start:\n{self.output()}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=5, verify=self.verify).status_code == 200:
                    return
            except httpx.TransportError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"`telemetry api` never answered /health:\n{self.output()}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            match = _SERVING.search(line)
            if match and not self.url:
                self.url = f"{match.group(1)}://127.0.0.1:{match.group(2)}"
                self._found.set()
        self._found.set()  # the process ended before serving

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def output(self) -> str:
        """Everything the process printed so far (startup line, access log, warnings)."""
        return "".join(self.lines)

    def send_signal(self, sig: signal.Signals) -> int:
        """Send `sig` (SIGTERM, SIGINT: a graceful stop) and return the exit code once the process ended."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.kill()  # only if it is still running

    def kill(self) -> None:
        """`kill -9`: the process ends at once, with no shutdown (nothing flushed, no handler run)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._reader.join(timeout=5)

    def stop(self) -> str:
        """Stop the server (SIGTERM, then SIGKILL after 30 s) and return all it printed."""
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        self.kill()
        return self.output()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def self_signed(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM files (needs cryptography)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def refused_api(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `telemetry api` with options it is expected to refuse (it exits before serving); its result."""
    return subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(tmp_path / "x.db"), "api",
                           "--port", "0", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})},
                          stdin=subprocess.DEVNULL)
