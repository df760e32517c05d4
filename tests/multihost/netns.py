"""Hosts on one machine: a network namespace per host, all on one bridge, in a private /24.

The bridge lives in a namespace of its own (the "switch"), so the machine's own firewall never sees the
hosts' traffic as forwarded packets; the test process reaches every host through one more veth, whose
root-namespace end holds the subnet's ``.1``. Each host's namespace has ``eth0`` (its link to the switch)
and a hosts file (``/etc/netns/<ns>/hosts``, which ``ip netns exec`` puts in place of ``/etc/hosts``) that
names every host, so processes find each other by name (``temporal``, ``db``, ``s3``...) as they would
through DNS.

Names are unique per run (``tp<8 hex>``: pytest-xdist workers build networks side by side), and
:func:`sweep_stale` removes what a killed run left behind: every run records its owner's pid.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import random
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

STATE_DIR = Path("/run/taskplan-netns")  # one file per live run: its owner's pid
NETNS_ETC = Path("/etc/netns")
SUPERNET = ipaddress.IPv4Network("10.213.0.0/16")  # each run takes one free /24 of it


class NetworkError(RuntimeError):
    """An `ip` command failed; the message has the command and what it printed."""


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Host:
    """One host: a network namespace with one address on the run's subnet."""

    name: str
    namespace: str
    address: str
    switch_port: str  # its link's end on the switch (down = the host is cut off)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the host's network namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Network:
    run_id: str
    subnet: ipaddress.IPv4Network
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def switch(self) -> str:
        return f"{self.run_id}-sw"

    @property
    def client_link(self) -> str:
        return f"{self.run_id}c"  # the root namespace's end (15 characters at most)

    @property
    def client_address(self) -> str:
        return str(self.subnet.network_address + 1)

    def add_host(self, name: str) -> Host:
        """A new host on the switch, with the next free address."""
        index = len(self.hosts)
        host = Host(
            name=name,
            namespace=f"{self.run_id}-{name}",
            address=str(self.subnet.network_address + 10 + index),
            switch_port=f"p{index}",
        )
        ip("netns", "add", host.namespace)
        ip("-n", self.switch, "link", "add", host.switch_port, "type", "veth",
           "peer", "name", "eth0", "netns", host.namespace)  # fmt: skip
        ip("-n", self.switch, "link", "set", host.switch_port, "master", "br0", "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        self.hosts[name] = host
        return host

    def write_hosts_files(self) -> None:
        """Every host resolves every other by name (call after the last add_host)."""
        lines = ["127.0.0.1 localhost", *(f"{h.address} {h.name}" for h in self.hosts.values())]
        for host in self.hosts.values():
            directory = NETNS_ETC / host.namespace
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "hosts").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def cut(self, name: str) -> None:
        """Take the host's link down: nothing reaches it or leaves it until :meth:`restore`."""
        ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "down")

    def restore(self, name: str) -> None:
        ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "up")


@contextmanager
def network(prefix: str = "tp") -> Iterator[Network]:
    """A switch and the test process's link to it; everything (hosts included) is removed on exit,
    processes left in the namespaces first."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    sweep_stale()
    run_id = f"{prefix}{secrets.token_hex(4)}"
    marker = STATE_DIR / run_id
    # Choosing a subnet and claiming it (the client link's address) is one step for all runs on the machine.
    with _machine_lock():
        subnet = _free_subnet()
        marker.write_text(f"{os.getpid()}\n", encoding="utf-8")
        net = Network(run_id, subnet)
        try:
            ip("netns", "add", net.switch)
            ip("-n", net.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", net.switch, "link", "set", "br0", "up")
            ip("link", "add", net.client_link, "type", "veth", "peer", "name", "client", "netns", net.switch)
            ip("-n", net.switch, "link", "set", "client", "master", "br0", "up")
            ip("addr", "add", f"{net.client_address}/{subnet.prefixlen}", "dev", net.client_link)
            ip("link", "set", net.client_link, "up")
        except BaseException:
            remove(run_id)
            raise
    try:
        yield net
    finally:
        remove(run_id)


def remove(run_id: str) -> None:
    """Kill what runs in the run's namespaces, then delete them, their links and hosts files."""
    namespaces = [ns for ns in _namespaces() if ns.startswith(f"{run_id}-")]
    for ns in namespaces:
        _kill_namespace_processes(ns)
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
    # Deleting the switch's namespace deletes the client link's peer, hence the link; in case it did not:
    subprocess.run(["ip", "link", "del", f"{run_id}c"], capture_output=True, check=False)
    (STATE_DIR / run_id).unlink(missing_ok=True)


def sweep_stale() -> None:
    """Remove the networks of runs whose owner process is gone (a run killed before its teardown)."""
    if not STATE_DIR.is_dir():
        return
    for marker in STATE_DIR.iterdir():
        if marker.name.startswith(".") or not marker.is_file():
            continue
        try:
            pid = int(marker.read_text(encoding="utf-8").strip())
        except ValueError:
            pid = 0
        if pid <= 0 or not Path(f"/proc/{pid}").exists():
            remove(marker.name)


@contextmanager
def _machine_lock() -> Iterator[None]:
    with (STATE_DIR / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUPERNET that no address or route of the root namespace overlaps."""
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in (ip("-4", "-o", "addr", "show") + ip("-4", "route", "show")).splitlines():
        for word in line.split():
            try:
                taken.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    candidates = list(SUPERNET.subnets(new_prefix=24))
    random.shuffle(candidates)
    for candidate in candidates:
        if not any(candidate.overlaps(t) for t in taken if t.version == 4 and t.prefixlen > 0):
            return candidate
    raise NetworkError(f"no free /24 left in {SUPERNET}")


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_namespace_processes(ns: str) -> None:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False).stdout
    for word in out.split():
        try:
            os.kill(int(word), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            continue
