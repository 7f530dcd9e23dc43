"""Worker "hosts" as Linux network namespaces for the multi-host test (needs root and iproute2).

    Lan(("a", "b")): a bridge in the root namespace with the head's address (`head`, where the
    services bind), one namespace per host on a veth pair plugged into the bridge (`address(h)`),
    all in `network`; and one `outsider` namespace on another network, routed to the head, that
    the services must refuse. `cut(h)` takes a host's link down, as a pulled cable does.

Names and networks are random per instance (several test sessions may share the machine), and
`close()` deletes every link and namespace it made.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the suite as root)"
    if not shutil.which("ip"):
        return "`ip` (iproute2) is missing: `make netns-tools` installs it"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_networks(count: int) -> list[ipaddress.IPv4Network]:
    """`count` random /24 networks under 10.0.0.0/8 that no route of this machine overlaps."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    taken = [
        ipaddress.ip_network(line.split()[0], strict=False)
        for line in routes.splitlines()
        if line and line.split()[0][0].isdigit()
    ]
    found: list[ipaddress.IPv4Network] = []
    while len(found) < count:
        net = ipaddress.ip_network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(other) for other in taken + found):
            found.append(net)
    return found


class Lan:
    def __init__(self, hosts: tuple[str, ...]):
        self.tag = f"{random.randrange(16**4):04x}"
        self.bridge = f"pcb{self.tag}"
        self.net, outside = _free_networks(2)
        self.network = str(self.net)
        self.head = str(self.net[1])
        self._addresses = {host: str(self.net[i + 2]) for i, host in enumerate(hosts)}
        self._links = {host: f"pcv{self.tag}{i}" for i, host in enumerate(hosts)}
        self.namespaces: list[str] = []
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.head}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for host in hosts:
                self._plug(
                    self.namespace(host),
                    self._links[host],
                    f"{self._addresses[host]}/24",
                    bridge=True,
                )
            self.outsider_address = str(outside[2])
            self._plug(
                self.namespace("outsider"),
                f"pco{self.tag}",
                f"{self.outsider_address}/24",
                bridge=False,
            )
            _ip("addr", "add", f"{outside[1]}/24", "dev", f"pco{self.tag}")
            _ip(
                "-n",
                self.namespace("outsider"),
                "route",
                "add",
                self.network,
                "via",
                str(outside[1]),
            )
        except BaseException:
            self.close()
            raise

    def namespace(self, host: str) -> str:
        return f"pc{self.tag}-{host}"

    def address(self, host: str) -> str:
        return self._addresses[host]

    def _plug(self, namespace: str, link: str, address: str, bridge: bool) -> None:
        """A namespace with `address` on one end of a veth pair; the other end, `link`, stays here."""
        _ip("netns", "add", namespace)
        self.namespaces.append(namespace)
        _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("-n", namespace, "addr", "add", address, "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        if bridge:
            _ip("link", "set", link, "master", self.bridge)
        _ip("link", "set", link, "up")

    def exec_prefix(self, host: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.namespace(host))

    def cut(self, host: str) -> None:
        """Take the host's link down: its packets go nowhere, nothing tells either side."""
        _ip("link", "set", self._links[host], "down")

    def close(self) -> None:
        """Delete the namespaces (their veth ends go with them, and so the pairs) and the bridge."""
        for namespace in self.namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        for link in [
            *self._links.values(),
            f"pco{self.tag}",
            self.bridge,
        ]:  # gone already, unless a step failed
            subprocess.run(["ip", "link", "del", link], capture_output=True)
