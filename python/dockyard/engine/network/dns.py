"""The network helper of one engine root: the embedded DNS server of user-defined networks
(docker's 127.0.0.11) and the loopback proxy of published ports (docker's docker-proxy).

Loopback proxy: traffic to a published port from other hosts, and from this host to any of its
addresses but 127/8, is DNATed by iptables (firewall.py).  Connections to 127.0.0.1 are not
(NAT of loopback needs route_localnet, which exposes 127/8 to the network), so this process
listens on every published host port and relays what arrives there to the container: TCP with
splice(2) through a pipe (no copy to user space; a thread pair per connection), UDP datagram by
datagram.  Holding the ports also keeps other programs from binding a published port, as
docker-proxy does.

DNS: one small process per engine root (``python -m dockyard.engine.network.dns ROOT``), started on
demand by the first container that joins a user-defined network and gone once no such container
runs.  For each of those containers it holds a UDP socket bound to 127.0.0.11:53 *inside the
container's network namespace* (made by entering the namespace for the ``socket()`` call only),
so nothing is NATed and no port is taken on the host.  Queries for a container name, a network
alias, a short ID or a hostname are answered from the store (read-only), limited to the networks
the asking container shares with the target: that is the isolation between networks.  Other
names with a dot are relayed to the host's resolvers; anything else gets NXDOMAIN.

The engine talks to it over a unix socket (``sync``: rescan the store, answer ``ok`` once every
running container's socket is open), so a container's DNS works before its process starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import socket
import sqlite3
import struct
import sys
import time
from pathlib import Path

TTL = 600
HAS_IPV6 = os.path.exists("/proc/net/if_inet6")


def control_path(root: Path) -> Path:
    from ..runtime import run_dir

    tag = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return run_dir() / f"dns-{tag}.sock"


def sync(root: Path, spawn: bool = True, timeout: float = 5.0) -> bool:
    """Ask the root's DNS server to pick up changes; start it first if needed (and asked)."""
    import select

    path = control_path(root)
    deadline = time.monotonic() + timeout
    spawned = 0
    ready = -1  # the helper we started says on this pipe when it listens (a byte), or ends (EOF)
    try:
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
                    s.settimeout(timeout)
                    s.connect(str(path))
                    s.sendall(b"sync\n")
                    reply = s.recv(4096)
                if reply.startswith(b"ok"):
                    return True
                if reply.startswith(b"err "):
                    from ...errors import Conflict

                    raise Conflict(reply[4:].decode().strip())
            except OSError:
                pass
            if not spawn:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                from ...errors import DockyardError

                raise DockyardError("the embedded DNS server did not start")
            if ready < 0:
                if spawned == 3:  # (each said it listened, then was gone when asked)
                    from ...errors import DockyardError

                    raise DockyardError(f"the embedded DNS server keeps stopping (its log: {path.with_suffix('.log')})")
                ready = _spawn(root)
                spawned += 1
            # the helper writes a byte once a helper listens (itself, or the one that won a race
            # to serve this root), or ends without one: it failed, and its log says why
            poller = select.poll()
            poller.register(ready, select.POLLIN)
            if not poller.poll(left * 1000):
                continue  # (the deadline: said above)
            got = os.read(ready, 1)
            os.close(ready)
            ready = -1
            if not got:
                from ...errors import DockyardError

                raise DockyardError(f"the embedded DNS server did not start (its log: {path.with_suffix('.log')})")
    finally:
        if ready >= 0:
            os.close(ready)


def _spawn(root: Path) -> int:
    """Start the helper; returns the read end of its readiness pipe.  The process started
    forks the helper and exits (reaped here): the helper is nobody's child, no zombie waits
    for a reaper."""
    import subprocess

    path = control_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        with open(path.with_suffix(".log"), "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "dockyard.engine.network.dns", str(root), str(w)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                    close_fds=True, pass_fds=(w,), env=dict(os.environ))
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    proc.wait()  # (it forks first thing)
    return r


# -- the server ----------------------------------------------------------------------------------

class Server:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db = sqlite3.connect(f"file:{self.root / 'state.db'}?mode=ro", uri=True, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.sel = selectors.DefaultSelector()
        self.served: dict[str, socket.socket] = {}     # container id -> its 127.0.0.11 socket
        self.pending: dict[socket.socket, tuple] = {}  # upstream socket -> (client sock, addr, deadline)
        self.upstream = daemon_dns()[0] or _host_nameservers()
        self.ports: dict[tuple, socket.socket] = {}     # (proto, host ip, host port) -> listener
        self.targets: dict[tuple, tuple] = {}           # same key -> (container ip, port)
        self.udp_peers: dict[tuple, socket.socket] = {} # (listener key, client addr) -> upstream socket
        self.errors: list[str] = []

    def listen(self) -> socket.socket:
        path = control_path(self.root)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        lock.bind(str(path))
        lock.listen(16)
        return lock

    def wanted(self) -> dict[str, str]:
        """Running containers on user-defined networks -> their namespace path."""
        from ..runtime import run_dir

        out = {}
        rows = self.db.execute(  # a lease is held from network setup (before the process runs) to exit
            "SELECT DISTINCT e.container FROM endpoints e JOIN networks n ON n.id=e.network "
            "WHERE n.name != 'bridge' AND e.ip != ''")
        for r in rows:
            out[r["container"]] = str(run_dir() / "netns" / r["container"][:32])
        return out

    def wanted_ports(self) -> dict[tuple, tuple]:
        out = {}
        for r in self.db.execute("SELECT * FROM endpoints WHERE ports != '[]' AND ip != ''"):
            ip6 = r["ip6"] if "ip6" in r.keys() else ""
            for b in json.loads(r["ports"]):
                if ":" in b["host_ip"]:  # an IPv6 host address: to the container's IPv6 address if it has one
                    out[(b["proto"], b["host_ip"], int(b["host_port"]))] = (ip6 or r["ip"], int(b["port"]))
                    continue
                out[(b["proto"], b["host_ip"] or "0.0.0.0", int(b["host_port"]))] = (r["ip"], int(b["port"]))
                if b["host_ip"] in ("", "0.0.0.0") and HAS_IPV6:
                    # the [::] twin, as dockerd 20.10's proxy: what the ip6 table does not DNAT
                    # (::1, or every address when the container has no IPv6) is relayed from here
                    out[(b["proto"], "::", int(b["host_port"]))] = (ip6 or r["ip"], int(b["port"]))
        return out

    def rescan_ports(self) -> None:
        from ... import rootless

        want = self.wanted_ports()
        for key in list(self.ports):
            if key not in want or want[key] != self.targets.get(key):
                sock = self.ports.pop(key)
                self.targets.pop(key, None)
                self.sel.unregister(sock)
                sock.close()
                for peer_key in [k for k in self.udp_peers if k[0] == key]:
                    up = self.udp_peers.pop(peer_key)
                    self.sel.unregister(up)
                    up.close()
        for key, target in want.items():
            if key in self.ports:
                continue
            proto, host_ip, host_port = key
            v6 = ":" in host_ip
            try:
                # on the host; under a rootless daemon made there by its port driver, so this
                # proxy relays every client, not only loopback's
                sock = rootless.host_socket(proto, host_ip, host_port, listen=True)
            except OSError as exc:
                self.errors.append(f"listen {proto}{6 if v6 else 4} {f'[{host_ip}]' if v6 else host_ip}:{host_port}: bind: "
                                   f"{(exc.strerror or str(exc)).lower()}")
                continue
            sock.setblocking(False)
            self.ports[key] = sock
            self.targets[key] = target
            self.sel.register(sock, selectors.EVENT_READ, ("accept" if proto == "tcp" else "udp", key))

    def accept(self, key: tuple) -> None:
        import threading

        try:
            client, _ = self.ports[key].accept()
        except OSError:
            return
        threading.Thread(target=_relay_tcp, args=(client, self.targets[key]), daemon=True).start()

    def udp_in(self, key: tuple) -> None:
        sock = self.ports[key]
        try:
            data, addr = sock.recvfrom(65535)
        except OSError:
            return
        up = self.udp_peers.get((key, addr))
        if up is None:
            up = socket.socket(socket.AF_INET6 if ":" in self.targets[key][0] else socket.AF_INET,
                               socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            up.setblocking(False)
            up.connect(self.targets[key])
            self.udp_peers[(key, addr)] = up
            self.sel.register(up, selectors.EVENT_READ, ("udp_back", (key, addr)))
        try:
            up.send(data)
        except OSError:
            pass

    def udp_back(self, peer_key: tuple) -> None:
        key, addr = peer_key
        up = self.udp_peers.get(peer_key)
        if up is None:
            return
        try:
            data = up.recv(65535)
            self.ports[key].sendto(data, addr)
        except (OSError, KeyError):
            pass

    def busy(self) -> bool:
        return bool(self.served or self.ports)

    def rescan(self) -> None:
        from .netlink import entered

        self.db.commit()  # a fresh read snapshot
        self.rescan_ports()
        want = self.wanted()
        for cid in list(self.served):
            if cid not in want:
                sock = self.served.pop(cid)
                self.sel.unregister(sock)
                sock.close()
        for cid, path in want.items():
            if cid in self.served or not os.path.exists(path):
                continue
            try:
                with entered(path):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.11", 53))
            except OSError as exc:
                print(f"dns: cannot serve {cid[:12]}: {exc}", file=sys.stderr, flush=True)
                continue
            sock.setblocking(False)
            self.served[cid] = sock
            self.sel.register(sock, selectors.EVENT_READ, ("query", cid))

    def lookup(self, cid: str, name: str) -> list[str] | None:
        """Addresses for ``name`` on the networks ``cid`` is on; None when the name is unknown."""
        name = name.rstrip(".").lower()
        row = self.db.execute("SELECT spec FROM containers WHERE id=?", (cid,)).fetchone()
        links = list((json.loads(row[0])["HostConfig"].get("Links") or []) if row else [])
        mine = [dict(r) for r in self.db.execute("SELECT * FROM endpoints WHERE container=?", (cid,))]
        for ep in mine:  # links given per network (EndpointSettings.Links): "target:alias"
            links += json.loads(ep.get("extra") or "{}").get("links") or []
        for link in links:
            target, _, alias = link.partition(":")  # "/db:/web/alias": on a user network, a DNS alias
            if alias.rsplit("/", 1)[-1].lower() == name:
                name = target.lstrip("/").lower()
        nets = [ep["network"] for ep in mine]
        if not nets:
            return None
        q = ",".join("?" * len(nets))
        rows = self.db.execute(
            f"SELECT e.*, c.name, json_extract(c.spec, '$.Config.Hostname') AS hostname, n.name AS net "
            f"FROM endpoints e JOIN containers c ON "
            f"c.id=e.container JOIN networks n ON n.id=e.network WHERE e.network IN ({q}) AND e.ip != '' "
            f"AND n.name != 'bridge'", nets)
        found = None
        for r in rows:
            # as dockerd 25+ (its inspect's DNSNames): name, aliases, short ID and hostname
            names = {r["name"].lower(), r["container"][:12], (r["hostname"] or "").lower()} | {
                a.lower() for a in json.loads(r["aliases"])}
            names.discard("")
            net = r["net"].lower()
            if name in names or (name.endswith("." + net) and name[:-len(net) - 1] in names):  # NAME.NETWORK too
                found = (found or []) + [r["ip"]] + ([r["ip6"]] if "ip6" in r.keys() and r["ip6"] else [])
        return found

    def handle_query(self, sock: socket.socket, cid: str) -> None:
        try:
            data, addr = sock.recvfrom(4096)
        except OSError:
            return
        parsed = _parse_question(data)
        if parsed is None:
            return
        qid, flags, qname, qtype, qend = parsed
        self.db.commit()
        ips = self.lookup(cid, qname)
        question = data[12:qend]
        if ips is not None:
            answers = [ip for ip in ips if (":" in ip and qtype in (28, 255)) or (":" not in ip and qtype in (1, 255))]
            sock.sendto(_response(qid, flags, question, answers, 0), addr)
            return
        row = self.db.execute("SELECT spec FROM containers WHERE id=?", (cid,)).fetchone()
        upstream = (json.loads(row[0])["HostConfig"].get("Dns") if row else None) or self.upstream  # --dns: upstream
        if "." not in qname.rstrip(".") or not upstream:
            sock.sendto(_response(qid, flags, question, [], 3), addr)
            return
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        up.setblocking(False)
        try:
            up.sendto(data, (upstream[0], 53))
        except OSError:
            up.close()
            sock.sendto(_response(qid, flags, question, [], 2), addr)
            return
        self.pending[up] = (sock, addr, time.monotonic() + 5)
        self.sel.register(up, selectors.EVENT_READ, ("upstream", None))

    def serve(self, ready: int = -1, ctl: socket.socket | None = None) -> None:
        """Serve until idle; ``ready``: a pipe to write a byte to once the control socket listens
        (``ctl``, or one made here)."""
        ctl = ctl if ctl is not None else self.listen()
        self.sel.register(ctl, selectors.EVENT_READ, ("control", None))
        self.rescan()  # (before the byte: a helper that cannot read the store says so by ending)
        if ready >= 0:
            os.write(ready, b"1")
            os.close(ready)
        idle_since = None
        while True:
            # No periodic rescan: the engine says "sync" after every change that matters here
            # (a start, an exit, a connect or disconnect).  The select waits for traffic, for
            # the deadline of the oldest relayed query, or for the end of two idle seconds.
            now = time.monotonic()
            deadlines = [deadline for _, _, deadline in self.pending.values()]
            if self.busy():
                idle_since = None
            else:
                idle_since = now if idle_since is None else idle_since
                deadlines.append(idle_since + 2.0)
            for key, _ in self.sel.select(timeout=max(0.0, min(deadlines) - now) if deadlines else None):
                kind, cid = key.data
                if kind == "control":
                    conn, _ = ctl.accept()
                    conn.settimeout(5)
                    try:
                        if conn.recv(16).startswith(b"sync"):
                            self.errors = []
                            self.rescan()
                            conn.sendall(("err " + "; ".join(self.errors) + "\n").encode() if self.errors
                                         else b"ok\n")
                    except OSError:
                        pass
                    conn.close()
                elif kind == "query":
                    self.handle_query(key.fileobj, cid)
                elif kind == "accept":
                    self.accept(cid)
                elif kind == "udp":
                    self.udp_in(cid)
                elif kind == "udp_back":
                    self.udp_back(cid)
                else:
                    up = key.fileobj
                    client, addr, _ = self.pending.pop(up)
                    self.sel.unregister(up)
                    try:
                        client.sendto(up.recv(4096), addr)
                    except OSError:
                        pass
                    up.close()
            now = time.monotonic()
            for up, (_, _, deadline) in list(self.pending.items()):
                if now > deadline:
                    self.pending.pop(up)
                    self.sel.unregister(up)
                    up.close()
            if self.busy():
                idle_since = None
            elif idle_since is not None and now - idle_since >= 2.0:
                self.sel.unregister(ctl)
                ctl.close()
                try:
                    control_path(self.root).unlink()
                except OSError:
                    pass
                return


def _relay_tcp(client: socket.socket, target: tuple) -> None:
    """One proxied connection: connect to the container, splice both ways until both close."""
    import threading

    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    done = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        r, w = os.pipe()
        try:
            import fcntl

            fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: 1 MiB moved per splice, not 64 KiB
        except OSError:
            pass
        try:
            while True:
                n = os.splice(src.fileno(), w, 1 << 20, flags=getattr(os, "SPLICE_F_MOVE", 1))
                if n == 0:
                    break
                while n:
                    n -= os.splice(r, dst.fileno(), n, flags=getattr(os, "SPLICE_F_MOVE", 1))
        except OSError:
            pass
        finally:
            os.close(r)
            os.close(w)
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if done.is_set():
                client.close()
                upstream.close()
            done.set()

    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    pump(upstream, client)


def _parse_question(data: bytes) -> tuple[int, int, str, int, int] | None:
    if len(data) < 12:
        return None
    qid, flags, qd = struct.unpack_from("!HHH", data)
    if qd < 1 or flags & 0x8000:
        return None
    labels, off = [], 12
    while off < len(data):
        n = data[off]
        off += 1
        if n == 0:
            break
        if n & 0xC0:
            return None
        labels.append(data[off:off + n].decode("ascii", "replace"))
        off += n
    if off + 4 > len(data):
        return None
    qtype, _ = struct.unpack_from("!HH", data, off)
    return qid, flags, ".".join(labels), qtype, off + 4


def _response(qid: int, qflags: int, question: bytes, ips: list[str], rcode: int) -> bytes:
    flags = 0x8000 | (qflags & 0x0100) | 0x0080 | rcode  # QR, RD echoed, RA (not AA: as dockerd's)
    out = struct.pack("!HHHHHH", qid, flags, 1, len(ips), 0, 0) + question
    for ip in ips:  # A, or AAAA for an IPv6 address
        if ":" in ip:
            out += struct.pack("!HHHIH", 0xC00C, 28, 1, TTL, 16) + socket.inet_pton(socket.AF_INET6, ip)
        else:
            out += struct.pack("!HHHIH", 0xC00C, 1, 1, TTL, 4) + socket.inet_aton(ip)
    return out


def daemon_dns() -> tuple[list[str], list[str], list[str]]:
    """The daemon's --dns, --dns-search and --dns-opt (dockerd's): what a container that has
    none of its own gets, and the embedded DNS's upstream servers."""
    return tuple(os.environ.get(k, "").split() for k in ("DOCKYARD_DNS", "DOCKYARD_DNS_SEARCH",
                                                         "DOCKYARD_DNS_OPTS"))  # type: ignore[return-value]


def _host_nameservers() -> list[str]:
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return []
    return [l.split()[1] for l in lines if l.startswith("nameserver") and len(l.split()) > 1 and ":" not in l.split()[1]]


def main() -> None:
    """One helper per root.  Helpers decide one at a time (the ``.starting`` lock): the one that
    takes the root's lock listens before the next decides; one that finds it taken says so on
    its ``ready`` pipe once the holder listens and leaves, or, when the holder is on its way out
    (idle, its socket gone), waits for its lock and serves in its place.  No retry, no sleep."""
    import fcntl

    root = Path(sys.argv[1])
    ready = int(sys.argv[2]) if len(sys.argv) > 2 else -1
    if os.fork():
        os._exit(0)  # the helper is the child: its starter reaps this process at once
    base = control_path(root)
    starting = os.open(base.with_suffix(".starting"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fd = os.open(base.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(starting, fcntl.LOCK_EX)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if _listening(base):
                    if ready >= 0:
                        os.write(ready, b"1")
                    return
                fcntl.flock(fd, fcntl.LOCK_EX)  # it is leaving: its lock goes with it
            server = Server(root)
            ctl = server.listen()
        finally:
            os.close(starting)
        server.serve(ready, ctl)
    finally:
        os.close(fd)  # the files stay: unlinking them would let two helpers lock two files


def _listening(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    main()


def resolv_conf(mode: str, dns: list[str], search: list[str], options: list[str], base: str,
                embedded: bool = False) -> str:
    """A container's /etc/resolv.conf from the host's (``base``) and its --dns options.
    ``embedded``: the container is on a user network though its mode is not one (connected
    before its start): the embedded DNS serves it, as dockerd's."""
    user_net = embedded or mode not in ("default", "bridge", "host", "none") and not mode.startswith("container:")
    lines = base.splitlines()
    ns = [l.split()[1] for l in lines if l.startswith("nameserver") and len(l.split()) > 1]
    srch = next((l.split()[1:] for l in lines if l.startswith("search")), [])
    opts = next((l.split()[1:] for l in lines if l.startswith("options")), [])
    if mode != "host" and not ns and not dns and not user_net:
        ns = ["8.8.8.8", "8.8.4.4"]  # docker's fallback when the host has only loopback resolvers
    if dns:
        ns = dns
    if search:
        srch = [] if search == ["."] else search
    if options:
        opts = options
    if user_net:
        ns = ["127.0.0.11"]
        opts = list(dict.fromkeys((["ndots:0"] if not any(o.startswith("ndots") for o in opts) else []) + opts))
    out = []
    if srch:
        out.append("search " + " ".join(srch))
    out += [f"nameserver {n}" for n in ns]
    if opts:
        out.append("options " + " ".join(opts))
    return "\n".join(out) + "\n"
