"""The processes a topology starts on its hosts: started with ``ip netns exec``, logged to a file each,
stopped in reverse order (SIGTERM, then SIGKILL), all of them, whatever happened before."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.multihost.netns import Host


class ProcessFailed(RuntimeError):
    """A process exited, or did not answer in time; the message ends with the tail of its log."""


@dataclass
class Process:
    name: str
    host: Host
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: signal.Signals = signal.SIGTERM

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise ProcessFailed(
                f"{self.name} on {self.host.name} exited with code {self.popen.returncode}:\n{self.tail()}"
            )

    def wait_for_port(self, port: int, timeout: float = 60.0) -> None:
        """Until the host's address answers on ``port`` (seen from the test process's namespace)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((self.host.address, port)) == 0:
                    return
            time.sleep(0.1)
        raise ProcessFailed(
            f"{self.name} on {self.host.name} did not answer on {self.host.address}:{port} within "
            f"{timeout:.0f}s:\n{self.tail()}"
        )


@dataclass
class Processes:
    logs: Path
    started: list[Process] = field(default_factory=list)

    def start(
        self,
        name: str,
        host: Host,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> Process:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                host.command(argv),
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own: stopped with its children
            )
        process = Process(name, host, popen, log, stop_signal)
        self.started.append(process)
        return process

    def stop(self, process: Process, timeout: float = 15.0) -> None:
        if process.popen.poll() is None:
            _signal_group(process.popen.pid, process.stop_signal)
            with suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=timeout)
        _signal_group(process.popen.pid, signal.SIGKILL)  # what the leader left behind, if anything
        if process.popen.poll() is None:
            process.popen.wait()

    def stop_all(self, timeout: float = 15.0) -> None:
        """Each process's stop signal to all at once (newest first); SIGKILL to what is left after
        ``timeout``."""
        for process in reversed(self.started):
            if process.popen.poll() is None:
                _signal_group(process.popen.pid, process.stop_signal)
        deadline = time.monotonic() + timeout
        for process in reversed(self.started):
            with suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(process.popen.pid, signal.SIGKILL)
            if process.popen.poll() is None:
                process.popen.wait()
        self.started.clear()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, sig)


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    running = Processes(logs)
    try:
        yield running
    finally:
        running.stop_all()
