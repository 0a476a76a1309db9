"""Bridge networking with no firewall or network program on the machine: dockyard programs
nf_tables over netlink itself (engine/network/nftables.py, firewall.py).

- A daemon in a private mount namespace where every ``iptables*``, ``ip6tables*``, ``nft``,
  ``ip`` (and friends) is an empty file runs hello-world, two containers that reach each other by
  name, a published port reached from the host, and the same over IPv6 (``--ipv6`` containers
  pinging each other by name, a port published on [::]); nothing is left behind.
- The rule groups, in a throw-away network namespace: adding twice gives the rules once,
  removing takes exactly a group's rules, the last network takes the table, and accepts go once
  into iptables-nft's FORWARD chain (which iptables can still read).
- Beside a dockerd, with the host's iptables FORWARD policy DROP, containers still talk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from support import drop_filter_table_unless, has_filter_table, needs_root, stop_daemon
from test_network import (  # noqa: F401  (dyn: a fixture)
    dyn, eventually, http_get, inspect, iptables_works, make_image, nftables_works, runtime_available,
)

pytestmark = [needs_root, pytest.mark.skipif(not runtime_available(), reason="dockyard-runtime is not built"),
              pytest.mark.skipif(not nftables_works(), reason="nf_tables does not work here")]

HIDE = ("iptables*", "ip6tables*", "nft", "ip", "ebtables*", "arptables*", "xtables*", "ipset", "bridge", "tc",
        "ss", "brctl", "ifconfig", "route", "iptables-restore", "iptables-save")

# Runs as `python hide.py EMPTY LIST -- cmd...`: a private mount namespace in which each
# firewall and network program on the usual paths is an empty, non-executable file; then cmd.
WRAPPER = r'''
import ctypes, glob, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
empty, listing, cmd = sys.argv[1], sys.argv[2], sys.argv[4:]
check(libc.unshare(0x20000), "unshare mount namespace")                    # CLONE_NEWNS
check(libc.mount(b"none", b"/", None, 0x4000 | (1 << 18), None), "make / private")  # MS_REC|MS_PRIVATE
dirs = os.environ.get("PATH", "").split(":") + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                                                "/sbin", "/bin"]
hidden = []
for d in dirs:
    for pattern in PATTERNS:
        for path in glob.glob(os.path.join(d, pattern)):
            real = os.path.realpath(path)
            if real in hidden or not os.path.isfile(real):
                continue
            check(libc.mount(empty.encode(), real.encode(), None, 4096, None), f"hide {real}")  # MS_BIND
            hidden.append(real)
with open(listing, "w") as f:
    f.write("\n".join(hidden))
os.execvp(cmd[0], cmd)
'''


def _wrapper(tmp: Path) -> list[str]:
    (tmp / "hide.py").write_text(f"PATTERNS = {HIDE!r}\n" + WRAPPER)
    (tmp / "empty").write_bytes(b"")
    os.chmod(tmp / "empty", 0o644)
    return [sys.executable, str(tmp / "hide.py"), str(tmp / "empty")]


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """The ``dockyard`` CLI against a daemon that runs where no firewall or network program can
    be run.  At the end: every container and network removed, the daemon stopped."""
    root = tmp_path / "root"
    run = Path(tempfile.mkdtemp(prefix="dynf-", dir="/tmp"))
    exe = str(Path(sys.executable).with_name("dockyard"))
    env = dict(os.environ, DOCKYARD_ROOT=str(root), DOCKYARD_RUN=str(run))
    env.pop("DOCKYARD_HOST", None)
    monkeypatch.setenv("DOCKYARD_RUN", str(run))
    wrap = _wrapper(tmp_path)
    log = open(tmp_path / "daemon.log", "wb")
    daemon = subprocess.Popen(wrap + [str(tmp_path / "hidden"), "--", exe, "daemon", "-H", f"unix://{run}/dockyard.sock"],
                              env=env, stdout=subprocess.DEVNULL, stderr=log)

    def dy(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([exe, *args], capture_output=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}")
        return proc

    dy.root, dy.run_dir, dy.env, dy.wrap, dy.tmp = root, run, env, wrap, tmp_path  # type: ignore[attr-defined]
    dy.proc = daemon  # type: ignore[attr-defined]
    try:
        deadline = time.time() + 30
        while not (run / "dockyard.sock").exists() and daemon.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if daemon.poll() is not None:
            pytest.fail("the daemon did not start: " + (tmp_path / "daemon.log").read_text()[-2000:])
        dy("version")
        yield dy
    finally:
        if daemon.poll() is None:
            left = dy("ps", "-aq", check=False).stdout.decode().split()
            if left:
                dy("rm", "-f", *left, check=False)
            dy("network", "prune", "-f", check=False)
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        log.close()
        stop_daemon(run, root)
        shutil.rmtree(run, ignore_errors=True)


def links() -> list[str]:
    from dockyard.engine.network import netlink

    with netlink.Netlink() as nl:
        return nl.link_names()


def _counter(rule: str) -> int:
    return int(rule.split("counter packets ")[1].split()[0])


def test_bridge_networking_with_no_firewall_or_network_programs(bare, tmp_path):
    from dockyard.engine.network.firewall import rules_mentioning

    # The daemon's world really has none of them.
    hidden = (tmp_path / "hidden").read_text().split()
    for name in ("iptables", "ip", "nft", "iptables-restore"):
        if shutil.which(name):
            assert os.path.realpath(shutil.which(name)) in hidden, name
    probe = subprocess.run(bare.wrap + [str(tmp_path / "hidden2"), "--", "sh", "-c", "iptables -V; ip link; nft -v"],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "iptables v" not in probe.stdout and "lo:" not in probe.stdout, probe

    # The README's first job, on the default bridge.
    out = bare("run", "--rm", "hello-world").stdout.decode()
    assert "Hello from dockyard!" in out

    # Two containers on a user network reach each other by name.
    make_image(bare, tmp_path)
    bare("network", "create", "nfnet")
    net_id = bare("network", "inspect", "-f", "{{.Id}}", "nfnet").stdout.decode().strip()
    user_bridge = "dyn" + net_id[:12]
    bare("run", "-d", "--name", "srv", "--network", "nfnet", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
    got = bare("run", "--rm", "--network", "nfnet", "bb", "sh", "-c",
               "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://srv/index.html && exit 0; sleep 0.2; done; exit 1")
    assert "hello from the container" in got.stdout.decode()

    # A published port, from the host: loopback (the proxy) and the bridge's address (DNAT).
    bare("run", "-d", "--name", "web", "-p", "80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
    rec = inspect(bare, "web")
    port = int(rec["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    gateway = rec["NetworkSettings"]["Gateway"]
    bridge = "dyb" + hashlib.sha256(str(bare.root.resolve()).encode()).hexdigest()[:10]
    assert "hello from the container" in http_get("127.0.0.1", port)
    assert "hello from the container" in http_get(gateway, port)
    (dnat,) = [r for r in rules_mentioning(f"th dport {port} ") if " dnat to " in r and bridge in r]
    assert _counter(dnat) >= 1, dnat  # the kernel translated it (not the proxy)
    assert rules_mentioning(user_bridge) and rules_mentioning(bridge)

    # Dual stack: --ipv6 containers ping each other by name over IPv6 (the embedded DNS answers
    # AAAA); a port published on [::] is DNATed in the ip6 table, and [::1] is the proxy's.
    bare("network", "create", "--ipv6", "--subnet", "fd0d:d0c:15::/64", "nf6")
    net6_id = bare("network", "inspect", "-f", "{{.Id}}", "nf6").stdout.decode().strip()
    bridge6 = "dyn" + net6_id[:12]
    bare("run", "-d", "--name", "six", "--network", "nf6", "-p", "80", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
    six = inspect(bare, "six")["NetworkSettings"]
    assert six["Networks"]["nf6"]["GlobalIPv6Address"].startswith("fd0d:d0c:15::")
    assert six["Networks"]["nf6"]["IPv6Gateway"] == "fd0d:d0c:15::1"
    got = bare("run", "--rm", "--network", "nf6", "bb", "sh", "-c", "ping -6 -c 1 -W 2 six && nslookup six").stdout.decode()
    assert "1 packets received" in got and six["Networks"]["nf6"]["GlobalIPv6Address"] in got
    port6 = int(six["Ports"]["80/tcp"][0]["HostPort"])
    assert {"HostIp": "::", "HostPort": str(port6)} in six["Ports"]["80/tcp"]
    assert "hello from the container" in http_get("fd0d:d0c:15::1", port6)
    assert "hello from the container" in http_get("::1", port6)
    (dnat6,) = [r for r in rules_mentioning(f"th dport {port6} ") if " dnat to [fd0d:d0c:15::" in r]
    assert _counter(dnat6) >= 1, dnat6
    assert any(r.startswith("dockyard postrouting ip6 saddr fd0d:d0c:15::/64") for r in rules_mentioning(bridge6))

    # Nothing left behind: rules (read over netlink), links, namespaces.
    bare("rm", "-f", "srv", "web", "six")
    bare("network", "rm", "nfnet", "nf6")
    assert rules_mentioning(user_bridge) == [] and rules_mentioning(bridge6) == []
    # the default bridge stays while the daemon serves (no churn per container), goes with it
    assert rules_mentioning(bridge) and bridge in links()
    bare.proc.send_signal(signal.SIGTERM)
    bare.proc.wait(30)
    assert rules_mentioning(bridge) == []
    assert eventually(lambda: [l for l in links() if l in (bridge, user_bridge, bridge6)]) == []
    netns = bare.run_dir / "netns"
    assert (os.listdir(netns) if netns.exists() else []) == []


# -- the rule groups, in a network namespace of their own --------------------------------------------

@pytest.fixture
def scratch_netns(tmp_path):
    """A new, empty network namespace (bound to a file); the calling thread enters it per block."""
    from dockyard.engine.network import netlink

    from dockyard.engine.network import firewall

    path = str(tmp_path / "ns")
    netlink.create_netns(path)
    try:
        yield path
    finally:
        firewall.release()  # its socket there would keep the namespace alive
        netlink.remove_netns(path)


def test_rule_groups_are_idempotent_and_removed_exactly(scratch_netns):
    from dockyard.engine.network import firewall, netlink
    from dockyard.engine.network import nftables as nft

    a = firewall.network_rules("dybaaaa", "10.77.0.0/16", internal=False)
    b = firewall.network_rules("dynbbbb", "10.78.1.0/24", internal=True, icc=False)
    ports = firewall.port_rules("dybaaaa", "10.77.0.2", [{"proto": "tcp", "host_ip": "0.0.0.0", "host_port": "8080",
                                                          "port": "80"}])
    with netlink.entered(scratch_netns):
        with nft.Nftables() as nf:  # a filter table and FORWARD chain as iptables-nft makes them
            nf.commit([nft.new_table(2, "filter"), nft.new_chain(2, "filter", "FORWARD", ("filter", 2, 0))])
        firewall.apply(a)
        once = firewall.all_rules()
        firewall.apply(a)  # a daemon that restarts: the same rules, not twice
        assert firewall.all_rules() == once
        firewall.apply(b)
        firewall.apply(ports)
        firewall.apply(ports)
        assert len(firewall.rules_mentioning("th dport 8080 ")) == 1
        assert len(firewall.rules_mentioning("10.77.0.2")) == 2  # DNAT and the forward accept
        host = firewall.rules_mentioning('"dockyard bridges"')  # in and out, for dy* and dockyard*
        assert len(host) == 4 and all(r.startswith("filter FORWARD ") for r in host)
        if iptables_works():  # iptables-nft still reads its table
            shown = subprocess.run(["nsenter", f"--net={scratch_netns}", "iptables", "-S", "FORWARD"],
                                   capture_output=True, text=True)
            if shown.returncode == 0 or "nsenter" not in shown.stderr:
                assert shown.returncode == 0, shown.stderr
                assert '-A FORWARD -i dy+ -m comment --comment "dockyard bridges" -j ACCEPT' in shown.stdout
                assert "-A FORWARD -o dy+ -m conntrack --ctstate RELATED,ESTABLISHED,DNAT" in shown.stdout
        # isolation names each bridge (two stages, as dockerd's), not a prefix of dockyard's names
        assert any('isolation iifname "dybaaaa" oifname != "dybaaaa" jump isolation-2' in r for r in once)
        assert any('isolation-2 oifname "dybaaaa" counter' in r and r.endswith("drop comment \"dockyard net dybaaaa\"")
                   for r in once), once
        # a bridge named otherwise (com.docker.network.bridge.name): accepts of its own in the
        # host's chain, going with its network (twice: once)
        c = firewall.network_rules("brcustom", "10.79.0.0/24", internal=False)
        firewall.apply(c)
        firewall.apply(c)
        own = [r for r in firewall.rules_mentioning('"dockyard net brcustom"') if r.startswith("filter FORWARD ")]
        assert len(own) == 2 and 'iifname "brcustom"' in own[0] + own[1], own
        firewall.apply(c, delete=True)
        assert firewall.rules_mentioning("brcustom") == []
        firewall.apply(ports, delete=True)
        assert firewall.rules_mentioning("10.77.0.2") == []
        firewall.apply(a, delete=True)
        assert firewall.rules_mentioning("dybaaaa") == [] and firewall.rules_mentioning("dynbbbb")
        assert len(firewall.rules_mentioning('"dockyard bridges"')) == 4  # b still needs them
        firewall.apply(b, delete=True)
        firewall.apply(b, delete=True)  # already gone: no error
        assert firewall.all_rules() == []
        with nft.Nftables() as nf:
            assert nf.rules(2, "dockyard") == [] and not nf.has_chain(2, "dockyard", "forward")
            assert nf.has_chain(2, "filter", "FORWARD")  # the host's own is left alone


def test_ipv6_rule_groups_go_to_the_ip6_table(scratch_netns):
    """A network with an IPv6 subnet has the same rules in ``table ip6 dockyard`` (masquerade of
    its subnet: NAT66), a port published on [::] a DNAT to the container's IPv6 address; adding
    twice gives them once; removing the last network takes both tables and the host's accepts
    in ip6tables-nft's FORWARD chain."""
    from dockyard.engine.network import firewall, netlink
    from dockyard.engine.network import nftables as nft

    a = firewall.network_rules("dybaaaa", "10.77.0.0/16", internal=False, subnet6="fd0d:d0c:77::/64")
    binding = [{"proto": "tcp", "host_ip": "0.0.0.0", "host_port": "8080", "port": "80"}]
    ports = firewall.port_rules("dybaaaa", "10.77.0.2", binding, "fd0d:d0c:77::2")
    with netlink.entered(scratch_netns):
        with nft.Nftables() as nf:
            nf.commit([nft.new_table(10, "filter"), nft.new_chain(10, "filter", "FORWARD", ("filter", 2, 0))])
        for _ in range(2):
            firewall.apply(a)
            firewall.apply(ports)
        with nft.Nftables() as nf:
            six = [r.text() for r in nf.rules(10, "dockyard")]
            four = [r.text() for r in nf.rules(2, "dockyard")]
        assert "dockyard postrouting ip6 saddr fd0d:d0c:77::/64 oifname != \"dybaaaa\" masquerade" \
            ' comment "dockyard net dybaaaa"' in six
        assert any('iifname != "dybaaaa" meta l4proto tcp th dport 8080 counter packets 0 bytes 0 '
                   "dnat to [fd0d:d0c:77::2]:80" in r for r in six)
        assert any("output ip6 daddr != ::1 fib daddr type local jump ports" in r for r in six)
        assert not any("fd0d" in r for r in four) and any("dnat to 10.77.0.2:80" in r for r in four)
        assert len([r for r in six if "th dport 8080 " in r]) == 1
        assert len([r for r in firewall.rules_mentioning('"dockyard bridges"') if r.startswith("filter")]) == 4
        firewall.apply(ports, delete=True)
        assert firewall.rules_mentioning("fd0d:d0c:77::2") == [] and firewall.rules_mentioning("10.77.0.2") == []
        firewall.apply(a, delete=True)
        assert firewall.all_rules() == []
        with nft.Nftables() as nf:
            assert nf.rules(10, "dockyard") == [] and not nf.has_chain(10, "dockyard", "forward")
            assert nf.has_chain(10, "filter", "FORWARD")


# -- beside a dockerd whose iptables FORWARD policy is DROP ---------------------------------------

def _forward_policy() -> str:
    out = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    return next((l.split()[2] for l in out.splitlines() if l.startswith("-P FORWARD ")), "ACCEPT")


@pytest.mark.skipif(not iptables_works(), reason="iptables does not work here")
def test_containers_talk_under_a_drop_forward_policy(dyn, dockerd):
    from dockyard.engine.network import firewall
    from dockyard.engine.network import nftables as nft

    had_filter = has_filter_table()
    before = _forward_policy()
    # as dockerd leaves it (on a fresh host, iptables-nft makes its filter table for this)
    subprocess.run(["iptables", "-w", "-P", "FORWARD", "DROP"], check=True)
    with nft.Nftables() as nf:
        if not nf.has_chain(2, "filter", "FORWARD"):
            subprocess.run(["iptables", "-w", "-P", "FORWARD", before], check=True)
            pytest.skip("the host's iptables is not iptables-nft (no nf_tables filter table)")
    try:
        dyn("network", "create", "nfco")
        # a second network, its bridge named by the user: the host's accepts still once, and a
        # pair of its own
        custom = f"nfbr{os.getpid() % 100000}"
        dyn("network", "create", "-o", f"com.docker.network.bridge.name={custom}", "nfco2")
        host = firewall.rules_mentioning('"dockyard bridges"')
        assert len(host) == 4, host
        assert len([r for r in firewall.rules_mentioning(f'"dockyard net {custom}"') if r.startswith("filter FORWARD ")]) == 2
        accepted = _counter(next(r for r in host if 'iifname "dy*"' in r))
        dyn("run", "-d", "--name", "srv", "--network", "nfco", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
        got = dyn("run", "--rm", "--network", "nfco", "bb", "sh", "-c",
                  "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://srv/index.html && exit 0; sleep 0.2; done; "
                  "exit 1")
        assert "hello from the container" in got.stdout.decode()
        host = firewall.rules_mentioning('"dockyard bridges"')
        assert _counter(next(r for r in host if 'iifname "dy*"' in r)) > accepted  # through the host's chain
        dyn("run", "-d", "--name", "srv2", "--network", "nfco2", "bb", "httpd", "-f", "-p", "80", "-h", "/www")
        got = dyn("run", "--rm", "--network", "nfco2", "bb", "sh", "-c",
                  "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://srv2/index.html && exit 0; sleep 0.2; done; "
                  "exit 1")
        assert "hello from the container" in got.stdout.decode()
        shown = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True)
        assert shown.returncode == 0 and shown.stdout.count('--comment "dockyard bridges"') == 4, shown
        # dockerd's own containers are not dockyard's business (its bridge is only named alike).
        assert dockerd.docker("version", check=False).returncode == 0
    finally:
        subprocess.run(["iptables", "-w", "-P", "FORWARD", before], check=True)
        drop_filter_table_unless(had_filter)
    dyn("rm", "-f", "srv", "srv2")
    dyn("network", "rm", "nfco", "nfco2")
    assert firewall.rules_mentioning(custom) == []
    if not firewall.rules_mentioning("dockyard net "):  # no other root's network on this host
        assert firewall.rules_mentioning('"dockyard bridges"') == []
