"""The same network commands against dockyard and a real dockerd on a bridge of its own.

The dockerd here gets a bridge device this module makes on a private subnet, with
``--iptables=false`` (so it touches no host rule); the module adds, and always removes, the two
FORWARD accept rules that bridge needs on hosts whose FORWARD policy is DROP.  Outputs are
compared after replacing addresses and IDs, which differ by nature.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from support import (Dockerd, drop_filter_table_unless, engine_api, has_filter_table, make_busybox_rootfs, need,
                     tar_dir, tempfile_dir)
from test_network import dyn  # noqa: F401  (a fixture)

DK_BRIDGE, DK_ADDR = "dytdk0", "10.251.78.1/24"
FWD = [["FORWARD", "-i", DK_BRIDGE, "-j", "ACCEPT"], ["FORWARD", "-o", DK_BRIDGE, "-j", "ACCEPT"]]


class BridgedDockerd(Dockerd):
    def start(self) -> None:
        self.track_leftovers()
        self.base.mkdir(parents=True, exist_ok=True)
        self.log = open(self.base / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
             "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{self.sock}",
             "--bridge", DK_BRIDGE, "--iptables=false", "--ip6tables=false", "--ip-masq=false",
             "--storage-driver", "overlay2"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("dockerd did not start: " + (self.base / "dockerd.log").read_text()[-2000:])


@pytest.fixture(scope="module")
def bridged_docker(tmp_path_factory):
    need("dockerd")
    need("docker")
    subprocess.run(["ip", "link", "del", DK_BRIDGE], capture_output=True)
    subprocess.run(["ip", "link", "add", DK_BRIDGE, "type", "bridge"], check=True)
    d = None
    had_filter = has_filter_table()
    try:
        subprocess.run(["ip", "addr", "add", DK_ADDR, "dev", DK_BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", DK_BRIDGE, "up"], check=True)
        for rule in FWD:
            subprocess.run(["iptables", "-w", "-I", *rule], check=True)
        d = BridgedDockerd(Path(tempfile_dir()))
        try:
            d.start()
        except RuntimeError as exc:
            d = None
            pytest.skip(str(exc))
        work = tmp_path_factory.mktemp("dkimg")
        root = make_busybox_rootfs(work / "rootfs")
        from test_network import NET_APPLETS

        for applet in set(NET_APPLETS) | {"ip", "sort"}:
            if not (root / "bin" / applet).exists():
                (root / "bin" / applet).symlink_to("busybox")
        (root / "www").mkdir()
        (root / "www" / "index.html").write_text("hello from the container\n")  # as test_network's image
        d.docker("import", "-c", 'CMD ["/bin/sh"]', str(tar_dir(root, work / "bb.tar")), "bb")
        yield d
    finally:
        if d is not None:
            d.docker("rm", "-f", *d.docker("ps", "-aq", check=False).stdout.decode().split(), check=False)
            d.docker("network", "prune", "-f", check=False)  # dockerd leaves its bridges when stopped
            d.stop()
        for rule in FWD:
            subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True)
        drop_filter_table_unless(had_filter)
        subprocess.run(["ip", "link", "del", DK_BRIDGE], capture_output=True)


def both(dyn, docker):
    return (("dockyard", dyn), ("docker", docker.docker))


def normalize(out: str, subs: dict[str, str]) -> str:
    for real, token in sorted(subs.items(), key=lambda kv: -len(kv[0])):
        if real:
            out = out.replace(real, token)
    return out


def test_links_env_and_hosts_match_docker(dyn, bridged_docker):
    results = {}
    for tool, run in both(dyn, bridged_docker):
        run("run", "-d", "--name", "db", "--expose", "5432", "--expose", "7000-7002/udp", "-e", "PASSWORD=pw",
            "-e", "MODE=a=b", "bb", "sleep", "60")
        db = json.loads(run("inspect", "db").stdout)[0]
        out = run("run", "--rm", "--name", "web", "--link", "db:dbapp", "--link", "db", "bb", "sh", "-c",
                  "env | sort; echo ---; cat /etc/hosts").stdout.decode()
        env, hosts = out.split("---\n")
        subs = {db["NetworkSettings"]["IPAddress"]: "DBIP", db["Id"][:12]: "DBID"}
        env_lines = sorted(l for l in env.splitlines() if l.startswith(("DBAPP_", "DB_")))
        host_lines = [l for l in hosts.splitlines() if "DBID" in normalize(l, subs)]
        run("stop", "-t", "0", "db")
        err = run("run", "--rm", "--name", "web2", "--link", "db:dbapp", "bb", "true", check=False)
        run("rm", "-f", "db")
        results[tool] = ([normalize(l, subs) for l in env_lines], [normalize(l, subs) for l in host_lines],
                         err.returncode, err.stderr.decode())
    ours, theirs = results["dockyard"], results["docker"]
    assert ours[0] == theirs[0]
    assert sorted(ours[1]) == sorted(theirs[1])  # docker keeps links in a map: any order
    assert ours[2] == theirs[2] == 125
    assert "Cannot link to a non running container: /db AS /web2/dbapp" in ours[3]
    assert "Cannot link to a non running container: /db AS /web2/dbapp" in theirs[3]


def test_etc_files_match_docker(dyn, bridged_docker):
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        out = run("run", "--rm", "-h", "box", "--add-host", "db.local:10.9.8.7", "--add-host", "hg:host-gateway",
                  "--dns", "192.0.2.53", "--dns-search", "a.test", "--dns-option", "ndots:3", "bb", "sh", "-c",
                  "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname; ip -o -4 addr show eth0; "
                  "ip route | grep default; ping -c1 -W2 hg | grep -c '1 packets received'").stdout.decode()
        ip = re.search(r"inet (\S+)/", out).group(1)
        gateway = re.search(r"default via (\S+)", out).group(1)  # host-gateway: the default bridge's address
        outs[tool] = normalize(out.rsplit("---\n", 1)[0], {ip: "IP", gateway: "GATEWAY"}), out.splitlines()[-1]
    assert outs["dockyard"] == outs["docker"]
    assert "GATEWAY\thg\n" in outs["docker"][0] and outs["docker"][1] == "1"


def _keys_at_141(entry: dict) -> list[str]:
    """An endpoint's keys as API 1.41 (dockerd 20.10's) has them: the CLIs here speak 1.45 to
    dockyard, whose endpoints also have 1.44's DNSNames (and, from 1.45, Aliases without the
    short ID, which the callers leave out on both sides)."""
    return sorted(k for k in entry if k != "DNSNames")


def test_inspect_and_port_match_docker(dyn, bridged_docker):
    shapes = {}
    for tool, run in both(dyn, bridged_docker):
        run("run", "-d", "--name", "pub", "-p", "127.0.0.1::80", "-p", "18799:81/udp", "--expose", "82", "bb",
            "sleep", "60")
        rec = json.loads(run("inspect", "pub").stdout)[0]
        ns = rec["NetworkSettings"]
        port_out = run("port", "pub").stdout.decode()
        hp = ns["Ports"]["80/tcp"][0]["HostPort"]
        run("rm", "-f", "pub")
        # each 0.0.0.0 binding has its "::" twin, as in docker 20.10
        ports = ns["Ports"]
        shapes[tool] = (sorted(ns), sorted(ns["Networks"]), _keys_at_141(ns["Networks"]["bridge"]),
                        normalize(json.dumps(ports, sort_keys=True), {hp: "HP"}),
                        normalize(port_out, {hp: "HP"}), rec["HostConfig"]["NetworkMode"],
                        json.dumps(rec["HostConfig"]["PortBindings"], sort_keys=True), sorted(rec["Config"]["ExposedPorts"]))
    assert shapes["dockyard"] == shapes["docker"]


def test_bad_publish_and_network_errors_match_docker(dyn, bridged_docker):
    for args in (["-p", "80:abc"], ["-p", "abc:80"], ["-p", "80/sctpx"], ["--network", "nosuch"],
                 ["--link", "nosuch"]):
        outs = {}
        for tool, run in both(dyn, bridged_docker):
            proc = run("run", "--rm", *args, "bb", "true", check=False)
            msg = proc.stderr.decode().strip().splitlines()[0]
            msg = msg.removeprefix("docker: ").removeprefix("Error response from daemon: ").rstrip(".")
            outs[tool] = (proc.returncode, msg)
        assert outs["dockyard"] == outs["docker"], args


def test_network_commands_match_docker(dyn, bridged_docker):
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        nid = run("network", "create", "--subnet", "10.250.90.0/24", "--label", "k=v", "cmpnet").stdout.decode().strip()
        run("run", "-d", "--name", "member", "--network", "cmpnet", "--network-alias", "al", "bb", "sleep", "60")
        net = json.loads(run("network", "inspect", "cmpnet").stdout)[0]
        member = json.loads(run("inspect", "member").stdout)[0]
        busy = run("network", "rm", "cmpnet", check=False)
        ls = run("network", "ls", "--filter", "name=cmpnet").stdout.decode()
        run("rm", "-f", "member")
        run("network", "rm", "cmpnet")
        cid = member["Id"]
        entry = member["NetworkSettings"]["Networks"]["cmpnet"]
        outs[tool] = (sorted(net), net["IPAM"]["Config"], net["Labels"], net["Driver"], net["Internal"],
                      sorted(net["Containers"][cid]), net["Containers"][cid]["IPv4Address"],
                      _keys_at_141(entry), sorted(a for a in entry["Aliases"] if a != cid[:12]),
                      entry["Gateway"], member["NetworkSettings"]["IPAddress"], busy.returncode,
                      normalize(ls, {nid[:12]: "NID"}))
    assert outs["dockyard"] == outs["docker"]


def test_user_network_etc_files_match_docker(dyn, bridged_docker):
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        run("network", "create", "--subnet", "10.250.91.0/24", "etcnet")
        try:
            out = run("run", "--rm", "--network", "etcnet", "-h", "box", "--add-host", "x.local:10.9.8.7", "bb", "sh",
                      "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf").stdout.decode()
        finally:
            run("network", "rm", "etcnet")
        outs[tool] = re.sub(r"10\.250\.91\.\d+", "IP", out)
    assert outs["dockyard"] == outs["docker"]


def test_conflicting_options_match_docker(dyn, bridged_docker):
    for tool, run in both(dyn, bridged_docker):
        run("run", "-d", "--name", "base", "bb", "sleep", "60")
    try:
        for args in (["--network-alias", "x"], ["--ip", "10.250.95.9"], ["--network", "host", "--link", "base"],
                     ["--network", "container:base", "-p", "80"], ["--network", "container:base", "--link", "base"]):
            outs = {}
            for tool, run in both(dyn, bridged_docker):
                proc = run("run", "--rm", *args, "bb", "true", check=False)
                msg = proc.stderr.decode().strip().splitlines()[0]
                outs[tool] = (proc.returncode, msg.removeprefix("docker: ").removeprefix("Error response from daemon: "))
            assert outs["dockyard"] == outs["docker"], args
        outs = {}
        for tool, run in both(dyn, bridged_docker):
            proc = run("port", "base", "80", check=False)
            outs[tool] = (proc.returncode, proc.stdout, proc.stderr)
        assert outs["dockyard"] == outs["docker"]
    finally:
        for tool, run in both(dyn, bridged_docker):
            run("rm", "-f", "base", check=False)


def test_network_command_errors_match_docker(dyn, bridged_docker):
    cases = [["network", "create", "--subnet", "10.250.92.0/33", "x1"], ["network", "create", "--subnet", "banana", "x1"],
             ["network", "create", "--subnet", "10.250.92.0/24", "--gateway", "10.250.93.1", "x1"],
             ["network", "create", "bridge"], ["network", "create", "--subnet", "10.250.92.0/24", "dup"],
             ["network", "create", "--subnet", "10.250.92.128/25", "x2"], ["network", "rm", "nope"],
             ["network", "rm", "bridge"], ["network", "connect", "dup", "member"],
             ["network", "disconnect", "bridge", "member"], ["network", "inspect", "nope"],
             ["network", "connect", "nope", "member"], ["network", "connect", "dup", "nobody"],
             ["network", "create", "--opt", "com.docker.network.driver.mtu=abc", "x3"]]
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        run("network", "create", "--subnet", "10.250.92.0/24", "dup")
        run("run", "-d", "--name", "member", "--network", "dup", "bb", "sleep", "60")
        cid = json.loads(run("inspect", "member").stdout)[0]["Id"]
        dup = json.loads(run("network", "inspect", "dup").stdout)[0]["Id"]
        try:
            res = []
            for args in cases:
                proc = run(*args, check=False)
                err = proc.stderr.decode().strip().splitlines()
                res.append((proc.returncode, normalize(err[0] if err else "", {cid: "CID", dup: "NID"})))
            outs[tool] = res
        finally:
            run("rm", "-f", "member")
            run("network", "rm", "dup")
    diffs = [(args, ours, theirs) for args, ours, theirs in zip(cases, outs["dockyard"], outs["docker"]) if ours != theirs]
    assert diffs == [], "\n".join(map(repr, diffs))


def _net_entry(rec: dict, net: str) -> dict:
    return rec["NetworkSettings"]["Networks"][net]


def test_ipv6_network_matches_docker(dyn, bridged_docker):
    """--ipv6 with an IPv6 subnet and gateway: the network's IPAM, the addresses a container
    gets (first free, --ip6), its /etc/hosts, routes, AAAA answers and ping6 by name, as dockerd.
    One daemon at a time: both would route the same subnet."""
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        run("network", "create", "--ipv6", "--subnet", "fd0d:d0c:21::/64", "--gateway", "fd0d:d0c:21::1:1",
            "--subnet", "10.250.97.0/24", "six")
        try:
            net = json.loads(run("network", "inspect", "six").stdout)[0]
            run("run", "-d", "--name", "a6", "--network", "six", "bb", "sleep", "60")
            run("run", "-d", "--name", "b6", "--network", "six", "--ip6", "fd0d:d0c:21::99", "bb", "sleep", "60")
            a, b = (json.loads(run("inspect", n).stdout)[0] for n in ("a6", "b6"))
            out = run("exec", "a6", "sh", "-c", "cat /etc/hosts; echo ---; ip -6 route | grep default; "
                      "ip -6 addr show eth0 scope global | grep inet6; echo ---; "
                      "nslookup b6 | grep '^Address: ' | grep -v ':53$' | sort; "
                      "ping -6 -c 1 -W 2 b6 | grep -c 'bytes from fd0d:d0c:21::99'").stdout.decode()
            keep = ("GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPv6Gateway", "IPAMConfig", "IPAddress", "Gateway")
            members = json.loads(run("network", "inspect", "six").stdout)[0]["Containers"]
            outs[tool] = (net["EnableIPv6"], net["IPAM"], {k: _net_entry(a, "six")[k] for k in keep},
                          {k: _net_entry(b, "six")[k] for k in keep},
                          sorted(m["IPv6Address"] for m in members.values()),
                          normalize(out, {a["Id"][:12]: "AID"}))
        finally:
            run("rm", "-f", "a6", "b6", check=False)
            run("network", "rm", "six", check=False)
    assert outs["dockyard"] == outs["docker"]
    assert "fd0d:d0c:21::1\tAID" in outs["docker"][5] and outs["docker"][5].rstrip().endswith("1")


def test_ipam_options_match_docker(dyn, bridged_docker):
    """--ip-range, --aux-address and --gateway: what inspect shows, where the first address comes
    from; and the errors for pools that do not fit."""
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        run("network", "create", "--subnet", "10.250.98.0/24", "--ip-range", "10.250.98.128/25", "--gateway",
            "10.250.98.254", "--aux-address", "a=10.250.98.128", "--aux-address", "b=10.250.98.129", "rng")
        try:
            net = json.loads(run("network", "inspect", "rng").stdout)[0]
            run("run", "-d", "--name", "r1", "--network", "rng", "bb", "sleep", "60")
            r1 = json.loads(run("inspect", "r1").stdout)[0]
            errs = []
            for args in (["--subnet", "10.250.99.0/24", "--aux-address", "x=10.250.100.1"],
                         ["--subnet", "10.250.99.0/24", "--subnet", "10.250.101.0/24"],
                         ["--subnet", "10.250.98.0/25"], ["-d", "host"], ["-d", "null"]):
                proc = run("network", "create", *args, "bad", check=False)
                errs.append((proc.returncode, proc.stderr.decode().strip().splitlines()[0]))
                run("network", "rm", "bad", check=False)
            outs[tool] = (net["IPAM"], _net_entry(r1, "rng")["IPAddress"], _net_entry(r1, "rng")["Gateway"], errs)
        finally:
            run("rm", "-f", "r1", check=False)
            run("network", "rm", "rng", check=False)
    assert outs["dockyard"] == outs["docker"]
    assert outs["docker"][1] == "10.250.98.130"


def test_connect_options_match_docker(dyn, bridged_docker):
    """connect --ip6, --alias, --link and --link-local-ip on a created container, and a name with a
    space: inspect before and after the start, the addresses on the interface, the link as a DNS
    alias; disconnect --force of a container that is not connected fails."""
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        run("network", "create", "--ipv6", "--subnet", "fd0d:d0c:22::/64", "my net")
        try:
            run("run", "-d", "--name", "peer", "--network", "my net", "bb", "sleep", "60")
            run("create", "--name", "cn", "bb", "sleep", "60")
            run("network", "connect", "--ip6", "fd0d:d0c:22::42", "--alias", "al", "--link", "peer:pl",
                "--link-local-ip", "169.254.9.9", "my net", "cn")
            keep = ("IPAMConfig", "Links", "GlobalIPv6Address", "IPv6Gateway")
            before = json.loads(run("inspect", "cn").stdout)[0]
            run("start", "cn")
            after = json.loads(run("inspect", "cn").stdout)[0]
            out = run("exec", "cn", "sh", "-c", "ip -o addr | grep -c '169.254.9.9/16'; "
                      "nslookup pl | grep -c 'Address: fd0d:d0c:22::'").stdout.decode()
            ent = _net_entry(after, "my net")
            run("network", "disconnect", "my net", "cn")
            proc = run("network", "disconnect", "--force", "my net", "cn", check=False)
            outs[tool] = ({k: _net_entry(before, "my net")[k] for k in keep}, {k: ent[k] for k in keep},
                          [a for a in ent["Aliases"] if a != after["Id"][:12]], out, proc.returncode,
                          normalize(proc.stderr.decode().strip(), {after["Id"]: "CID"}))
        finally:
            run("rm", "-f", "peer", "cn", check=False)
            run("network", "rm", "my net", check=False)
    assert outs["dockyard"][:5] == outs["docker"][:5]
    assert "is not connected to network my net" in outs["dockyard"][5] and "is not connected" in outs["docker"][5]
    assert outs["docker"][3] == "1\n1\n"


def test_published_port_on_ipv6_matches_docker(dyn, bridged_docker):
    """-p [::1]:PORT:80 and -p PORT:80 of an IPv4-only container: inspect, port and ps show the
    bindings as dockerd does (a [::] twin for 0.0.0.0), and the port answers on [::1]."""
    from test_network import free_port, http_get

    outs = {}
    for tool, run in both(dyn, bridged_docker):
        p1, p2 = free_port(), free_port()
        run("run", "-d", "--name", "pub6", "-p", f"[::1]:{p1}:80", "-p", f"{p2}:81", "bb", "httpd", "-f", "-p", "80",
            "-h", "/www")
        try:
            rec = json.loads(run("inspect", "pub6").stdout)[0]
            subs = {str(p1): "P1", str(p2): "P2"}
            got = http_get("::1", p1)
            outs[tool] = (normalize(json.dumps(rec["NetworkSettings"]["Ports"], sort_keys=True), subs),
                          normalize(run("port", "pub6").stdout.decode(), subs),
                          normalize(run("ps", "--format", "{{.Ports}}", "-f", "name=pub6").stdout.decode(), subs),
                          json.dumps(rec["HostConfig"]["PortBindings"], sort_keys=True).count("::1"),
                          "hello from the container" in got)
        finally:
            run("rm", "-f", "pub6", check=False)
    assert outs["dockyard"] == outs["docker"]
    assert outs["docker"][4] is True


def test_network_api_answers_match_docker(dyn, bridged_docker):
    """The API's answers to bodies docker-py sends: Go's 400 for a field of the wrong type, 403
    for the host and null drivers, a name with spaces taken, IPAM as given (Options null when not
    sent), and a forced disconnect of a container that does not exist."""
    socks = {"dockyard": str(Path(dyn.run_dir) / "dockyard.sock"), "docker": str(bridged_docker.sock)}
    cases = [("POST", "/networks/create", {"Name": "lw", "Labels": ["a=b"]}),
             ("POST", "/networks/create", {"Name": "lw", "Options": {"a": 1}}),
             ("POST", "/networks/create", {"Name": "lw", "IPAM": {"Config": [{"Subnet": 5}]}}),
             ("POST", "/networks/create", {"Name": "lw", "Driver": "host"}),
             ("POST", "/networks/create", {"Name": "lw", "Driver": "null"}),
             ("POST", "/networks/create", {"Name": "lw", "Driver": "nosuch"}),
             ("POST", "/networks/create", {"Name": "lw", "IPAM": {"Driver": "nosuch"}})]
    outs = {}
    for tool, sock in socks.items():
        res = [engine_api(sock, *case) for case in cases]
        status, made = engine_api(sock, "POST", "/networks/create", {
            "Name": "with space", "Labels": {"k": "v"}, "Internal": True,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.250.103.0/24", "IPRange": "10.250.103.64/26",
                                                      "Gateway": "10.250.103.1",
                                                      "AuxiliaryAddresses": {"a": "10.250.103.2"}}]}})
        try:
            net = engine_api(sock, "GET", "/networks/with space".replace(" ", "%20"))[1]
            gone = engine_api(sock, "POST", "/networks/with%20space/disconnect", {"Container": "nosuchctr", "Force": True})
        finally:
            engine_api(sock, "DELETE", "/networks/with%20space")
        outs[tool] = ([(s, b.get("message", "").removeprefix("invalid JSON: ")) for s, b in res], status,
                      net["IPAM"], net["Labels"], net["Internal"], (gone[0], gone[1].get("message")))
    assert outs["dockyard"] == outs["docker"]


def test_mac_address_matches_docker(dyn, bridged_docker):
    """Config.MacAddress at create (API 1.41, as docker-py sends it): the interface has it and
    inspect shows it (Config, before the start and after it)."""
    socks = {"dockyard": str(Path(dyn.run_dir) / "dockyard.sock"), "docker": str(bridged_docker.sock)}
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        sock = socks[tool]
        status, made = engine_api(sock, "POST", "/containers/create?name=mac",
                            {"Image": "bb", "Cmd": ["sleep", "60"], "MacAddress": "02:42:ac:11:00:99"})
        try:
            before = engine_api(sock, "GET", "/containers/mac/json")[1]
            run("start", "mac")
            rec = json.loads(run("inspect", "mac").stdout)[0]
            link = run("exec", "mac", "cat", "/sys/class/net/eth0/address").stdout.decode()
            outs[tool] = (status, before["Config"].get("MacAddress"), rec["Config"].get("MacAddress"),
                          rec["NetworkSettings"]["MacAddress"], link)
        finally:
            run("rm", "-f", "mac", check=False)
    assert outs["dockyard"] == outs["docker"]
    assert outs["docker"][4] == "02:42:ac:11:00:99\n"


def test_default_bridge_ipv6_matches_docker(dyn, bridged_docker, tmp_path):
    """Both daemons started with --ipv6 --fixed-cidr-v6 (each its own subnet): the default
    bridge's inspect, a container's IPv6 fields, and --link's /etc/hosts lines of both families."""
    from test_network import flagged_daemon

    bridge6 = "dytdk6"
    subprocess.run(["ip", "link", "del", bridge6], capture_output=True)
    subprocess.run(["ip", "link", "add", bridge6, "type", "bridge"], check=True)
    d = None
    try:
        subprocess.run(["ip", "addr", "add", "10.251.79.1/24", "dev", bridge6], check=True)
        subprocess.run(["ip", "link", "set", bridge6, "up"], check=True)

        class V6Dockerd(BridgedDockerd):
            def start(self) -> None:
                real = subprocess.Popen

                def popen(cmd, *a, **kw):
                    if cmd and cmd[0] == "dockerd":
                        cmd = [bridge6 if c == DK_BRIDGE else c for c in cmd] + [
                            "--ipv6", "--fixed-cidr-v6", "fd0d:d0c:60::/64"]
                    return real(cmd, *a, **kw)

                subprocess.Popen = popen
                try:
                    super().start()
                finally:
                    subprocess.Popen = real

        d = V6Dockerd(Path(tempfile_dir()))
        d.start()
        image = bridged_docker.docker("save", "bb").stdout
        d.docker("load", input=image)
        outs = {}
        with flagged_daemon(dyn, "--ipv6", "--fixed-cidr-v6", "fd0d:d0c:61::/64"):
            for tool, run, prefix in (("dockyard", dyn, "fd0d:d0c:61::"), ("docker", d.docker, "fd0d:d0c:60::")):
                net = json.loads(run("network", "inspect", "bridge").stdout)[0]
                run("run", "-d", "--name", "db6", "bb", "sleep", "60")
                try:
                    db = json.loads(run("inspect", "db6").stdout)[0]
                    hosts = run("run", "--rm", "--link", "db6:dbapp", "bb", "cat", "/etc/hosts").stdout.decode()
                finally:
                    run("rm", "-f", "db6", check=False)
                ns = db["NetworkSettings"]
                subs = {db["Id"][:12]: "CID", ns["IPAddress"]: "IP4", ns["GlobalIPv6Address"]: "IP6", prefix: "PFX:"}
                v6cfg = [c for c in net["IPAM"]["Config"] if ":" in c["Subnet"]]
                outs[tool] = (net["EnableIPv6"], normalize(json.dumps(v6cfg, sort_keys=True), {prefix: "PFX:"}),
                              normalize(ns["GlobalIPv6Address"], subs), ns["GlobalIPv6PrefixLen"],
                              normalize(ns["IPv6Gateway"], {prefix: "PFX:"}),
                              sorted(normalize(l, subs) for l in hosts.splitlines() if "CID" in normalize(l, subs)))
        assert outs["dockyard"] == outs["docker"]
        assert outs["docker"][5] == ["IP4\tdbapp CID db6", "IP6\tdbapp CID db6"]
    finally:
        if d is not None:
            d.docker("rm", "-f", *d.docker("ps", "-aq", check=False).stdout.decode().split(), check=False)
            d.stop()
        subprocess.run(["ip", "link", "del", bridge6], capture_output=True)


def test_gateway_moves_like_docker(dyn, bridged_docker):
    """Which network gives a container its default route, and whether its published port still
    answers, as networks are connected and disconnected: dockerd's order is by network name, the
    default bridge included, and the port goes where the default route goes."""
    from test_network import free_port, http_get

    outs = {}
    for tool, run in both(dyn, bridged_docker):
        port = free_port()
        try:
            for net, subnet in (("aa", "10.250.31.0/24"), ("zz", "10.250.32.0/24")):
                run("network", "create", "--subnet", subnet, net)
            subnets = {net: ipaddress.ip_network(json.loads(run("network", "inspect", net).stdout)[0]["IPAM"]["Config"][0]
                                                 ["Subnet"]) for net in ("bridge", "aa", "zz")}
            run("run", "-d", "--name", "gw", "-p", f"127.0.0.1:{port}:80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
            steps = []
            for step in ((), ("connect", "zz"), ("connect", "aa"), ("disconnect", "aa"), ("disconnect", "bridge")):
                if step:
                    run("network", *step, "gw")
                route = [l.split()[2] for l in run("exec", "gw", "ip", "route").stdout.decode().splitlines()
                         if l.startswith("default")]
                steps.append((step, [n for r in route for n, sub in subnets.items() if ipaddress.ip_address(r) in sub],
                              "hello from the container" in http_get("127.0.0.1", port)))
            outs[tool] = steps
        finally:
            run("rm", "-f", "gw", check=False)
            run("network", "rm", "aa", "zz", check=False)
    assert outs["dockyard"] == outs["docker"]
    assert [s[1] for s in outs["docker"]] == [["bridge"], ["bridge"], ["aa"], ["bridge"], ["zz"]]


def test_mtu_option_matches_docker(dyn, bridged_docker):
    """A network's com.docker.network.driver.mtu is the MTU of its containers' interfaces, on a
    run and on a connect."""
    outs = {}
    for tool, run in both(dyn, bridged_docker):
        run("network", "create", "--subnet", "10.250.33.0/24", "--opt", "com.docker.network.driver.mtu=1400", "small")
        try:
            first = run("run", "--rm", "--network", "small", "bb", "cat", "/sys/class/net/eth0/mtu").stdout.decode()
            run("run", "-d", "--name", "mt", "bb", "sleep", "60")
            run("network", "connect", "small", "mt")
            both_ifs = run("exec", "mt", "sh", "-c", "cat /sys/class/net/eth0/mtu /sys/class/net/eth1/mtu").stdout.decode()
            outs[tool] = (first, both_ifs, json.loads(run("network", "inspect", "small").stdout)[0]["Options"])
        finally:
            run("rm", "-f", "mt", check=False)
            run("network", "rm", "small", check=False)
    assert outs["dockyard"] == outs["docker"]
    assert outs["docker"][:2] == ("1400\n", "1500\n1400\n")
