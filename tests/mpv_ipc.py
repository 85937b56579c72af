"""Drive the real mpv headless over its JSON IPC (mpv manual "JSON IPC", mpv-player/mpv DOCS/man/ipc.rst)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path


class Mpv:
    def __init__(self, sock: Path, *args: str, env: dict | None = None, stdin=subprocess.DEVNULL):
        self.sock_path = sock
        Path(sock).unlink(missing_ok=True)  # a socket left by an earlier mpv would be taken for this one's
        self.proc = subprocess.Popen(
            [
                "mpv",
                "--no-config",
                "--vo=null",
                "--ao=null",
                "--idle=yes",
                "--pause",
                "--sub-auto=no",
                f"--input-ipc-server={sock}",
                *args,
            ],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 20
        while not sock.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("mpv did not start")
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(sock))
        self.sock.settimeout(0.2)
        self.buffer = b""
        self.events: list[dict] = []
        self.next_id = 0

    def _lines(self):
        # Lines left in the buffer by an earlier call (command() stops at its reply) come first, even when
        # nothing new arrives.
        if b"\n" not in self.buffer:
            try:
                self.buffer += self.sock.recv(65536)
            except TimeoutError:
                return
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)

    def command(self, *args, timeout: float = 10.0):
        self.next_id += 1
        rid = self.next_id
        self.sock.sendall((json.dumps({"command": list(args), "request_id": rid}) + "\n").encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self._lines():
                if msg.get("request_id") == rid:
                    return msg
                if "event" in msg:
                    self.events.append(msg)
        raise TimeoutError(f"no answer to {args}")

    def get(self, name: str):
        reply = self.command("get_property", name)
        return reply.get("data") if reply.get("error") == "success" else None

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self._lines():
                if "event" in msg:
                    self.events.append(msg)

    def messages(self, name: str) -> list[list[str]]:
        return [
            e["args"][1:] for e in self.events if e.get("event") == "client-message" and e["args"][0] == name
        ]

    def close(self):
        with contextlib.suppress(OSError, TimeoutError):
            self.command("quit", timeout=3)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.sock.close()
