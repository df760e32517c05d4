"""Temporal's own surfaces in the embedded stack: the dev server `taskplan run` starts (gRPC, Web UI, its
HTTP API and metrics) listens on loopback only, read from the kernel's socket tables; a non-loopback
temporal.address is refused."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

import pytest

from taskplan.runtime import PublicBindError, embedded_server_command, wait_for_port
from taskplan.settings import Settings
from tests.conftest import free_port

LISTEN = "0A"


def listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that the process holds (/proc/net/tcp{,6})."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != LISTEN or inode not in inodes:
                continue
            hex_address, hex_port = local.split(":")
            raw = bytes.fromhex(hex_address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            found.append((str(ipaddress.ip_address(ordered)), int(hex_port, 16)))
    return found


def test_the_embedded_dev_server_listens_on_loopback_only(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    settings = Settings.model_validate(
        {"temporal.address": f"127.0.0.1:{port}", "taskplan.dataDir": str(tmp_path)}
    )
    server = subprocess.Popen(
        embedded_server_command(settings, ui_port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port("127.0.0.1", port, 60, server)
        wait_for_port("127.0.0.1", ui_port, 60, server)
        sockets = listening(server.pid)
        ports = {p for _, p in sockets}
        assert {port, ui_port} <= ports, sockets
        public = [(a, p) for a, p in sockets if not ipaddress.ip_address(a).is_loopback]
        assert public == [], f"the dev server listens beyond loopback: {public}"
    finally:
        server.terminate()
        server.wait(30)

    for address in ("0.0.0.0:7233", "10.1.2.3:7233", "temporal.example:7233"):
        with pytest.raises(PublicBindError, match="binds loopback only"):
            embedded_server_command(Settings.model_validate({"temporal.address": address}))
