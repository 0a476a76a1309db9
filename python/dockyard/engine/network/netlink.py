"""Just enough rtnetlink for a container's network: bridges, veth pairs, addresses, routes,
and network namespaces bound to a file.

Why not pyroute2: importing it costs ~180 ms here, paid by every ``dockyard run``; the dozen
messages below cost well under a millisecond each.  Why not ``ip``: a process per step.

Every call talks to the kernel over an ``AF_NETLINK`` socket.  A socket works in the network
namespace it was created in, so :func:`in_netns` opens one inside a container's namespace by
entering it for the duration of ``socket()`` only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 20, 21, 24, 25, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 1
CLONE_NEWNET = 0x40000000
MS_BIND, MNT_DETACH = 4096, 2

_libc = ctypes.CDLL(None, use_errno=True)


class NetlinkError(OSError):
    pass


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


class Netlink:
    """One rtnetlink socket (in the namespace where it was opened)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                          socket.NETLINK_ROUTE)
        if sock is None:
            self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes, what: str = "") -> list[tuple[int, bytes]]:
        self.seq += 1
        seq = self.seq
        msg = struct.pack("=IHHII", 16 + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body
        self.sock.send(msg)
        out: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _, mseq, _ = struct.unpack_from("=IHHII", data, off)
                payload = data[off + 16:off + length]
                off += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise NetlinkError(-code, f"{what or 'netlink'}: {os.strerror(-code)}")
                    return out
                if mtype == NLMSG_DONE:
                    return out
                out.append((mtype, payload))

    def batch(self, requests: list[tuple[int, int, bytes, str, int | tuple[int, ...]]]) -> None:
        """Several requests that answer only an acknowledgement, in one send: the kernel runs
        them in order, each on its own (an error in one does not stop the next).  Each is
        ``(kind, flags, body, what, ignored errno(s) or 0)``; the first error not ignored is
        raised once every acknowledgement is read (the socket stays in step)."""
        first = self.seq + 1
        parts = []
        for kind, flags, body, _, _ in requests:
            self.seq += 1
            parts.append(struct.pack("=IHHII", 16 + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
                         + body)  # bodies are 4-aligned: every attribute is padded
        self.sock.send(b"".join(parts))
        pending = len(requests)
        error: NetlinkError | None = None
        while pending:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _, mseq, _ = struct.unpack_from("=IHHII", data, off)
                payload = data[off + 16:off + length]
                off += (length + 3) & ~3
                if mtype != NLMSG_ERROR or not first <= mseq <= self.seq:
                    continue
                pending -= 1
                (code,) = struct.unpack_from("=i", payload)
                _, _, _, what, ignore = requests[mseq - first]
                if code and -code not in (ignore if isinstance(ignore, tuple) else (ignore,)) and error is None:
                    error = NetlinkError(-code, f"{what or 'netlink'}: {os.strerror(-code)}")
        if error is not None:
            raise error

    # -- links ----------------------------------------------------------------------------------

    def link_index(self, name: str) -> int:
        try:
            res = self.request(RTM_GETLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, name.encode() + b"\0"), f"find {name}")
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return 0
            raise
        for _, payload in res:
            return struct.unpack_from("=BxHiII", payload)[2]
        return 0

    def create_bridge(self, name: str, mac: bytes | None = None) -> int:
        attrs = _attr(IFLA_IFNAME, name.encode() + b"\0") + _attr(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"bridge"))
        if mac:
            attrs += _attr(IFLA_ADDRESS, mac)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo() + attrs, f"create bridge {name}")
        return self.link_index(name)

    def create_veth(self, host_name: str, peer_name: str, peer_netns_fd: int, master: int, mtu: int = 1500,
                    peer_mac: bytes | None = None) -> None:
        """A veth pair: ``host_name`` here, enslaved to ``master`` and up; ``peer_name`` (down:
        the kernel cannot open it before the pair is joined) in the namespace behind
        ``peer_netns_fd``."""
        peer = _ifinfo() + _attr(IFLA_IFNAME, peer_name.encode() + b"\0") + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd)) \
            + _attr(IFLA_MTU, struct.pack("=I", mtu))
        if peer_mac:
            peer += _attr(IFLA_ADDRESS, peer_mac)
        info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer))
        attrs = (_attr(IFLA_IFNAME, host_name.encode() + b"\0") + _attr(IFLA_LINKINFO, info)
                 + _attr(IFLA_MTU, struct.pack("=I", mtu)) + _attr(IFLA_MASTER, struct.pack("=I", master)))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo(flags=IFF_UP, change=IFF_UP) + attrs,
                     f"create veth {host_name}")

    def set_up(self, index: int, name: str = "") -> None:
        self.batch([up_request(index, name)])

    def delete_link(self, name: str) -> bool:
        index = self.link_index(name)
        if not index:
            return False
        try:
            self.request(RTM_DELLINK, 0, _ifinfo(index), f"delete {name}")
        except NetlinkError as exc:
            if exc.errno != errno.ENODEV:
                raise
        return True

    def link_names(self) -> list[str]:
        names = (_ifname(payload) for _, payload in self.request(RTM_GETLINK, NLM_F_DUMP, _ifinfo(), "list links"))
        return [name for name in names if name]

    # -- addresses and routes ------------------------------------------------------------------

    def add_address(self, index: int, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        """An address on a link; an IPv6 one without duplicate address detection (usable at
        once, as dockerd adds them: the pool's allocator already made it unique)."""
        self.batch([address_request(index, iface)])

    def add_default_route(self, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address, index: int) -> None:
        self.batch([default_route_request(gateway, index)])

    def routes(self, family: int = socket.AF_INET) -> list:
        """Destinations of the routes of ``family`` in the main table (what a new subnet must
        not overlap)."""
        out = []
        size = 4 if family == socket.AF_INET else 16
        body = struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
        for _, payload in self.request(RTM_GETROUTE, NLM_F_DUMP, body, "list routes"):
            fam, dst_len, _, _, table = struct.unpack_from("=BBBBB", payload)
            if fam != family or table != 254 or dst_len == 0:
                continue
            off = 12
            while off + 4 <= len(payload):
                alen, akind = struct.unpack_from("=HH", payload, off)
                if akind == RTA_DST:
                    addr = ipaddress.ip_address(payload[off + 4:off + 4 + size])
                    if not (addr.version == 6 and addr.is_link_local):
                        out.append(ipaddress.ip_network(f"{addr}/{dst_len}", strict=False))
                off += (alen + 3) & ~3
        return out


# -- requests for Netlink.batch ------------------------------------------------------------------

def address_request(index: int, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
                    delete: bool = False) -> tuple:
    """RTM_NEWADDR (an address already there is no error); with ``delete``, RTM_DELADDR (an
    address or link not there is no error)."""
    ip = iface.ip.packed
    if iface.version == 6:
        body = struct.pack("=BBBBI", socket.AF_INET6, iface.network.prefixlen, IFA_F_NODAD, 0, index)
        body += _attr(IFA_LOCAL, ip) + _attr(IFA_ADDRESS, ip)
    else:
        body = struct.pack("=BBBBI", socket.AF_INET, iface.network.prefixlen, 0, 0, index)
        body += _attr(IFA_LOCAL, ip) + _attr(IFA_ADDRESS, ip) + _attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
    if delete:
        return RTM_DELADDR, 0, body, f"delete address {iface}", (errno.EADDRNOTAVAIL, errno.ENODEV)
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"add address {iface}", errno.EEXIST


def default_route_request(gateway: ipaddress.IPv4Address | ipaddress.IPv6Address, index: int) -> tuple:
    family = socket.AF_INET6 if gateway.version == 6 else socket.AF_INET
    body = struct.pack("=BBBBBBBBI", family, 0, 0, 0, 254, 3, 0, 1, 0)
    body += _attr(RTA_GATEWAY, gateway.packed) + _attr(RTA_OIF, struct.pack("=I", index))
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"add default route via {gateway}", 0


def no_default_route_request(family: int) -> tuple:
    """RTM_DELROUTE of the main table's default route of ``family``, whatever its gateway
    (none there is no error)."""
    body = struct.pack("=BBBBBBBBI", family, 0, 0, 0, 254, 0, 255, 0, 0)  # scope: any
    return RTM_DELROUTE, 0, body, "delete the default route", (errno.ESRCH, errno.ENOENT)


def up_request(index: int, name: str = "") -> tuple:
    return RTM_NEWLINK, 0, _ifinfo(index, IFF_UP, IFF_UP), f"set {name or index} up", 0


# -- namespaces --------------------------------------------------------------------------------

def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block with this thread in the network namespace bound at ``path``."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(target, CLONE_NEWNET), f"setns {path}")
        try:
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
    finally:
        os.close(target)
        os.close(home)


def in_netns(path: str) -> Netlink:
    with entered(path):
        return Netlink()


def create_netns(path: str) -> None:
    """A new, empty network namespace kept alive by a bind mount on ``path``."""
    new_netns(path, keep=False)


LOOPBACK_INDEX = 1  # the kernel registers a namespace's loopback first, always as index 1


def new_netns(path: str, keep: bool = True) -> tuple[Netlink, int] | None:
    """A new network namespace bound on ``path``, its loopback up; with ``keep``, a netlink
    socket working in it and a descriptor of it (for a veth's peer), both made while this
    thread is inside: no second entry to open them.  The caller closes both."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    os.close(fd)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    inside = None
    nsfd = -1
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare network namespace")
        try:
            _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None),
                   f"bind network namespace to {path}")
            inside = Netlink()
            inside.set_up(LOOPBACK_INDEX, "lo")
            if keep:
                nsfd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
    except BaseException:
        if inside is not None:
            inside.close()
        if nsfd >= 0:
            os.close(nsfd)
        raise
    finally:
        os.close(home)
    if not keep:
        inside.close()
        return None
    return inside, nsfd


RTMGRP_LINK = 1


def _ifname(payload: bytes) -> str:
    """The IFLA_IFNAME of a link message's payload (after its ifinfomsg), "" if it has none."""
    off = 16
    while off + 4 <= len(payload):
        alen, akind = struct.unpack_from("=HH", payload, off)
        if alen < 4:
            break
        if akind == IFLA_IFNAME:
            return payload[off + 4:off + alen].rstrip(b"\0").decode(errors="replace")
        off += (alen + 3) & ~3
    return ""


def wait_link_gone(name: str, timeout: float) -> bool:
    """Until no link is named ``name``: the kernel frees a veth's name when it unregisters the
    device, which a dying network namespace does in a worker, off any caller's path.  A socket
    subscribed to link events before the look hears the RTM_DELLINK; ``timeout`` is a deadline,
    not a poll.  False if the link is still there then."""
    import select
    import time

    events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    try:
        events.bind((0, RTMGRP_LINK))
        with Netlink() as nl:
            if not nl.link_index(name):
                return True
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(events.fileno(), select.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            if not poller.poll(left * 1000):
                break
            data = events.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _, _, _ = struct.unpack_from("=IHHII", data, off)
                if length < 16:
                    break
                if mtype == RTM_DELLINK and _ifname(data[off + 16:off + length]) == name:
                    return True
                off += (length + 3) & ~3
        with Netlink() as nl:
            return not nl.link_index(name)
    finally:
        events.close()


def remove_netns(path: str) -> None:
    if os.path.exists(path):
        _libc.umount2(path.encode(), MNT_DETACH)
        try:
            os.unlink(path)
        except OSError:
            pass


def mac_for(ip: ipaddress.IPv4Address) -> bytes:
    """Docker's MAC for an address: 02:42 and the four address bytes."""
    return b"\x02\x42" + ip.packed


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
