"""MaxineServer runs the real, built Maxine server (server/dist/main.js) as a child process on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
MAIN = REPO / "server" / "dist" / "main.js"
HEADER_ECHO = REPO / "server" / "test" / "fixtures" / "header-echo-server.mjs"
"""HEADER_ECHO runs the built server and prints each call's authorization header and mTLS identity ("msg": "test: call")."""
MAKE_CERTS = REPO / "scripts" / "make-test-certs.sh"


def make_test_certs(directory: Path) -> Path:
    """make_test_certs runs scripts/make-test-certs.sh (openssl) into directory: ca.pem, server.pem, client.pem... with their keys."""
    subprocess.run(["bash", str(MAKE_CERTS), str(directory)], check=True, capture_output=True, timeout=60)
    return directory


def require_built_server() -> tuple[str, Path]:
    """require_built_server returns (node, main.js) or fails loudly saying what is missing."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node not found on PATH: the Python SDK tests run the real Maxine server (Node.js 20+)")
    if not MAIN.is_file():
        raise RuntimeError(f"{MAIN} is missing: build the server first (npm run build at the repository root)")
    return node, MAIN


def free_port() -> int:
    """free_port returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MaxineServer:
    """MaxineServer is one server process; start() waits until it logs "maxine listening"."""

    def __init__(self, env: dict[str, str] | None = None, entry: Path | None = None) -> None:
        self.env = {"MAXINE_HOST": "127.0.0.1", "MAXINE_PORT": "0", "MAXINE_LOG_LEVEL": "info", **(env or {})}
        self.entry = entry
        self.port = 0
        self.logs: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def target(self) -> str:
        """target is the server's address for a Client: 127.0.0.1:<port>."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> MaxineServer:
        node, main = require_built_server()
        self.proc = subprocess.Popen(
            [node, str(self.entry or main)],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        listening = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.logs.append(line.rstrip("\n"))
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("msg") == "maxine listening" and "port" in rec:
                    self.port = int(rec["port"])
                    listening.set()
            listening.set()  # exited: start() reports it

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not listening.wait(timeout) or self.port == 0:
            self.kill()
            raise RuntimeError(f"the server did not start within {timeout} s:\n" + "\n".join(self.logs[-20:]))
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """stop sends SIGTERM and waits for the exit; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._finish()

    def signal(self, sig: signal.Signals) -> None:
        """signal sends sig to the server (SIGHUP reloads its TLS certificate)."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill sends SIGKILL and waits for the exit."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._finish()

    def _finish(self) -> int | None:
        assert self.proc is not None
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


class RedisServer:
    """RedisServer is a private redis-server on 127.0.0.1 and a free port, no persistence; never one someone else left running."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self._dir: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found on PATH: install it (apt-get install -y redis-server); the Redis-mode tests never skip")
        self._dir = tempfile.mkdtemp(prefix="maxine-py-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self._dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """stop kills the server (its own PID) and removes its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
