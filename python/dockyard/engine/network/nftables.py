"""Just enough nf_tables netlink for dockyard's firewall: tables, chains and rules, sent as one
atomic batch, and rules listed back (to find the ones dockyard made by their comment).

Why not the ``nft`` or ``iptables`` executables: a pip-installed engine cannot count on them,
and a process per change costs milliseconds.  Why not a library: pyroute2's nftables support
is thin and costly to import (see netlink.py); python-nftables wraps libnftables, a system
library.  The messages below are the ones ``nft`` itself sends (nfnetlink, subsystem
NFNL_SUBSYS_NFTABLES, ``linux/netfilter/nf_tables.h``).

A change is a batch: ``NFNL_MSG_BATCH_BEGIN``, the messages, ``NFNL_MSG_BATCH_END``; the kernel
applies all or nothing.  The batch may carry the ruleset generation its author read
(``NFNL_BATCH_GENID``): if anyone changed the ruleset since, the kernel refuses it with ERESTART
and the caller reads again and retries, so "list, decide, change" is race-free between
daemons of different roots sharing the host's tables.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 16, 17
NFNL_BATCH_GENID = 1
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x800, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

(NFT_MSG_NEWTABLE, NFT_MSG_GETTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_GETCHAIN, NFT_MSG_DELCHAIN,
 NFT_MSG_NEWRULE, NFT_MSG_GETRULE, NFT_MSG_DELRULE) = range(9)
NFT_MSG_NEWGEN, NFT_MSG_GETGEN = 15, 16

NFTA_TABLE_NAME = 1
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK, NFTA_CHAIN_POLICY, NFTA_CHAIN_TYPE = 1, 3, 4, 5, 7
NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY = 1, 2
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_EXPRESSIONS, NFTA_RULE_USERDATA = 1, 2, 3, 4, 7
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
NFTA_GEN_ID = 1

NFPROTO_IPV4, NFPROTO_IPV6 = 2, 10
HOOK_PREROUTING, HOOK_INPUT, HOOK_FORWARD, HOOK_OUTPUT, HOOK_POSTROUTING = range(5)
PRIO_DSTNAT, PRIO_FILTER, PRIO_SRCNAT = -100, 0, 100

NF_DROP, NF_ACCEPT = 0, 1
NFT_JUMP = -3
REG_VERDICT, REG_1, REG_2 = 0, 1, 2
CMP_EQ, CMP_NEQ = 0, 1
META_L4PROTO, META_IIFNAME, META_OIFNAME = 16, 6, 7
PAYLOAD_NETWORK, PAYLOAD_TRANSPORT = 1, 2
FIB_F_SADDR, FIB_F_DADDR, FIB_RESULT_ADDRTYPE, RTN_LOCAL = 1, 2, 3, 2
CT_STATE = 0
CT_ESTABLISHED, CT_RELATED = 2, 4  # NF_CT_STATE_BIT(IP_CT_ESTABLISHED / IP_CT_RELATED)
NAT_DNAT = 1
UDATA_COMMENT = 0  # libnftnl's NFTNL_UDATA_RULE_COMMENT: what nft shows as comment "..." and
                   # iptables-nft as -m comment --comment "..."

IFNAMSIZ = 16
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}


class NftError(OSError):
    """A refused request or batch; ``where``: the table and chain (when it names them) of the
    batch message the kernel refused."""

    def __init__(self, code: int, text: str, where: tuple[str, ...] = ()) -> None:
        super().__init__(code, text)
        self.where = where


# -- attributes ---------------------------------------------------------------------------------

def attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def nested(kind: int, *parts: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(parts))


def strz(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def be32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack(">i" if value < 0 else ">I", value))


def parse(data: bytes, off: int = 0) -> dict[int, bytes | list]:
    """Attributes at ``data[off:]`` by type; a repeated type (list elements) gives a list."""
    out: dict[int, bytes | list] = {}
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            break
        value = data[off + 4:off + length]
        kind &= NLA_TYPE_MASK
        if kind in out:
            prev = out[kind]
            out[kind] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[kind] = value
        off += (length + 3) & ~3
    return out


# -- expressions (each one NFTA_LIST_ELEM of a rule) ---------------------------------------------

def _expr(name: str, *data: bytes) -> bytes:
    return nested(NFTA_LIST_ELEM, strz(NFTA_EXPR_NAME, name), nested(NFTA_EXPR_DATA, *data))


def _value(kind: int, data: bytes) -> bytes:
    return nested(kind, attr(NFTA_DATA_VALUE, data))


def meta(key: int, dreg: int = REG_1) -> bytes:
    return _expr("meta", be32(1, dreg), be32(2, key))  # NFTA_META_DREG, NFTA_META_KEY


def cmp(op: int, data: bytes, sreg: int = REG_1) -> bytes:
    return _expr("cmp", be32(1, sreg), be32(2, op), _value(3, data))  # SREG, OP, DATA


def payload(base: int, offset: int, length: int, dreg: int = REG_1) -> bytes:
    return _expr("payload", be32(1, dreg), be32(2, base), be32(3, offset), be32(4, length))


def bitwise(mask: bytes, dreg: int = REG_1) -> bytes:
    """reg = (reg & mask) ^ 0"""
    return _expr("bitwise", be32(1, dreg), be32(2, dreg), be32(3, len(mask)), _value(4, mask),
                 _value(5, b"\0" * len(mask)))


def immediate(data: bytes, dreg: int) -> bytes:
    return _expr("immediate", be32(1, dreg), _value(2, data))


def verdict(code: int, chain: str = "") -> bytes:
    v = be32(NFTA_VERDICT_CODE, code) + (strz(NFTA_VERDICT_CHAIN, chain) if chain else b"")
    return _expr("immediate", be32(1, REG_VERDICT), nested(2, nested(NFTA_DATA_VERDICT, v)))


def fib_addrtype(flags: int, dreg: int = REG_1) -> bytes:
    return _expr("fib", be32(1, dreg), be32(2, FIB_RESULT_ADDRTYPE), be32(3, flags))


def ct(key: int, dreg: int = REG_1) -> bytes:
    return _expr("ct", be32(1, dreg), be32(2, key))  # NFTA_CT_DREG, NFTA_CT_KEY


def counter() -> bytes:
    return _expr("counter", struct.pack("=HH", 12, 1) + b"\0" * 8, struct.pack("=HH", 12, 2) + b"\0" * 8)


def dnat(addr_reg: int, proto_reg: int, family: int = NFPROTO_IPV4) -> bytes:
    # NFTA_NAT_TYPE, FAMILY, REG_ADDR_MIN, REG_PROTO_MIN
    return _expr("nat", be32(1, NAT_DNAT), be32(2, family), be32(3, addr_reg), be32(5, proto_reg))


def masquerade() -> bytes:
    return _expr("masq")


# -- matches: a few expressions each, as nft compiles them --------------------------------------

def ifname(name: str, out: bool = False, neq: bool = False) -> list[bytes]:
    """``iifname``/``oifname``; a trailing ``*`` matches a prefix (iptables' ``dy+``)."""
    if name.endswith("*"):
        data = name[:-1].encode()
    else:
        data = name.encode().ljust(IFNAMSIZ, b"\0")
    return [meta(META_OIFNAME if out else META_IIFNAME), cmp(CMP_NEQ if neq else CMP_EQ, data)]


def ip_addr(net: str, source: bool, neq: bool = False) -> list[bytes]:
    """``ip saddr|daddr NET`` (``ip6 ...`` for an IPv6 one: rules of the ip6 table)."""
    n = ipaddress.ip_network(net, strict=False)
    if n.version == 6:
        out = [payload(PAYLOAD_NETWORK, 8 if source else 24, 16)]
    else:
        out = [payload(PAYLOAD_NETWORK, 12 if source else 16, 4)]
    if n.prefixlen < n.max_prefixlen:
        out.append(bitwise(n.netmask.packed))
    return out + [cmp(CMP_NEQ if neq else CMP_EQ, n.network_address.packed)]


def l4_dport(proto: str, port: int) -> list[bytes]:
    return [meta(META_L4PROTO), cmp(CMP_EQ, bytes([PROTOCOLS[proto]])),
            payload(PAYLOAD_TRANSPORT, 2, 2), cmp(CMP_EQ, struct.pack(">H", port))]


def addr_is_local(source: bool) -> list[bytes]:
    """``fib saddr|daddr type local`` (iptables' ``-m addrtype --src-type/--dst-type LOCAL``)."""
    return [fib_addrtype(FIB_F_SADDR if source else FIB_F_DADDR), cmp(CMP_EQ, struct.pack("=I", RTN_LOCAL))]


def ct_state(mask: int) -> list[bytes]:
    return [ct(CT_STATE), bitwise(struct.pack("=I", mask)), cmp(CMP_NEQ, b"\0\0\0\0")]


def to_dnat(ip: str, port: int) -> list[bytes]:
    addr = ipaddress.ip_address(ip)
    return [immediate(addr.packed, REG_1), immediate(struct.pack(">H", port), REG_2),
            dnat(REG_1, REG_2, NFPROTO_IPV6 if addr.version == 6 else NFPROTO_IPV4)]


def comment(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return bytes([UDATA_COMMENT, len(raw)]) + raw


def comment_of(userdata: bytes) -> str:
    off = 0
    while off + 2 <= len(userdata):
        kind, length = userdata[off], userdata[off + 1]
        if kind == UDATA_COMMENT:
            return userdata[off + 2:off + 2 + length].rstrip(b"\0").decode(errors="replace")
        off += 2 + length
    return ""


# -- messages -------------------------------------------------------------------------------------

def new_table(family: int, name: str) -> tuple:
    return (NFT_MSG_NEWTABLE, NLM_F_CREATE, family, strz(NFTA_TABLE_NAME, name))


def del_table(family: int, name: str) -> tuple:
    return (NFT_MSG_DELTABLE, 0, family, strz(NFTA_TABLE_NAME, name))


def new_chain(family: int, table: str, name: str, base: tuple[str, int, int] | None = None) -> tuple:
    """A chain; ``base``: (type, hook, priority) for a base chain (policy accept)."""
    attrs = strz(NFTA_CHAIN_TABLE, table) + strz(NFTA_CHAIN_NAME, name)
    if base:
        kind, hook, prio = base
        attrs += nested(NFTA_CHAIN_HOOK, be32(NFTA_HOOK_HOOKNUM, hook), be32(NFTA_HOOK_PRIORITY, prio))
        attrs += be32(NFTA_CHAIN_POLICY, NF_ACCEPT) + strz(NFTA_CHAIN_TYPE, kind)
    return (NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, attrs)


def new_rule(family: int, table: str, chain: str, exprs: list[bytes], note: str, first: bool = False) -> tuple:
    """A rule at the end of ``chain`` (at its start with ``first``), commented ``note``."""
    attrs = (strz(NFTA_RULE_TABLE, table) + strz(NFTA_RULE_CHAIN, chain)
             + nested(NFTA_RULE_EXPRESSIONS, *exprs) + attr(NFTA_RULE_USERDATA, comment(note)))
    return (NFT_MSG_NEWRULE, NLM_F_CREATE | (0 if first else NLM_F_APPEND), family, attrs)


def del_rule(family: int, table: str, chain: str, handle: int) -> tuple:
    attrs = strz(NFTA_RULE_TABLE, table) + strz(NFTA_RULE_CHAIN, chain) + attr(NFTA_RULE_HANDLE, struct.pack(">Q", handle))
    return (NFT_MSG_DELRULE, 0, family, attrs)


@dataclass
class Rule:
    table: str
    chain: str
    handle: int
    comment: str
    exprs: list[tuple[str, dict]] = field(default_factory=list)

    def text(self) -> str:
        return f"{self.table} {self.chain} {render(self.exprs)}" + (f' comment "{self.comment}"' if self.comment else "")


class Nftables:
    """One NETLINK_NETFILTER socket (in the network namespace where it was opened)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.seq = int.from_bytes(os.urandom(2), "big") << 8

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Nftables:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _header(self, kind: int, flags: int, family: int, body: bytes, res_id: int = 0, subsys: int = NFNL_SUBSYS_NFTABLES) -> tuple[int, bytes]:
        self.seq += 1
        msg = struct.pack("=IHHII", 20 + len(body), (subsys << 8) | kind if subsys else kind,
                          flags | NLM_F_REQUEST, self.seq, 0)
        return self.seq, msg + struct.pack("=BBH", family, 0, socket.htons(res_id)) + body

    def _receive(self, seq: int, errors: dict[int, int] | None = None) -> list[bytes]:
        """Replies to ``seq`` until its ack or NLMSG_DONE; errors for other sequence numbers (a
        batch's) go to ``errors``."""
        out = []
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _, mseq, _ = struct.unpack_from("=IHHII", data, off)
                body = data[off + 16:off + length]
                off += (length + 3) & ~3
                if mtype == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body)
                    if mseq != seq:
                        if code and errors is not None:
                            errors[mseq] = -code
                        continue
                    if code:
                        raise NftError(-code, os.strerror(-code))
                    return out
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                out.append(body)

    def request(self, kind: int, family: int, attrs: bytes = b"", dump: bool = False) -> list[dict]:
        seq, msg = self._header(kind, NLM_F_DUMP if dump else NLM_F_ACK, family, attrs)
        self.sock.send(msg)
        return [parse(body, 4) for body in self._receive(seq)]

    def generation(self) -> int:
        (reply,) = self.request(NFT_MSG_GETGEN, socket.AF_UNSPEC)
        return struct.unpack(">I", reply[NFTA_GEN_ID])[0]

    def rules(self, family: int, table: str, chain: str = "") -> list[Rule]:
        """The rules of a table (or one chain of it); none when it does not exist."""
        attrs = strz(NFTA_RULE_TABLE, table) + (strz(NFTA_RULE_CHAIN, chain) if chain else b"")
        try:
            replies = self.request(NFT_MSG_GETRULE, family, attrs, dump=True)
        except NftError as exc:
            if exc.errno == errno.ENOENT:
                return []
            raise
        out = []
        for a in replies:
            if a.get(NFTA_RULE_TABLE, b"").rstrip(b"\0").decode() != table:
                continue
            exprs = []
            elems = parse(a.get(NFTA_RULE_EXPRESSIONS, b"")).get(NFTA_LIST_ELEM) or []
            for e in elems if isinstance(elems, list) else [elems]:
                ea = parse(e)
                exprs.append((ea.get(NFTA_EXPR_NAME, b"").rstrip(b"\0").decode(), parse(ea.get(NFTA_EXPR_DATA, b""))))
            out.append(Rule(table, a[NFTA_RULE_CHAIN].rstrip(b"\0").decode(),
                            struct.unpack(">Q", a[NFTA_RULE_HANDLE])[0],
                            comment_of(a.get(NFTA_RULE_USERDATA, b"")), exprs))
        return out

    def has_chain(self, family: int, table: str, chain: str) -> bool:
        try:
            self.request(NFT_MSG_GETCHAIN, family, strz(NFTA_CHAIN_TABLE, table) + strz(NFTA_CHAIN_NAME, chain))
        except NftError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def commit(self, messages: list[tuple], generation: int | None = None) -> None:
        """Apply ``messages`` (kind, flags, family, attrs) as one transaction.  With
        ``generation``, only if the ruleset is still at it (else NftError(ERESTART))."""
        if not messages:
            return
        begin_attrs = be32(NFNL_BATCH_GENID, generation) if generation is not None else b""
        first, begin = self._header(NFNL_MSG_BATCH_BEGIN, 0, socket.AF_UNSPEC, begin_attrs, NFNL_SUBSYS_NFTABLES, 0)
        parts, what, where = [begin], {first: "batch"}, {}
        for kind, flags, family, attrs in messages:
            seq, msg = self._header(kind, flags, family, attrs)
            parts.append(msg)
            what[seq] = _describe(kind, attrs)
            where[seq] = _names(attrs)
        parts.append(self._header(NFNL_MSG_BATCH_END, 0, socket.AF_UNSPEC, b"", NFNL_SUBSYS_NFTABLES, 0)[1])
        self.sock.send(b"".join(parts))
        # The kernel answers a batch only where it fails (no NLM_F_ACK asked); a request after
        # it (answered in order) marks where those answers end.
        errors: dict[int, int] = {}
        seq, msg = self._header(NFT_MSG_GETGEN, NLM_F_ACK, socket.AF_UNSPEC, b"")
        self.sock.send(msg)
        self._receive(seq, errors)
        if errors:
            mseq, code = min(errors.items())
            raise NftError(code, f"{what.get(mseq, 'nftables')}: {os.strerror(code)}", where.get(mseq, ()))


def _names(attrs: bytes) -> tuple[str, ...]:
    """The names a message carries first: its table, then its chain (tables, chains, rules)."""
    a = parse(attrs)
    return tuple(v.rstrip(b"\0").decode() for k, v in sorted(a.items()) if k in (1, 2, 3) and isinstance(v, bytes)
                 and v.endswith(b"\0"))


def _describe(kind: int, attrs: bytes) -> str:
    names = {NFT_MSG_NEWTABLE: "add table", NFT_MSG_DELTABLE: "delete table", NFT_MSG_NEWCHAIN: "add chain",
             NFT_MSG_DELCHAIN: "delete chain", NFT_MSG_NEWRULE: "add rule", NFT_MSG_DELRULE: "delete rule"}
    return f"nftables: {names.get(kind, 'change')} {' '.join(_names(attrs))}".rstrip()


# -- rules as text (what ``nft list`` would print, for the expressions dockyard uses) -------------

_META = {META_L4PROTO: "meta l4proto", META_IIFNAME: "iifname", META_OIFNAME: "oifname"}
_VERDICTS = {NF_DROP: "drop", NF_ACCEPT: "accept", -1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}


def _u32(a: dict, k: int) -> int:
    return struct.unpack(">i", a[k])[0] if k in a else 0


def _data(a: dict, k: int) -> bytes:
    inner = parse(a.get(k, b""))
    return inner.get(NFTA_DATA_VALUE, b"")


def render(exprs: list[tuple[str, dict]]) -> str:
    regs: dict[int, str] = {}
    masks: dict[int, int] = {}
    out: list[str] = []
    for name, a in exprs:
        if name == "meta":
            regs[_u32(a, 1)] = _META.get(_u32(a, 2), f"meta {_u32(a, 2)}")
        elif name == "payload":
            base, off, ln = _u32(a, 2), _u32(a, 3), _u32(a, 4)
            regs[_u32(a, 1)] = {(1, 12, 4): "ip saddr", (1, 16, 4): "ip daddr", (2, 2, 2): "th dport",
                                (1, 9, 1): "ip protocol", (1, 8, 16): "ip6 saddr",
                                (1, 24, 16): "ip6 daddr"}.get((base, off, ln), f"@{base},{off},{ln}")
        elif name == "fib":
            regs[_u32(a, 1)] = "fib " + ("saddr" if _u32(a, 3) & FIB_F_SADDR else "daddr") + " type"
        elif name == "ct":
            regs[_u32(a, 1)] = "ct state" if _u32(a, 2) == CT_STATE else f"ct {_u32(a, 2)}"
        elif name == "bitwise":
            mask = _data(a, 4)
            masks[_u32(a, 2)] = bin(int.from_bytes(mask, "big")).count("1") if len(mask) in (4, 16) else 0
            if regs.get(_u32(a, 1)) == "ct state":
                masks[_u32(a, 2)] = -struct.unpack("=I", mask)[0]
        elif name == "cmp":
            reg = _u32(a, 1)
            what, data = regs.get(reg, f"reg {reg}"), _data(a, 3)
            op = " != " if _u32(a, 2) == CMP_NEQ else " "
            if what in ("iifname", "oifname"):
                # exact: NUL-terminated (padded to IFNAMSIZ by nft, not by iptables-nft); a prefix: not
                value = '"' + (data.rstrip(b"\0").decode() if data.endswith(b"\0") else data.decode() + "*") + '"'
            elif what.startswith(("ip ", "ip6 ")) and len(data) in (4, 16):
                value = str(ipaddress.ip_address(data)) + (f"/{masks[reg]}" if masks.get(reg, 0) > 0 else "")
            elif what == "th dport":
                value = str(struct.unpack(">H", data)[0])
            elif what == "meta l4proto":
                value = {v: k for k, v in PROTOCOLS.items()}.get(data[0], str(data[0]))
            elif what.startswith("fib"):
                value = "local" if struct.unpack("=I", data)[0] == RTN_LOCAL else str(struct.unpack("=I", data)[0])
            elif what == "ct state":
                bits = -masks.get(reg, 0)
                value = ",".join(n for b, n in ((CT_ESTABLISHED, "established"), (CT_RELATED, "related")) if bits & b)
                op = " "
            else:
                value = data.hex()
            out.append(f"{what}{op}{value}")
        elif name == "immediate":
            reg = _u32(a, 1)
            inner = parse(a.get(2, b""))
            if reg == REG_VERDICT and NFTA_DATA_VERDICT in inner:
                v = parse(inner[NFTA_DATA_VERDICT])
                code = _u32(v, NFTA_VERDICT_CODE)
                chain = v.get(NFTA_VERDICT_CHAIN, b"").rstrip(b"\0").decode()
                out.append(_VERDICTS.get(code, str(code)) + (f" {chain}" if chain else ""))
            else:
                regs[reg] = inner.get(NFTA_DATA_VALUE, b"").hex()
                regs[-reg] = inner.get(NFTA_DATA_VALUE, b"")  # raw, for nat
        elif name == "nat":
            addr, port = regs.get(-_u32(a, 3), b""), regs.get(-_u32(a, 5), b"")
            to = str(ipaddress.ip_address(addr)) if len(addr) in (4, 16) else "?"
            to = f"[{to}]" if len(addr) == 16 and len(port) == 2 else to
            out.append(("dnat" if _u32(a, 1) == NAT_DNAT else "snat") + f" to {to}"
                       + (f":{struct.unpack('>H', port)[0]}" if len(port) == 2 else ""))
        elif name == "masq":
            out.append("masquerade")
        elif name == "counter":
            out.append(f"counter packets {struct.unpack('>Q', a.get(2, bytes(8)))[0]} "
                       f"bytes {struct.unpack('>Q', a.get(1, bytes(8)))[0]}")
        elif name == "match":
            out.append('xt match "' + a.get(1, b"").rstrip(b"\0").decode() + '"')
        else:
            out.append(name)
    return " ".join(out)


def xt_ctstate(mask: int) -> bytes:
    """``-m conntrack --ctstate ...`` as iptables-nft writes it: the xtables match through
    nft_compat (struct xt_conntrack_mtinfo3, revision 3).  For rules in iptables' own tables:
    iptables-nft cannot read the native ``ct state`` expression, and a table it cannot read is
    one its user can no longer list or save."""
    info = bytes(146) + struct.pack("=HHHH", 1, 0, mask, 0) + bytes(14)  # XT_CONNTRACK_STATE
    return _expr("match", strz(1, "conntrack"), be32(2, 3), attr(3, info))  # NAME, REV, INFO


XT_STATE_ESTABLISHED, XT_STATE_RELATED, XT_STATE_DNAT = 2, 4, 0x80
