"""Networks through the ``dockyard`` CLI: the default bridge, published ports, network modes,
user-defined networks with embedded DNS, legacy links, and cleanup of everything a container
added (veths, bridges, iptables rules, namespaces, leases).

Traffic goes only to loopback, to the containers these tests start, and to a namespace a test
makes (standing in for "another host"); never anywhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support import drop_filter_table_unless, has_filter_table, make_busybox_rootfs, needs_root, tar_dir


def runtime_available() -> bool:
    try:
        from dockyard.engine.runtime import binary

        binary()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def other_host(tmp_path: Path, name: str):
    """A network namespace of the test's own ("another host"), bound to a file: ``ip`` takes its
    path where it takes a name, and ``nsenter --net=PATH`` runs in it.  (``ip netns add`` would
    leave its /run/netns mount behind on a host that had none.)"""
    from dockyard.engine.network import netlink

    path = str(tmp_path / name)
    netlink.create_netns(path)
    try:
        yield path
    finally:
        netlink.remove_netns(path)


def iptables_works() -> bool:
    return shutil.which("iptables") is not None and subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S"], capture_output=True).returncode == 0


def nftables_works() -> bool:
    """dockyard's firewall is nf_tables over netlink (no executable): the kernel must have it."""
    try:
        from dockyard.engine.network.firewall import all_rules

        all_rules()
        return True
    except OSError:
        return False


pytestmark = [needs_root, pytest.mark.skipif(not runtime_available(), reason="dockyard-runtime is not built"),
              pytest.mark.skipif(not nftables_works(), reason="nf_tables does not work here"),
              pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed")]

NET_APPLETS = ("ip", "ifconfig", "route", "nc", "wget", "httpd", "nslookup", "ping", "seq", "head", "tail", "dd",
               "sort", "tr", "cut", "ls", "kill")


def eventually(check, timeout: float = 10.0):
    """The kernel destroys a namespace (and the veth in it) asynchronously: poll for a while."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if not value or time.time() > deadline:
            return value
        time.sleep(0.1)


def links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line.split(": ")[1].split("@")[0] for line in out.splitlines()]


def rules() -> str:
    """dockyard's firewall rules (its nf_tables table, read over netlink), one a line."""
    from dockyard.engine.network.firewall import all_rules

    return "".join(line + "\n" for line in all_rules())


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path))]


def make_image(cli, tmp_path: Path, name: str = "bb", changes: tuple[str, ...] = ()) -> None:
    root = make_busybox_rootfs(tmp_path / f"rootfs-{name}")
    for applet in NET_APPLETS:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text("hello from the container\n")
    tar = tar_dir(root, tmp_path / f"{name}.tar")
    args = ["import", "-c", 'CMD ["/bin/sh"]']
    for c in changes:
        args += ["-c", c]
    cli(*args, str(tar), name)


@pytest.fixture
def dyn(cli, tmp_path, monkeypatch):
    """The CLI on a private root and run dir with a busybox image "bb" that has the network
    applets; at the end, checks that nothing is left: containers, mounts, veths, bridges,
    iptables rules, namespaces, leases, the DNS server."""
    run = Path(cli.run_dir)  # the daemon's (the cli fixture makes it and removes it after the daemon stops)
    monkeypatch.setenv("DOCKYARD_RUN", str(run))
    make_image(cli, tmp_path)
    bridge = "dyb" + hashlib.sha256(str(cli.root.resolve()).encode()).hexdigest()[:10]
    cli.bridge = bridge
    created: set[str] = set()
    cli.created = created
    try:
        yield cli
    finally:
        import sqlite3

        try:
            con = sqlite3.connect(cli.root / "state.db")
            created |= {r[0][:10] for r in con.execute("SELECT id FROM containers")}
            con.close()
        except sqlite3.Error:
            pass
        leftover = cli("ps", "-aq").stdout.decode().split()
        if leftover:
            cli("rm", "-f", *leftover, check=False)
        nets = cli("network", "ls", "-q", "--no-trunc", "--filter", "type=custom", check=False).stdout.decode().split()
        cli("network", "prune", "-f", check=False)
        user_bridges = ["dyn" + n[:12] for n in nets]
        # a daemon keeps a private root's default bridge while it serves: stopped first
        from support import stop_daemon

        stop_daemon(run, cli.root)
        deadline = time.time() + 5
        dns_sock = list(run.glob("dns-*.sock"))
        while dns_sock and time.time() < deadline:
            time.sleep(0.2)
            dns_sock = list(run.glob("dns-*.sock"))
        left_links = eventually(lambda: [l for l in links() if l == bridge or l in user_bridges or l.startswith("dyv")
                                         and l[3:13] in created])
        left_rules = [r for r in rules().splitlines() if bridge in r or any(b in r for b in user_bridges)]
        netns = os.listdir(run / "netns") if (run / "netns").exists() else []
        leases = []
        db = cli.root / "state.db"
        if db.exists():
            import sqlite3

            con = sqlite3.connect(db)
            try:
                leases = con.execute("SELECT container, ip FROM endpoints WHERE ip != ''").fetchall()
            except sqlite3.OperationalError:
                pass
            con.close()
        left_mounts = mounts_under(cli.root) + mounts_under(run)
        for l in left_links:
            subprocess.run(["ip", "link", "del", l], check=False)
        for m in left_mounts:
            subprocess.run(["umount", "-l", m], check=False)
        assert leftover == [], "a test left containers behind"
        assert (left_links, left_rules, netns, leases, left_mounts, dns_sock) == ([], [], [], [], [], [])


def text(proc) -> str:
    return proc.stdout.decode()


def fails(proc, code: int = 125) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    return err


def inspect(dy, ref: str) -> dict:
    return json.loads(text(dy("inspect", ref)))[0]


def free_port() -> int:
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(host: str, port: int, timeout: float = 5.0) -> str:
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return data.decode(errors="replace")
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


# -- the default bridge ---------------------------------------------------------------------------

def test_default_bridge_address_and_files(dyn):
    dyn("run", "-d", "--name", "keep", "bb", "sleep", "60")  # keeps the private root's bridge up
    out = text(dyn("run", "--rm", "-h", "box", "--add-host", "db.local:10.1.2.3", "--dns", "192.0.2.53",
                   "--dns-search", "example.test", "--dns-option", "ndots:2", "bb", "sh", "-c",
                   "ip -o -4 addr show eth0; ip route; hostname; echo ===; cat /etc/hosts; echo ---; cat /etc/resolv.conf;"
                   "ip -o link show lo"))

    addr = out.split("inet ")[1].split()[0]
    iface = ipaddress.IPv4Interface(addr)
    for other in ("172.17.0.0/16", "10.88.0.0/16"):
        assert not iface.network.overlaps(ipaddress.IPv4Network(other))
    bridge = json.loads(text(dyn("network", "inspect", "bridge")))[0]
    assert bridge["IPAM"]["Config"][0]["Subnet"] == str(iface.network)
    gateway = bridge["IPAM"]["Config"][0]["Gateway"]
    assert f"default via {gateway} dev eth0" in out
    hosts, resolv = out.split("===\n")[1].split("---\n")
    assert "\nbox\n" in out
    assert "10.1.2.3\tdb.local\n" in hosts
    assert hosts.splitlines()[-1] == f"{iface.ip}\tbox"  # the container's own entry is last, as docker
    assert hosts.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert resolv.splitlines()[:3] == ["search example.test", "nameserver 192.0.2.53", "options ndots:2"]
    # Egress is masqueraded (not exercised: tests send nothing off this machine).
    assert f'dockyard postrouting ip saddr {iface.network} oifname != "{dyn.bridge}" masquerade' in rules()
    dyn("rm", "-f", "keep")
    assert "state UNKNOWN" in resolv or "UP" in resolv.splitlines()[-1]


def test_inspect_network_settings_shape(dyn):
    dyn("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "--expose", "81", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
    ns = inspect(dyn, "web")["NetworkSettings"]
    keys = {"Bridge", "SandboxID", "HairpinMode", "LinkLocalIPv6Address", "LinkLocalIPv6PrefixLen", "Ports",
            "SandboxKey", "SecondaryIPAddresses", "SecondaryIPv6Addresses", "EndpointID", "Gateway",
            "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen", "IPv6Gateway", "MacAddress",
            "Networks"}
    assert set(ns) == keys
    assert list(ns["Networks"]) == ["bridge"]
    net = ns["Networks"]["bridge"]
    assert net["IPAddress"] == ns["IPAddress"] and net["Gateway"] == ns["Gateway"] != ""
    assert ns["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}" for b in ns["IPAddress"].split("."))
    assert ns["Ports"]["81/tcp"] is None
    (binding,) = ns["Ports"]["80/tcp"]
    assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
    assert text(dyn("port", "web")) == f"80/tcp -> 127.0.0.1:{binding['HostPort']}\n"
    assert text(dyn("port", "web", "80")) == f"127.0.0.1:{binding['HostPort']}\n"
    assert "hello from the container" in http_get("127.0.0.1", int(binding["HostPort"]))
    dyn("stop", "-t", "0", "web")
    ns = inspect(dyn, "web")["NetworkSettings"]
    assert ns["IPAddress"] == "" and ns["Networks"]["bridge"]["IPAddress"] == "" and ns["Ports"] == {}
    dyn("rm", "web")


def test_twenty_at_once_get_distinct_addresses_and_leave_nothing(dyn):
    def start(i: int) -> str:
        return text(dyn("run", "-d", "--name", f"c{i}", "bb", "sleep", "60")).strip()

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(start, range(20)))
    ips = [inspect(dyn, cid)["NetworkSettings"]["IPAddress"] for cid in ids]
    assert len(set(ips)) == 20 and all(ips)
    # They reach each other (icc on the default bridge).
    out = text(dyn("run", "--rm", "bb", "ping", "-c", "1", "-W", "2", ips[7]))
    assert "1 packets received" in out
    veths = [l for l in links() if any(l.startswith("dyv" + cid[:10]) for cid in ids)]
    assert len(veths) == 20
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda cid: dyn("rm", "-f", cid), ids))
    assert eventually(lambda: [l for l in links() if any(l.startswith("dyv" + cid[:10]) for cid in ids)]) == []
    assert dyn.bridge in links()  # a private root's bridge stays while its daemon serves (the fixture checks it goes after)


def test_published_ports_reach_the_container(dyn, tmp_path):
    port, uport = free_port(), free_port()
    dyn("run", "-d", "--name", "web", "-p", f"{port}:80", "-p", f"{uport}:9999/udp", "bb",
        "httpd", "-f", "-p", "80", "-h", "/www")
    assert "hello from the container" in http_get("127.0.0.1", port)  # the loopback proxy
    gateway = inspect(dyn, "web")["NetworkSettings"]["Gateway"]
    assert "hello from the container" in http_get(gateway, port)  # DNAT from this host
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):  # the proxy holds the ports, as docker-proxy
        s = socket.socket(socket.AF_INET, kind)
        with pytest.raises(OSError):
            s.bind(("0.0.0.0", port if kind == socket.SOCK_STREAM else uport))
        s.close()
    # From "another host": a namespace of our own, wired to the host by a veth pair.
    peer = f"tpeer{os.getpid() % 10000}"
    with other_host(tmp_path, "tns") as ns:
        try:
            subprocess.run(["ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
            subprocess.run(["ip", "addr", "add", "10.250.77.1/30", "dev", peer], check=True)
            subprocess.run(["ip", "link", "set", peer, "up"], check=True)
            for cmd in (["ip", "addr", "add", "10.250.77.2/30", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                        ["ip", "link", "set", "lo", "up"]):
                subprocess.run(["nsenter", f"--net={ns}", *cmd], check=True)
            client = ("import socket, sys; s = socket.create_connection(('10.250.77.1', int(sys.argv[1])), timeout=5); "
                      "s.sendall(b'GET /index.html HTTP/1.0\\r\\n\\r\\n'); f = s.makefile('rb'); print(f.read().decode())")
            got = subprocess.run(["nsenter", f"--net={ns}", sys.executable, "-c", client, str(port)],
                                 capture_output=True, text=True, timeout=30)
            assert "hello from the container" in got.stdout, got.stderr
        finally:
            subprocess.run(["ip", "link", "del", peer], check=False)
    # UDP (busybox has no UDP server): the datagram is translated to the container's address.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"datagram\n", (gateway, uport))
    s.close()
    (line,) = [l for l in rules().splitlines() if f"th dport {uport} " in l and " dnat to " in l]
    assert int(line.split("counter packets ")[1].split()[0]) >= 1 and ":9999" in line
    dyn("rm", "-f", "web")
    assert [r for r in rules().splitlines() if f"th dport {port} " in r] == []
    s = socket.socket()
    eventually(lambda: s.connect_ex(("127.0.0.1", port)) == 0)  # the listener goes with the container
    s.close()


def _time_wait_on(port: int) -> None:
    """Leave a connection in TIME-WAIT on 127.0.0.1:port (its server side closes first)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn, _ = listener.accept()
    conn.close()
    listener.close()
    assert client.recv(1) == b""
    client.close()


def test_a_published_port_is_published_again_after_traffic(dyn):
    """After traffic the port has connections in TIME-WAIT: a restart and a new container on the
    same port start at once (dockerd's proxy binds with SO_REUSEADDR; the bind used to fail
    with 'address already in use' for a minute)."""
    port = free_port()
    dyn("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        assert "hello from the container" in http_get("127.0.0.1", port)
        dyn("stop", "-t", "0", "web")
        _time_wait_on(port)
        dyn("start", "web")
        assert "hello from the container" in http_get("127.0.0.1", port)
        dyn("rm", "-f", "web")
        _time_wait_on(port)
        dyn("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
        assert "hello from the container" in http_get("127.0.0.1", port)
    finally:
        dyn("rm", "-f", "web", check=False)


def test_publish_all_and_port_taken(dyn):
    dyn("run", "-d", "--name", "pa", "--expose", "80", "--expose", "8000-8001/udp", "-P", "bb", "sleep", "60")
    ports = inspect(dyn, "pa")["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "8000/udp", "8001/udp"}
    host_ports = {p: int(b[0]["HostPort"]) for p, b in ports.items()}
    assert all(hp > 0 for hp in host_ports.values()) and len(set(host_ports.values())) == 3
    taken = host_ports["80/tcp"]
    proc = dyn("run", "-d", "--name", "pb", "-p", f"{taken}:80", "bb", "sleep", "60", check=False)
    err = fails(proc)
    assert f"Bind for 0.0.0.0:{taken} failed: port is already allocated" in err
    assert inspect(dyn, "pb")["State"]["Running"] is False
    # A port held by some other program on the host.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        proc = dyn("run", "-d", "--name", "pc", "-p", f"{holder.getsockname()[1]}:80", "bb", "sleep", "60", check=False)
        assert "address already in use" in fails(proc)
    finally:
        holder.close()
    dyn("rm", "-f", "pa", "pb", "pc")


@pytest.mark.parametrize("bad,message", [
    ("80:abc", "invalid containerPort: abc"),
    ("abc:80", "invalid hostPort: abc"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("80/sctpx", "invalid proto: sctpx"),
    ("70000:80", "invalid hostPort: 70000"),
    ("8000-8002:80-81", "invalid ranges specified"),
])
def test_malformed_publish_changes_nothing(dyn, bad, message):
    proc = dyn("run", "-d", "-p", bad, "bb", "true", check=False)
    assert message in fails(proc)
    assert text(dyn("ps", "-aq")) == ""
    # Nothing of this root's in the firewall (others' tests may change other rules meanwhile).
    assert [r for r in rules().splitlines() if dyn.bridge in r] == []


def test_bad_network_input_changes_nothing(dyn):
    nets_before = text(dyn("network", "ls", "-q"))
    assert "network nosuch not found" in fails(dyn("run", "--rm", "--network", "nosuch", "bb", "true", check=False))
    assert text(dyn("ps", "-aq")) == ""
    for args, message in [
        (["--subnet", "10.250.1.0/33", "n1"], "invalid CIDR address: 10.250.1.0/33"),
        (["--subnet", "banana", "n1"], "invalid CIDR address: banana"),
        (["--subnet", "10.250.1.0/24", "--gateway", "10.250.2.1", "n1"], "no matching subnet for gateway 10.250.2.1"),
        (["bridge"], "operation is not permitted on predefined bridge network"),
    ]:
        assert message in fails(dyn("network", "create", *args, check=False), 1), args
    dyn("network", "create", "--subnet", "10.250.1.0/24", "n1")
    assert "Pool overlaps" in fails(dyn("network", "create", "--subnet", "10.250.1.128/25", "n2", check=False), 1)
    assert "already exists" in fails(dyn("network", "create", "n1", check=False), 1)
    assert "pre-defined" in fails(dyn("network", "rm", "bridge", check=False), 1)
    assert "network nope not found" in fails(dyn("network", "rm", "nope", check=False), 1)
    dyn("network", "rm", "n1")
    assert text(dyn("network", "ls", "-q")) == nets_before


def test_network_modes(dyn):
    out = text(dyn("run", "--rm", "--network", "none", "bb", "sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '; ip -o link show lo"))
    assert out.startswith("lo ") and "UP" in out.split("lo:")[1]
    assert inspect_net_mode(dyn, "none") == "none"
    stable = {l for l in os.listdir("/sys/class/net") if not l.startswith(("dy", "veth", "br-"))}
    out = text(dyn("run", "--rm", "--network", "host", "bb", "ls", "/sys/class/net"))
    assert stable <= set(out.split())  # the host's own interfaces (others' veths come and go)
    dyn("run", "-d", "--name", "base", "bb", "sleep", "60")
    ip = inspect(dyn, "base")["NetworkSettings"]["IPAddress"]
    out = text(dyn("run", "--rm", "--network", "container:base", "bb", "ip", "-o", "-4", "addr", "show", "eth0"))
    assert f"inet {ip}/" in out
    dyn("rm", "-f", "base")
    # a --network none container's namespace is the runtime's (no bind mount of ours): a
    # container joining it shares its loopback, and inspect's SandboxKey opens it
    dyn("run", "-d", "--name", "alone", "--network", "none", "bb", "sh", "-c", "echo hi | nc -l -p 7000")
    try:
        pid = inspect(dyn, "alone")["State"]["Pid"]
        assert inspect(dyn, "alone")["NetworkSettings"]["SandboxKey"] == f"/proc/{pid}/ns/net"
        assert os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        out = text(dyn("run", "--rm", "--network", "container:alone", "bb", "sh", "-c",
                       "for i in 1 2 3 4 5 6 7 8 9 10; do nc 127.0.0.1 7000 && break; sleep 0.2; done"))
        assert out == "hi\n"
    finally:
        dyn("rm", "-f", "alone")


def inspect_net_mode(dyn, mode: str) -> str:
    cid = text(dyn("create", "--network", mode, "bb", "true")).strip()
    try:
        return inspect(dyn, cid)["HostConfig"]["NetworkMode"]
    finally:
        dyn("rm", cid)


# -- user-defined networks -------------------------------------------------------------------------

def test_user_networks_dns_aliases_and_isolation(dyn):
    dyn("network", "create", "--subnet", "10.250.10.0/24", "--label", "team=a", "front")
    dyn("network", "create", "--subnet", "10.250.11.0/24", "back")
    dyn("run", "-d", "--name", "api", "--network", "front", "--network-alias", "service", "bb", "sleep", "60")
    dyn("run", "-d", "--name", "other", "--network", "back", "bb", "sleep", "60")
    api_ip = inspect(dyn, "api")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    other_ip = inspect(dyn, "other")["NetworkSettings"]["Networks"]["back"]["IPAddress"]
    assert api_ip.startswith("10.250.10.") and other_ip.startswith("10.250.11.")
    out = text(dyn("run", "--rm", "--network", "front", "bb", "sh", "-c",
                   "cat /etc/resolv.conf; nslookup api; nslookup service; nslookup api.front; nslookup other; "
                   "ping -c1 -W2 api"))
    assert "nameserver 127.0.0.11" in out
    assert out.count(f"Address: {api_ip}") >= 3
    assert "1 packets received" in out
    assert f"Address: {other_ip}" not in out  # names of other networks are not visible
    out = text(dyn("run", "--rm", "--network", "back", "bb", "sh", "-c", f"ping -c1 -W1 {api_ip}; true"))
    assert "0 packets received" in out  # and their addresses are not reachable
    net = json.loads(text(dyn("network", "inspect", "front")))[0]
    assert net["Labels"] == {"team": "a"} and net["IPAM"]["Config"] == [{"Subnet": "10.250.10.0/24"}]
    cid = inspect(dyn, "api")["Id"]
    assert net["Containers"][cid]["IPv4Address"] == api_ip + "/24"
    assert "has active endpoints" in fails(dyn("network", "rm", "front", check=False), 1)
    assert text(dyn("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}")) == "front\n"
    # connect with an alias while running, then disconnect.
    dyn("network", "connect", "--alias", "bridge-peer", "front", "other")
    out = text(dyn("run", "--rm", "--network", "front", "bb", "sh", "-c", "nslookup bridge-peer; nslookup other"))
    other_front = inspect(dyn, "other")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert out.count(f"Address: {other_front}") == 2
    assert "eth1" in text(dyn("run", "--rm", "--network", "container:other", "bb", "ls", "/sys/class/net"))
    dyn("network", "disconnect", "front", "other")
    assert "front" not in inspect(dyn, "other")["NetworkSettings"]["Networks"]
    dyn("rm", "-f", "api", "other")
    assert sorted(text(dyn("network", "prune", "-f")).split()[2:]) == ["back", "front"]


def test_bridge_named_by_option(dyn):
    """``com.docker.network.bridge.name`` names a network's bridge device (compose files set it):
    networks stay isolated from each other whatever their bridges are called, a name that is
    taken is refused, and the device and its rules go with the network."""
    from dockyard.engine.network import firewall

    name = f"tbr{os.getpid() % 100000}"  # not named as dockyard's bridges are
    opt = f"com.docker.network.bridge.name={name}"
    dyn("network", "create", "--subnet", "10.250.18.0/24", "-o", opt, "named")
    try:
        dyn("network", "create", "--subnet", "10.250.19.0/24", "plain")
        assert name in links()
        assert json.loads(text(dyn("network", "inspect", "named")))[0]["Options"] == {
            "com.docker.network.bridge.name": name}
        dyn("run", "-d", "--name", "bn1", "--network", "named", "bb", "sleep", "60")
        dyn("run", "-d", "--name", "bn2", "--network", "plain", "bb", "sleep", "60")
        ip1 = inspect(dyn, "bn1")["NetworkSettings"]["Networks"]["named"]["IPAddress"]
        ip2 = inspect(dyn, "bn2")["NetworkSettings"]["Networks"]["plain"]["IPAddress"]
        assert "1 packets received" in text(dyn("run", "--rm", "--network", "named", "bb", "ping", "-c1", "-W2", "bn1"))
        for net, ip in (("plain", ip1), ("named", ip2)):  # both ways across the two bridges: dropped
            out = text(dyn("run", "--rm", "--network", net, "bb", "sh", "-c", f"ping -c1 -W1 {ip}; true"))
            assert "0 packets received" in out, (net, out)
        err = fails(dyn("network", "create", "-o", opt, "again", check=False), 1)
        assert "networks have same bridge name" in err
        assert "existing interface lo is not a bridge" in fails(
            dyn("network", "create", "-o", "com.docker.network.bridge.name=lo", "lonet", check=False), 1)
        assert "failed to check bridge interface existence: numerical result out of range" in fails(
            dyn("network", "create", "-o", "com.docker.network.bridge.name=much-too-long-name", "long", check=False), 1)
        assert "again" not in text(dyn("network", "ls", "--format", "{{.Name}}"))
    finally:
        dyn("rm", "-f", "bn1", "bn2", check=False)
        dyn("network", "rm", "named", "plain", check=False)
    assert name not in links() and firewall.rules_mentioning(name) == []


def test_a_bridge_of_the_host_is_used_and_left(dyn):
    """A bridge that exists already, named by ``com.docker.network.bridge.name``: the network
    uses it (its gateway address goes on it) and ``network rm`` leaves it, as dockerd does;
    dockyard takes its address off it too (dockerd leaves that)."""
    from dockyard.engine.network import netlink

    name = f"tpre{os.getpid() % 100000}"
    theirs = f"dyt{os.getpid() % 100000}x"  # as another dockyard root's bridge is named
    with netlink.Netlink() as nl:
        nl.create_bridge(name)
        nl.create_bridge(theirs)
    try:
        err = fails(dyn("network", "create", "-o", f"com.docker.network.bridge.name={theirs}", "stolen", check=False), 1)
        assert "is the bridge of another dockyard network" in err
        dyn("network", "create", "--subnet", "10.250.21.0/24", "-o", f"com.docker.network.bridge.name={name}", "hostbr")
        out = text(dyn("run", "--rm", "--network", "hostbr", "bb", "sh", "-c", "ip route; ping -c1 -W2 10.250.21.1"))
        assert "default via 10.250.21.1" in out and "1 packets received" in out, out
        with open(f"/sys/class/net/{name}/flags") as f:
            assert int(f.read(), 16) & 1  # set up (IFF_UP)
        dyn("network", "rm", "hostbr")
        assert name in links()
        with netlink.Netlink() as nl:
            routes = [str(r) for r in nl.routes()]
        assert "10.250.21.0/24" not in routes, routes
    finally:
        dyn("network", "rm", "hostbr", check=False)
        with netlink.Netlink() as nl:
            nl.delete_link(name)
            nl.delete_link(theirs)


def test_host_binding_ipv4_option(dyn):
    """``com.docker.network.bridge.host_binding_ipv4``: a port its containers publish without a
    host address binds that address only (compose files set 127.0.0.1 to keep services off
    the host's other addresses); a value that is not an address is refused with dockerd's error."""
    port = free_port()
    dyn("network", "create", "--subnet", "10.250.20.0/24", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
        "lonly")
    try:
        dyn("run", "-d", "--name", "hb", "--network", "lonly", "-p", f"{port}:80", "bb", "httpd", "-f", "-p", "80",
            "-h", "/www")
        assert text(dyn("port", "hb")) == f"80/tcp -> 127.0.0.1:{port}\n"
        assert "hello from the container" in http_get("127.0.0.1", port)
        gateway = "10.250.20.1"  # (the subnet's first address)
        with pytest.raises(OSError):  # the host's address on that bridge: not published there
            http_get(gateway, port, timeout=0)
        err = fails(dyn("network", "create", "-o", "com.docker.network.bridge.host_binding_ipv4=nope", "bad",
                        check=False), 1)
        assert "failed to parse com.docker.network.bridge.host_binding_ipv4 value: nope (nil ip)" in err
    finally:
        dyn("rm", "-f", "hb", check=False)
        dyn("network", "rm", "lonly", check=False)


def test_dns_names_by_api_version(dyn):
    """API 1.44 shows an endpoint's DNSNames (name, aliases, short ID, hostname), and the
    network's DNS answers each of them; from 1.45 Aliases are only what the client gave (older
    versions add the short ID there, as dockerd 20.10 does)."""
    from support import engine_api

    dyn("network", "create", "--subnet", "10.250.17.0/24", "dnsn")
    dyn("run", "-d", "--name", "named", "--hostname", "hosty", "--network", "dnsn", "--network-alias", "al", "bb",
        "sleep", "60")
    sock = str(Path(dyn.run_dir) / "dockyard.sock")
    short = inspect(dyn, "named")["Id"][:12]
    seen = {}
    for version in ("1.41", "1.44", "1.45"):
        ep = engine_api(sock, "GET", "/containers/named/json", version=version)[1]["NetworkSettings"]["Networks"]["dnsn"]
        seen[version] = (ep["Aliases"], ep.get("DNSNames", "absent"))
    assert seen == {"1.41": (["al", short], "absent"), "1.44": (["al", short], ["named", "al", short, "hosty"]),
                    "1.45": (["al"], ["named", "al", short, "hosty"])}
    ip = inspect(dyn, "named")["NetworkSettings"]["Networks"]["dnsn"]["IPAddress"]
    out = text(dyn("run", "--rm", "--network", "dnsn", "bb", "sh", "-c",
                   "for n in named al " + short + " hosty; do nslookup $n 127.0.0.11; done"))
    assert out.count(f"Address: {ip}") == 4, out
    dyn("rm", "-f", "named")
    dyn("network", "rm", "dnsn")


def test_internal_network_has_no_way_out(dyn):
    dyn("network", "create", "--internal", "--subnet", "10.250.12.0/24", "sealed")
    out = text(dyn("run", "--rm", "--network", "sealed", "bb", "ip", "route"))
    assert "default" not in out and "10.250.12.0/24" in out
    assert json.loads(text(dyn("network", "inspect", "sealed")))[0]["Internal"] is True


def test_host_gateway_from_a_user_network(dyn):
    """--add-host NAME:host-gateway names the host's address on the default bridge, as dockerd's
    does; a container on a user network only reaches it too (the bridge is made for it)."""
    dyn("network", "create", "--subnet", "10.250.16.0/24", "hgnet")
    out = text(dyn("run", "--rm", "--network", "hgnet", "--add-host", "hg:host-gateway", "bb", "sh", "-c",
                   "grep hg /etc/hosts; ping -c1 -W2 hg | grep -c '1 packets received'"))
    subnet = json.loads(text(dyn("network", "inspect", "bridge")))[0]["IPAM"]["Config"][0]["Subnet"]
    gateway = str(ipaddress.ip_network(subnet).network_address + 1)
    assert out == f"{gateway}\thg\n1\n"
    err = fails(dyn("run", "--rm", "--add-host", "hg:host-gatewayx", "bb", "true", check=False))
    assert 'invalid IP address in add-host: "host-gatewayx"' in err
    dyn("network", "rm", "hgnet")


def _default_route(dy, name: str) -> str:
    lines = [l for l in text(dy("exec", name, "ip", "route")).splitlines() if l.startswith("default")]
    return lines[0].split()[2] if lines else ""


def test_gateway_is_chosen_and_moved_as_dockerd_does(dyn):
    """The default route and the published ports belong to one endpoint: the first that is not
    internal, by network name.  A container only on an internal network gets neither (a -p of it
    publishes nothing); a connect that brings a better network moves both there, and a
    disconnect of that one moves them on.  Nothing of a port is left behind."""
    dyn("network", "create", "--internal", "--subnet", "10.250.13.0/24", "sealed")
    dyn("network", "create", "--subnet", "10.250.14.0/24", "aa")
    dyn("network", "create", "--subnet", "10.250.15.0/24", "zz")
    port = free_port()
    dyn("run", "-d", "--name", "in", "--network", "sealed", "-p", f"127.0.0.1:{port}:80", "bb",
        "httpd", "-f", "-p", "80", "-h", "/www")
    assert _default_route(dyn, "in") == ""
    assert text(dyn("port", "in")) == "" and inspect(dyn, "in")["NetworkSettings"]["Ports"] == {}
    assert f"dport {port} " not in rules()
    s = socket.socket()
    assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens for it
    s.close()
    dyn("network", "connect", "zz", "in")
    assert _default_route(dyn, "in") == "10.250.15.1"
    assert text(dyn("port", "in")) == f"80/tcp -> 127.0.0.1:{port}\n"
    assert "hello from the container" in http_get("127.0.0.1", port)
    assert "dnat to 10.250.15.2:80" in rules()
    dyn("network", "connect", "aa", "in")  # "aa" sorts first: the gateway and the port move
    assert _default_route(dyn, "in") == "10.250.14.1"
    assert "dnat to 10.250.14.2:80" in rules() and "dnat to 10.250.15.2:80" not in rules()
    assert "hello from the container" in http_get("127.0.0.1", port)
    dyn("network", "disconnect", "aa", "in")
    assert _default_route(dyn, "in") == "10.250.15.1"
    assert "hello from the container" in http_get("127.0.0.1", port)
    dyn("network", "disconnect", "zz", "in")
    assert _default_route(dyn, "in") == ""
    assert f"dport {port} " not in rules()
    # A container made on the internal network and connected to another before its start: eth0
    # is the internal one, the default route and the port are the other's.
    dyn("rm", "-f", "in")
    dyn("create", "--name", "two", "--network", "sealed", "-p", f"127.0.0.1:{port}:80", "bb",
        "httpd", "-f", "-p", "80", "-h", "/www")
    dyn("network", "connect", "zz", "two")
    dyn("start", "two")
    assert _default_route(dyn, "two") == "10.250.15.1"
    assert "hello from the container" in http_get("127.0.0.1", port)
    # A disconnect while stopped leaves a gap in the order; the next start closes it, and a
    # disconnect after that takes away the right interface.
    dyn("network", "connect", "aa", "two")
    dyn("stop", "-t", "0", "two")
    dyn("network", "disconnect", "zz", "two")
    dyn("start", "two")
    assert _default_route(dyn, "two") == "10.250.14.1"
    dyn("network", "disconnect", "aa", "two")
    assert "eth1" not in text(dyn("exec", "two", "ip", "-o", "link"))
    assert _default_route(dyn, "two") == ""
    dyn("rm", "-f", "two")
    assert f"dport {port} " not in rules()
    dyn("network", "rm", "sealed", "aa", "zz")


# -- legacy links -------------------------------------------------------------------------------

def test_links_like_docker(dyn):
    dyn("run", "-d", "--name", "db", "--expose", "5432", "--expose", "7000-7002", "-e", "PASSWORD=secret",
        "-e", "HOME=/x", "bb", "sleep", "60")
    db = inspect(dyn, "db")
    ip = db["NetworkSettings"]["IPAddress"]
    out = text(dyn("run", "--rm", "--name", "web", "--link", "db:dbapp", "bb", "sh", "-c", "env | sort; cat /etc/hosts"))
    env = [l for l in out.splitlines() if l.startswith("DBAPP_")]
    expected = [
        "DBAPP_ENV_PASSWORD=secret",
        "DBAPP_NAME=/web/dbapp",
        f"DBAPP_PORT=tcp://{ip}:5432",
        f"DBAPP_PORT_5432_TCP=tcp://{ip}:5432", f"DBAPP_PORT_5432_TCP_ADDR={ip}", "DBAPP_PORT_5432_TCP_PORT=5432",
        "DBAPP_PORT_5432_TCP_PROTO=tcp",
    ]
    for p in (7000, 7001, 7002):
        expected += [f"DBAPP_PORT_{p}_TCP=tcp://{ip}:{p}", f"DBAPP_PORT_{p}_TCP_ADDR={ip}", f"DBAPP_PORT_{p}_TCP_PORT={p}",
                     f"DBAPP_PORT_{p}_TCP_PROTO=tcp"]
    expected += [f"DBAPP_PORT_7000_TCP_START=tcp://{ip}:7000", f"DBAPP_PORT_7000_TCP_END=tcp://{ip}:7002",
                 "DBAPP_PORT_7000_TCP_PORT_START=7000", "DBAPP_PORT_7000_TCP_PORT_END=7002"]
    assert sorted(env) == sorted(expected)
    assert f"{ip}\tdbapp {db['Id'][:12]} db" in out.splitlines()
    # A stopped target: docker's error, nothing started.
    dyn("stop", "-t", "0", "db")
    err = fails(dyn("run", "--rm", "--name", "web2", "--link", "db:dbapp", "bb", "true", check=False))
    assert "Cannot link to a non running container: /db AS /web2/dbapp" in err
    assert "could not get container for nosuch" in fails(dyn("run", "--rm", "--link", "nosuch", "bb", "true", check=False))
    # The hosts entry follows the target's address across a restart.
    dyn("start", "db")
    dyn("run", "-d", "--name", "web", "--link", "db", "bb", "sleep", "60")
    dyn("stop", "-t", "0", "db")
    dyn("run", "-d", "--name", "squatter", "bb", "sleep", "60")  # takes db's old address
    dyn("start", "db")
    new_ip = inspect(dyn, "db")["NetworkSettings"]["IPAddress"]
    assert new_ip != ip
    hosts = (Path(inspect(dyn, "web")["HostsPath"])).read_text()
    assert f"{new_ip}\tdb {db['Id'][:12]}" in hosts or f"{new_ip}\t{db['Id'][:12]} db" in hosts
    dyn("rm", "-f", "web", "db", "squatter")


def test_crash_leaves_state_the_next_start_repairs(dyn):
    cid = text(dyn("run", "-d", "--name", "victim", "-p", "127.0.0.1::80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")).strip()
    rec = inspect(dyn, cid)
    pid = rec["State"]["Pid"]
    port = int(rec["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    with open(f"/proc/{pid}/status") as f:
        shim = int(next(l for l in f if l.startswith("PPid:")).split()[1])
    os.kill(shim, 9)
    os.kill(pid, 9)
    time.sleep(0.3)
    # The next command notices; what the start made is gone, and a new start works.
    assert inspect(dyn, cid)["State"]["Running"] is False
    assert eventually(lambda: [l for l in links() if l.startswith("dyv" + cid[:10])]) == []
    assert [r for r in rules().splitlines() if f"th dport {port} " in r] == []
    dyn("start", "victim")
    new_port = int(inspect(dyn, cid)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    assert "hello from the container" in http_get("127.0.0.1", new_port)
    dyn("rm", "-f", "victim")


def test_icc_off_blocks_neighbours_only(dyn):
    dyn("network", "create", "--subnet", "10.250.13.0/24", "-o", "com.docker.network.bridge.enable_icc=false", "noicc")
    dyn("run", "-d", "--name", "n1", "--network", "noicc", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
    ip = inspect(dyn, "n1")["NetworkSettings"]["Networks"]["noicc"]["IPAddress"]
    out = text(dyn("run", "--rm", "--network", "noicc", "bb", "sh", "-c", f"wget -q -T 2 -O - http://{ip}/ || echo blocked"))
    assert out == "blocked\n"
    assert "hello from the container" in http_get(ip, 80)  # the host still reaches it
    options = json.loads(text(dyn("network", "inspect", "noicc")))[0]["Options"]
    assert options == {"com.docker.network.bridge.enable_icc": "false"}
    dyn("rm", "-f", "n1")


def test_user_network_under_load(dyn):
    """Ten containers started at once on a user network (one DNS helper, however many race to
    start it) all resolve each other; published ports on it work too."""
    dyn("network", "create", "--subnet", "10.250.14.0/24", "busy")
    port = free_port()

    def start(i: int) -> str:
        extra = ["-p", f"{port}:80"] if i == 0 else []
        return text(dyn("run", "-d", "--name", f"u{i}", "--network", "busy", *extra, "bb", "httpd", "-f", "-p", "80",
                        "-h", "/www")).strip()

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(start, range(10)))
    ips = {f"u{i}": inspect(dyn, f"u{i}")["NetworkSettings"]["Networks"]["busy"]["IPAddress"] for i in range(10)}
    assert len(set(ips.values())) == 10
    script = "; ".join(f"nslookup u{i} | grep '^Address: 10'" for i in range(10))
    out = text(dyn("run", "--rm", "--network", "busy", "bb", "sh", "-c", script))
    assert sorted(l.split()[-1] for l in out.splitlines() if l.startswith("Address")) == sorted(ips.values())
    assert "hello from the container" in http_get("127.0.0.1", port)
    helpers = subprocess.run(["pgrep", "-f", f"dockyard.engine.network.dns {dyn.root}"], capture_output=True,
                             text=True).stdout.split()
    assert len(helpers) == 1
    dyn("rm", "-f", *ips)


def test_fixed_addresses(dyn):
    dyn("network", "create", "--subnet", "10.250.15.0/24", "--gateway", "10.250.15.254", "fixed")
    dyn("run", "-d", "--name", "f1", "--network", "fixed", "--ip", "10.250.15.50", "bb", "sleep", "60")
    net = inspect(dyn, "f1")["NetworkSettings"]["Networks"]["fixed"]
    assert (net["IPAddress"], net["Gateway"], net["IPAMConfig"]) == ("10.250.15.50", "10.250.15.254",
                                                                   {"IPv4Address": "10.250.15.50"})
    assert "default via 10.250.15.254" in text(dyn("run", "--rm", "--network", "fixed", "bb", "ip", "route"))
    err = fails(dyn("run", "-d", "--name", "f2", "--network", "fixed", "--ip", "10.250.15.50", "bb", "sleep", "60",
                    check=False))
    assert "Address already in use: 10.250.15.50" in err
    assert "does not belong to any of this network's subnets" in fails(
        dyn("run", "--rm", "--network", "fixed", "--ip", "10.9.9.9", "bb", "true", check=False))
    assert "user specified IP address is supported on user defined networks only" in fails(
        dyn("run", "--rm", "--ip", "10.250.15.9", "bb", "true", check=False))
    dyn("rm", "-f", "f1", "f2")


def test_link_on_a_user_network_is_a_dns_alias(dyn):
    dyn("network", "create", "--subnet", "10.250.16.0/24", "linked")
    dyn("run", "-d", "--name", "dbsrv", "--network", "linked", "bb", "sleep", "60")
    ip = inspect(dyn, "dbsrv")["NetworkSettings"]["Networks"]["linked"]["IPAddress"]
    out = text(dyn("run", "--rm", "--network", "linked", "--link", "dbsrv:database", "bb", "sh", "-c",
                   "nslookup database | grep '^Address: 10'; env | grep -c DATABASE_; true"))
    assert out == f"Address: {ip}\n0\n"
    dyn("rm", "-f", "dbsrv")


def test_ps_shows_ports_networks_and_mounts(dyn):
    dyn("run", "-d", "--name", "shown", "-p", "127.0.0.1:18793:80", "--expose", "81", "-v", "psvol:/v", "bb",
        "sleep", "60")
    out = text(dyn("ps", "--format", "{{.Names}}|{{.Ports}}|{{.Networks}}|{{.Mounts}}"))
    assert out == "shown|127.0.0.1:18793->80/tcp, 81/tcp|bridge|psvol\n"
    dyn("run", "-d", "--name", "hidden", "--network", "none", "bb", "sleep", "60")
    for flt, names in (("network=bridge", "shown"), ("network=none", "hidden"), ("volume=psvol", "shown"),
                       ("volume=/v", "shown"), ("publish=18793", "shown"), ("publish=18793/udp", ""),
                       ("expose=81", "shown"), ("expose=79-80/tcp", "shown"), ("health=none", "hidden shown"),
                       ("health=healthy", "")):
        got = sorted(text(dyn("ps", "--format", "{{.Names}}", "--filter", flt)).split())
        assert got == names.split(), flt
    dyn("rm", "-f", "hidden")
    dyn("rm", "-f", "-v", "shown")
    dyn("volume", "rm", "psvol")


def test_fast_restarts_keep_address_and_work(dyn):
    # An idle neighbour keeps this private root's bridge (and so its subnet) up meanwhile.
    dyn("run", "-d", "--name", "neighbour", "bb", "sleep", "60")
    dyn("run", "-d", "--name", "again", "-p", "127.0.0.1::80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
    ip = inspect(dyn, "again")["NetworkSettings"]["IPAddress"]
    for _ in range(5):
        dyn("restart", "-t", "0", "again")
        rec = inspect(dyn, "again")
        assert rec["NetworkSettings"]["IPAddress"] == ip  # its previous address, when free
        port = int(rec["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        assert "hello from the container" in http_get("127.0.0.1", port)
    dyn("rm", "-f", "again", "neighbour")


@pytest.mark.skipif(not iptables_works(), reason="iptables does not work here (the test counts with it)")
def test_user_network_relays_other_names_to_the_given_dns(dyn):
    """Names the network does not know go upstream: to --dns when given.  The "upstream" is a
    container of this test (busybox has no UDP server, so an iptables counter on the host's
    OUTPUT chain shows the helper's relayed query reaching it)."""
    dyn("network", "create", "--subnet", "10.250.17.0/24", "relay")
    dyn("run", "-d", "--name", "up", "--network", "relay", "bb", "sleep", "60")
    up_ip = inspect(dyn, "up")["NetworkSettings"]["Networks"]["relay"]["IPAddress"]
    rule = ["OUTPUT", "-d", up_ip, "-p", "udp", "--dport", "53", "-j", "ACCEPT"]
    had_filter = has_filter_table()
    subprocess.run(["iptables", "-w", "-I", *rule], check=True)
    try:
        dyn("run", "--rm", "--network", "relay", "--dns", up_ip, "bb", "sh", "-c",
            "nslookup -timeout=1 some.name.example 2>/dev/null; true")
        counters = subprocess.run(["iptables", "-w", "-L", "OUTPUT", "-n", "-v", "-x"], capture_output=True,
                                  text=True).stdout
        (line,) = [l for l in counters.splitlines() if up_ip in l and "dpt:53" in l]
        assert int(line.split()[0]) >= 1  # the helper (on the host) relayed the query to --dns
    finally:
        subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True)
        drop_filter_table_unless(had_filter)
    dyn("rm", "-f", "up")


def test_network_with_only_stopped_members_can_go(dyn):
    """As docker: rm succeeds, and the member's next start names the missing network."""
    dyn("network", "create", "--subnet", "10.250.18.0/24", "brief")
    dyn("create", "--name", "member", "--network", "brief", "bb", "true")
    dyn("network", "rm", "brief")
    assert "network brief not found" in fails(dyn("start", "member", check=False), 1)
    dyn("rm", "member")


@contextlib.contextmanager
def flagged_daemon(dy, *flags: str):
    """The CLI fixture's daemon replaced by one started with ``flags`` (stopped at the end; the
    next command starts a plain one again)."""
    from support import stop_daemon

    run = Path(dy.run_dir)
    stop_daemon(run)
    exe = str(Path(sys.executable).with_name("dockyard"))
    log = open(run / "daemon-flags.log", "wb")
    daemon = subprocess.Popen([exe, "daemon", "-H", f"unix://{run}/dockyard.sock", *flags],
                              env=dy.env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        deadline = time.time() + 30
        while not (run / "dockyard.sock").exists() and daemon.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert daemon.poll() is None, (run / "daemon-flags.log").read_text()
        dy("version")
        yield daemon
    finally:
        stop_daemon(run)
        daemon.wait(10)
        log.close()


def test_daemon_mtu_flag(dyn):
    """``dockyard daemon --mtu N`` as dockerd's: the default bridge's containers get interfaces of
    that MTU, and its network shows it; without the flag it is 1500 again."""
    with flagged_daemon(dyn, "--mtu", "1450"):
        assert text(dyn("run", "--rm", "bb", "cat", "/sys/class/net/eth0/mtu")) == "1450\n"
        options = json.loads(text(dyn("network", "inspect", "bridge")))[0]["Options"]
        assert options["com.docker.network.driver.mtu"] == "1450"
    assert text(dyn("run", "--rm", "bb", "cat", "/sys/class/net/eth0/mtu")) == "1500\n"


def test_daemon_ip_and_icc_flags(dyn):
    """``dockyard daemon --ip 127.0.0.1 --icc=false`` as dockerd's: a port published on the
    default bridge without an address binds 127.0.0.1, and its containers cannot reach each
    other (the bridge's rules change when the daemon starts); without the flags, both are back."""
    port = free_port()
    with flagged_daemon(dyn, "--ip", "127.0.0.1", "--icc=false"):
        options = json.loads(text(dyn("network", "inspect", "bridge")))[0]["Options"]
        assert options["com.docker.network.bridge.host_binding_ipv4"] == "127.0.0.1"
        assert options["com.docker.network.bridge.enable_icc"] == "false"
        dyn("run", "-d", "--name", "ipw", "-p", f"{port}:80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
        assert text(dyn("port", "ipw")) == f"80/tcp -> 127.0.0.1:{port}\n"
        assert "hello from the container" in http_get("127.0.0.1", port)
        ip = inspect(dyn, "ipw")["NetworkSettings"]["IPAddress"]
        out = text(dyn("run", "--rm", "bb", "sh", "-c", f"ping -c1 -W1 {ip}; true"))
        assert "0 packets received" in out, out
        dyn("rm", "-f", "ipw")
    options = json.loads(text(dyn("network", "inspect", "bridge")))[0]["Options"]
    assert options["com.docker.network.bridge.host_binding_ipv4"] == "0.0.0.0"
    dyn("run", "-d", "--name", "ipw", "bb", "sleep", "60")
    ip = inspect(dyn, "ipw")["NetworkSettings"]["IPAddress"]
    assert "1 packets received" in text(dyn("run", "--rm", "bb", "ping", "-c1", "-W2", ip))
    dyn("rm", "-f", "ipw")
    assert "invalid IP address: nope" in fails(dyn("daemon", "--ip", "nope", check=False), 2)


def test_daemon_dns_flags(dyn):
    """``dockyard daemon --dns --dns-search --dns-opt`` as dockerd's: a container that sets none
    of its own gets them in /etc/resolv.conf (one that sets them keeps its own; one on a user
    network has the embedded DNS, with the daemon's search and options); a server that is not an
    address is refused.  (No query goes out: the addresses are documentation ones.)"""
    with flagged_daemon(dyn, "--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-opt", "ndots:3"):
        assert text(dyn("run", "--rm", "bb", "cat", "/etc/resolv.conf")) == (
            "search example.test\nnameserver 192.0.2.53\noptions ndots:3\n")
        assert "nameserver 192.0.2.99\n" in text(dyn("run", "--rm", "--dns", "192.0.2.99", "bb", "cat",
                                                    "/etc/resolv.conf"))
        dyn("network", "create", "--subnet", "10.250.22.0/24", "dnsd")
        out = text(dyn("run", "--rm", "--network", "dnsd", "bb", "cat", "/etc/resolv.conf"))
        assert out == "search example.test\nnameserver 127.0.0.11\noptions ndots:3\n", out
        dyn("network", "rm", "dnsd")
    assert "192.0.2.53" not in text(dyn("run", "--rm", "bb", "cat", "/etc/resolv.conf"))
    err = fails(dyn("daemon", "--dns", "dns.example", check=False), 2)
    assert "IP address is not correctly formatted: dns.example" in err


def test_daemon_bip_flag(dyn):
    """``dockyard daemon --bip 10.251.7.5/24`` as dockerd's: the default bridge has that address
    and subnet, and its containers addresses in it; without the flag it is back on a subnet of
    the default pool; a network's own address is refused."""
    with flagged_daemon(dyn, "--bip", "10.251.7.5/24"):
        config = json.loads(text(dyn("network", "inspect", "bridge")))[0]["IPAM"]["Config"]
        assert config == [{"Subnet": "10.251.7.0/24", "Gateway": "10.251.7.5"}]
        out = text(dyn("run", "--rm", "bb", "sh", "-c", "ip -o -4 addr show eth0; ip route; ping -c1 -W2 10.251.7.5"))
        assert "inet 10.251.7." in out and "default via 10.251.7.5" in out and "1 packets received" in out, out
    config = json.loads(text(dyn("network", "inspect", "bridge")))[0]["IPAM"]["Config"]
    assert not config[0]["Subnet"].startswith("10.251.7.")
    out = text(dyn("run", "--rm", "bb", "ip", "-o", "-4", "addr", "show", "eth0"))
    assert "inet " in out and "10.251.7." not in out
    err = fails(dyn("daemon", "--bip", "10.251.7.0/24", check=False), 2)
    assert "not a host address" in err


def test_daemon_fixed_cidr_flag(dyn, tmp_path):
    """``dockyard daemon --fixed-cidr`` as dockerd's: containers on the default bridge get
    addresses from that part of its subnet, shown as the pool's IPRange; without --bip a range
    outside the subnet becomes the subnet (dockerd 28 does so for a new bridge); a range
    outside --bip's subnet, or that is not a CIDR, is refused; without the flag the whole
    subnet is used again."""
    with flagged_daemon(dyn, "--bip", "10.251.9.1/24", "--fixed-cidr", "10.251.9.200/29"):
        config = json.loads(text(dyn("network", "inspect", "bridge")))[0]["IPAM"]["Config"]
        assert config == [{"Subnet": "10.251.9.0/24", "IPRange": "10.251.9.200/29", "Gateway": "10.251.9.1"}]
        dyn("run", "-d", "--name", "ranged", "bb", "sleep", "60")
        ip = inspect(dyn, "ranged")["NetworkSettings"]["IPAddress"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.251.9.200/29"), ip
        out = text(dyn("run", "--rm", "bb", "sh", "-c", f"ip -o -4 addr show eth0; ping -c1 -W2 {ip}"))
        assert "inet 10.251.9.20" in out and "1 packets received" in out, out
        dyn("rm", "-f", "ranged")
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"fixed-cidr": "10.251.10.0/24"}))
    with flagged_daemon(dyn, "--config-file", str(conf)):
        config = json.loads(text(dyn("network", "inspect", "bridge")))[0]["IPAM"]["Config"]
        assert config == [{"Subnet": "10.251.10.0/24", "IPRange": "10.251.10.0/24", "Gateway": "10.251.10.1"}]
        out = text(dyn("run", "--rm", "bb", "sh", "-c", "ip -o -4 addr show eth0; ping -c1 -W2 10.251.10.1"))
        assert "inet 10.251.10." in out and "1 packets received" in out, out
    config = json.loads(text(dyn("network", "inspect", "bridge")))[0]["IPAM"]["Config"]
    assert "IPRange" not in config[0], config
    err = fails(dyn("daemon", "--bip", "10.251.9.1/24", "--fixed-cidr", "10.251.8.0/24", check=False), 2)
    assert "10.251.8.0/24 is not within the subnet of --bip 10.251.9.1/24" in err
    assert "invalid CIDR address: nope" in fails(dyn("daemon", "--fixed-cidr", "nope", check=False), 2)


def test_daemon_container_defaults(dyn, tmp_path):
    """``dockyard daemon --default-shm-size --default-ulimit`` (and daemon.json's
    default-shm-size and default-ulimits) as dockerd's: written into each container made without
    its own at create (inspect shows them) and in force when it runs; a container's own
    --ulimit of the same name and its --shm-size win; a bad value is refused in one line."""
    probe = "ulimit -n; ulimit -Hn; ulimit -u; df -k /dev/shm | tail -1"
    with flagged_daemon(dyn, "--default-shm-size", "32M", "--default-ulimit", "nofile=1000:2000"):
        out = text(dyn("run", "--name", "dflt", "--network", "none", "bb", "sh", "-c", probe)).split("\n")
        assert out[:2] == ["1000", "2000"] and " 32768 " in out[3], out
        host = inspect(dyn, "dflt")["HostConfig"]
        assert host["ShmSize"] == 32 << 20 and host["Ulimits"] == [{"Name": "nofile", "Soft": 1000, "Hard": 2000}]
        out = text(dyn("run", "--name", "own", "--network", "none", "--ulimit", "nofile=500:600", "--ulimit",
                       "nproc=100:200", "--shm-size", "8M", "bb", "sh", "-c", probe)).split("\n")
        assert out[:3] == ["500", "600", "100"] and " 8192 " in out[3], out
        host = inspect(dyn, "own")["HostConfig"]
        assert host["ShmSize"] == 8 << 20 and host["Ulimits"] == [{"Name": "nofile", "Soft": 500, "Hard": 600},
                                                                  {"Name": "nproc", "Soft": 100, "Hard": 200}]
        dyn("rm", "dflt", "own")
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"default-shm-size": "16M",
                                "default-ulimits": {"nproc": {"Name": "nproc", "Hard": 300, "Soft": 200}}}))
    with flagged_daemon(dyn, "--config-file", str(conf)):
        out = text(dyn("run", "--rm", "--network", "none", "bb", "sh", "-c", probe)).split("\n")
        assert out[2] == "200" and " 16384 " in out[3], out
    out = text(dyn("run", "--rm", "--network", "none", "bb", "sh", "-c", probe)).split("\n")
    assert " 65536 " in out[3], out
    assert "invalid ulimit argument: nofile=x" in fails(dyn("daemon", "--default-ulimit", "nofile=x", check=False), 2)
    assert "invalid size: 'big'" in fails(dyn("daemon", "--default-shm-size", "big", check=False), 2)


def test_daemon_cgroup_parent(dyn, tmp_path):
    """``dockyard daemon --cgroup-parent`` (and daemon.json's cgroup-parent) as dockerd's: the
    parent of each container's cgroup that names none of its own (inspect keeps showing ""), and
    a container's own --cgroup-parent wins; stats reads the cgroup there."""
    from dockyard.engine.cgroupstats import is_v2

    if is_v2():
        pytest.skip("the host has cgroup v2: this reads v1 paths")

    def cgroup(name: str) -> str:
        pid = inspect(dyn, name)["State"]["Pid"]
        with open(f"/proc/{pid}/cgroup") as f:
            return next(l.split(":", 2)[2].strip() for l in f if "memory" in l.split(":")[1].split(","))

    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"cgroup-parent": "/dytest-conf"}))
    try:
        with flagged_daemon(dyn, "--cgroup-parent", "/dytest-daemon"):
            dyn("run", "-d", "--name", "dflt", "--network", "none", "bb", "sleep", "60")
            dyn("run", "-d", "--name", "own", "--cgroup-parent", "/dytest-own", "--network", "none", "bb", "sleep", "60")
            cid = inspect(dyn, "dflt")["Id"]
            assert cgroup("dflt") == f"/dytest-daemon/{cid}"
            assert inspect(dyn, "dflt")["HostConfig"]["CgroupParent"] == ""
            assert cgroup("own") == f"/dytest-own/{inspect(dyn, 'own')['Id']}"
            assert json.loads(text(dyn("stats", "--no-stream", "--format", "{{json .}}", "dflt")))["PIDs"] == "1"
            dyn("rm", "-f", "dflt", "own")
            assert not Path(f"/sys/fs/cgroup/memory/dytest-daemon/{cid}").exists()
        with flagged_daemon(dyn, "--config-file", str(conf)):
            dyn("run", "-d", "--name", "conf", "--network", "none", "bb", "sleep", "60")
            assert cgroup("conf") == f"/dytest-conf/{inspect(dyn, 'conf')['Id']}"
            dyn("rm", "-f", "conf")
    finally:
        dyn("rm", "-f", "dflt", "own", "conf", check=False)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            for parent in ("dytest-daemon", "dytest-own", "dytest-conf"):
                try:
                    (hierarchy / parent).rmdir()
                except OSError:
                    pass


def test_daemon_config_file(dyn, tmp_path):
    """``dockyard daemon --config-file daemon.json``: dockerd's file for the same settings as
    the flags; a key that is not a setting, a value of the wrong type, a setting dockyard does
    not have and a key also given as a flag are refused, each in one line naming it."""
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"mtu": 1440, "bip": "10.251.8.1/24", "icc": False, "live-restore": True,
                                "default-address-pools": [{"base": "10.232.0.0/16", "size": 24}],
                                "log-driver": "json-file", "log-opts": {"max-size": "1k", "max-file": "2"},
                                "insecure-registries": ["127.0.0.1:5999"], "log-level": "warn", "experimental": False}))
    with flagged_daemon(dyn, "--config-file", str(conf)):
        bridge = json.loads(text(dyn("network", "inspect", "bridge")))[0]
        assert bridge["IPAM"]["Config"] == [{"Subnet": "10.251.8.0/24", "Gateway": "10.251.8.1"}]
        assert bridge["Options"]["com.docker.network.driver.mtu"] == "1440"
        assert bridge["Options"]["com.docker.network.bridge.enable_icc"] == "false"
        dyn("network", "create", "pooled")
        assert json.loads(text(dyn("network", "inspect", "pooled")))[0]["IPAM"]["Config"][0]["Subnet"].startswith(
            "10.232.")
        dyn("network", "rm", "pooled")
        # the daemon's log options fill a container's (as dockerd merges them), and rotate its log
        dyn("run", "--name", "logged", "--network", "none", "--log-opt", "max-file=3", "bb", "sh", "-c",
            "for i in $(seq 1 100); do echo line-$i; done")
        got = inspect(dyn, "logged")
        assert got["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}
        assert os.path.exists(got["LogPath"] + ".2") and not os.path.exists(got["LogPath"] + ".3")
        dyn("rm", "logged")
    for content, message in (
            ({"mtu": 1400, "storage-opts": []}, "the following directives don't match any configuration "
                                                "option: storage-opts"),
            ({"mtu": "1400"}, 'mtu: "1400" is not an integer'),
            ({"live-restore": False}, "live-restore: false is not supported (dockyard has true)"),
            ({"mtu": 1400, "--mtu": 1}, "don't match any configuration option: --mtu"),
            ({"log-opts": {"max-size": "1k", "tag": "x"}}, "log opt 'tag' of the json-file log driver is not supported"),
            ({"log-driver": "syslog"}, "the syslog log driver is not supported by dockyard"),
            ({"insecure-registries": "a:5000"}, 'insecure-registries: "a:5000" is not a list of strings'),
            ({"log-level": "loud"}, "log-level: unable to parse logging level: loud"),
            ({"experimental": True}, "experimental: true is not supported (dockyard has false)"),
            ({"log-opts": {"max-file": "0"}}, "failed to initialize logging driver: max-file cannot be less than 1"),
            ([1], "not a JSON object")):
        conf.write_text(json.dumps(content))
        assert message in fails(dyn("daemon", "--config-file", str(conf), check=False), 2)
    conf.write_text('{"mtu": 1500}')
    err = fails(dyn("daemon", "--config-file", str(conf), "--mtu", "1400", check=False), 2)
    assert "specified both as a flag and in the configuration file: mtu: (from flag: 1400, from file: 1500)" in err
    conf.write_text("{nope")
    assert "unable to configure the daemon with file" in fails(dyn("daemon", "--config-file", str(conf), check=False), 2)
    # the daemon a CLI starts reads $DOCKYARD_DAEMON_CONFIG too, but listens where that CLI looks, on its root
    conf.write_text(json.dumps({"mtu": 1410, "hosts": ["unix:///nowhere/else.sock"], "data-root": "/nowhere"}))
    from support import stop_daemon

    stop_daemon(Path(dyn.run_dir))
    dyn.env["DOCKYARD_DAEMON_CONFIG"] = str(conf)
    try:
        assert text(dyn("run", "--rm", "bb", "cat", "/sys/class/net/eth0/mtu")) == "1410\n"
    finally:
        del dyn.env["DOCKYARD_DAEMON_CONFIG"]
        stop_daemon(Path(dyn.run_dir))
    assert not Path("/nowhere").exists()


def test_daemon_ipv6_flags_default_bridge_pools_and_links(dyn):
    """``dockyard daemon --ipv6 --fixed-cidr-v6 --default-address-pool`` as dockerd's: the default
    bridge is dual stack, a network made with --ipv6 and no IPv6 subnet takes one from the pool,
    --link gives /etc/hosts entries of both families, and a port published on [::] answers."""
    with flagged_daemon(dyn, "--ipv6", "--fixed-cidr-v6", "fd0d:d0c:30::/64", "--default-address-pool",
                        "base=fd0d:d0c:40::/48,size=64", "--default-address-pool", "base=10.231.0.0/16,size=24"):
        bridge = json.loads(dyn("network", "inspect", "bridge").stdout)[0]
        assert bridge["EnableIPv6"] is True
        assert {"Subnet": "fd0d:d0c:30::/64"} in bridge["IPAM"]["Config"]
        dyn("run", "-d", "--name", "db", "-p", "80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
        db = inspect(dyn, "db")["NetworkSettings"]
        assert db["GlobalIPv6Address"].startswith("fd0d:d0c:30::") and db["GlobalIPv6PrefixLen"] == 64
        assert db["IPv6Gateway"] == "fd0d:d0c:30::1"
        hosts = text(dyn("run", "--rm", "--link", "db:dbapp", "bb", "cat", "/etc/hosts"))
        cid = inspect(dyn, "db")["Id"][:12]
        assert f"{db['IPAddress']}\tdbapp {cid} db" in hosts and f"{db['GlobalIPv6Address']}\tdbapp {cid} db" in hosts
        port = db["Ports"]["80/tcp"][0]["HostPort"]
        assert {"HostIp": "::", "HostPort": port} in db["Ports"]["80/tcp"]
        assert "hello from the container" in http_get("fd0d:d0c:30::1", int(port))
        dyn("network", "create", "--ipv6", "pooled")
        pooled = json.loads(dyn("network", "inspect", "pooled").stdout)[0]
        assert {"Subnet": "fd0d:d0c:40::/64", "Gateway": "fd0d:d0c:40::1"} in pooled["IPAM"]["Config"]
        assert pooled["IPAM"]["Config"][0]["Subnet"].startswith("10.231.")  # the IPv4 pool too
        err = fails(dyn("network", "create", "--ipv6", "--subnet", "fd0d:d0c:40::/64", "again", check=False), 1)
        assert "Pool overlaps with other one on this address space" in err
        dyn("rm", "-f", "db")
        dyn("network", "rm", "pooled")


def test_ipv6_port_from_another_host_and_nat66_egress(dyn, tmp_path):
    """An --ipv6 network seen from "another host" (a namespace of our own on a veth pair with
    IPv6 addresses only): a port published on [::] answers at the host's address (DNAT in the
    ip6 table), and a container reaches that host although it has no route back to the
    container's subnet: its egress is masqueraded (NAT66)."""
    port = free_port()
    peer = f"tp6{os.getpid() % 10000}"
    dyn("network", "create", "--ipv6", "--subnet", "fd0d:d0c:71::/64", "v6out")
    try:
        with other_host(tmp_path, "tns6") as ns:
            subprocess.run(["ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
            subprocess.run(["ip", "addr", "add", "fd0d:d0c:70::1/64", "dev", peer, "nodad"], check=True)
            subprocess.run(["ip", "link", "set", peer, "up"], check=True)
            for cmd in (["ip", "addr", "add", "fd0d:d0c:70::2/64", "dev", "eth0", "nodad"], ["ip", "link", "set", "eth0", "up"],
                        ["ip", "link", "set", "lo", "up"]):
                subprocess.run(["nsenter", f"--net={ns}", *cmd], check=True)
            dyn("run", "-d", "--name", "web6", "--network", "v6out", "-p", f"{port}:80", "bb", "httpd", "-f", "-p", "80",
                "-h", "/www")
            client = ("import socket, sys; s = socket.create_connection(('fd0d:d0c:70::1', int(sys.argv[1])), timeout=5); "
                      "s.sendall(b'GET /index.html HTTP/1.0\\r\\n\\r\\n'); f = s.makefile('rb'); print(f.read().decode())")
            got = subprocess.run(["nsenter", f"--net={ns}", sys.executable, "-c", client, str(port)],
                                 capture_output=True, text=True, timeout=30)
            assert "hello from the container" in got.stdout, got.stderr
            (dnat,) = [l for l in rules().splitlines() if f"th dport {port} " in l and " dnat to [fd0d:d0c:71::" in l]
            assert int(dnat.split("counter packets ")[1].split()[0]) >= 1
            out = dyn("exec", "web6", "ping", "-6", "-c", "1", "-W", "3", "fd0d:d0c:70::2", check=False)
            assert out.returncode == 0 and "1 packets received" in text(out), text(out) + out.stderr.decode()
            dyn("rm", "-f", "web6")
    finally:
        subprocess.run(["ip", "link", "del", peer], check=False)
        dyn("rm", "-f", "web6", check=False)
        dyn("network", "rm", "v6out", check=False)


def test_network_helpers_started_together_agree_on_one(engine, monkeypatch, tmp_path):
    """Eight syncs at once with no helper running: all answered, by one helper (the others
    said so once it listened, and left); an idle helper leaves within its two seconds, and a
    sync after that starts a new one.  No sync waits on a timer."""
    from dockyard.engine.network import dns, hooks

    run = tmp_path / "run"
    monkeypatch.setenv("DOCKYARD_RUN", str(run))
    hooks.networks(engine.containers)  # (the network tables the helper reads)
    root = engine.store.root
    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(lambda _: dns.sync(root), range(8)))
    sock = dns.control_path(root)
    assert sock.parent == run and sock.exists()
    # one process holds the root's lock (the losers had the file open too, briefly: holding the
    # flock, in /proc/locks, is what counts)
    ino = os.stat(sock.with_suffix(".lock")).st_ino
    with open("/proc/locks") as f:
        holders = [ln.split()[4] for ln in f if ln.split()[1] == "FLOCK" and ln.split()[5].endswith(f":{ino}")]
    assert len(holders) == 1, holders
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # (the helper's own two idle seconds)
    assert not sock.exists()
    assert dns.sync(root)  # a new one
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sock.exists()


def test_wait_link_gone_hears_the_deletion():
    """A veth name still held by a dying namespace is waited for by its RTM_DELLINK event (a
    restart at once after an exit): True when it goes, False at the deadline."""
    import threading

    from dockyard.engine.network import netlink

    names = [f"dywait{os.getpid() % 10000}a", f"dywait{os.getpid() % 10000}b"]
    try:
        with netlink.Netlink() as nl:
            for n in names:
                nl.create_bridge(n)

        def later() -> None:
            with netlink.Netlink() as nl:
                nl.delete_link(names[0])

        timer = threading.Timer(0.05, later)
        timer.start()
        assert netlink.wait_link_gone(names[0], 10.0)
        timer.join()
        assert netlink.wait_link_gone(names[0], 0.0)  # gone already: no wait at all
        t0 = time.monotonic()
        assert not netlink.wait_link_gone(names[1], 0.2)
        assert time.monotonic() - t0 >= 0.2
    finally:
        with netlink.Netlink() as nl:
            for n in names:
                nl.delete_link(n)
