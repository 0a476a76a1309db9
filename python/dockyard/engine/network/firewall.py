"""Firewall rules for dockyard's bridges and published ports, in nf_tables, programmed in-process
over netlink (nftables.py): no ``iptables``, ``nft`` or ``ip`` executable is needed.

Everything lives in one table, ``table ip dockyard``, shared by every dockyard root on the host
(each rule names its own bridge)::

    chain prerouting   nat hook prerouting (dstnat):   fib daddr type local jump ports
    chain output       nat hook output (dstnat):       ip daddr != 127.0.0.0/8 fib daddr type local jump ports
                                                       (127/8: the userland proxy serves loopback)
    chain ports        per published port: [ip daddr H] iifname != BR l4proto P th dport N dnat to IP:PORT
    chain postrouting  nat hook postrouting (srcnat):  per network: oifname BR fib saddr type local masquerade
                                                       (hairpin), ip saddr SUBNET oifname != BR masquerade
    chain forward      filter hook forward:  jump forward-ports; jump isolation; per network: icc
                                             accept/drop, internal drops or established/outbound accepts
    chain forward-ports    per published port: ip daddr IP iifname != BR oifname BR ... accept
    chain isolation        per network: iifname BR oifname != BR jump isolation-2
    chain isolation-2      per network: oifname BR drop  (so traffic between two of our bridges
                                        drops, whatever their names, as dockerd's two stages)

Each rule carries a comment (rule userdata, as ``nft``'s ``comment``) naming what it belongs to:
``dockyard net BR`` for a network's, ``dockyard port BR IP PROTO PORT`` for a published port's,
``dockyard skeleton`` for the table's fixed jumps.  Adding a group first deletes the rules that
already carry its comment, in the same transaction, so a daemon that restarts (or a start that
crashed half-way) replaces its rules and never duplicates them; removing a group deletes exactly
the rules with its comment.  When no network's rules are left, the table goes.

A packet crosses every base chain on its hook and a drop anywhere is final, so a host whose own
firewall drops forwarded traffic (Docker leaves ``iptables -P FORWARD DROP``) would drop our
containers' traffic whatever our table says.  With iptables-nft, whose rules live in nf_tables
``table ip filter``, chain ``FORWARD``, dockyard inserts accepts there (``-i dy+`` and ``-o dy+
-m conntrack --ctstate RELATED,ESTABLISHED,DNAT``: replies, and connections our published ports
DNAT; the same pair for ``dockyard+``), commented ``dockyard bridges``, once, and removes them
with the table.  A bridge named otherwise (``com.docker.network.bridge.name``) gets its own pair,
commented as its network's rules and going with them.  The finer policy
(isolation, icc, internal) stays in our table, whose drops still apply.  They are written as
iptables-nft writes them (an xtables match for the state) so ``iptables -S`` still reads that
table.  A host on iptables-legacy (x_tables, no nf_tables ``filter`` table) with a DROP policy is
not handled: its FORWARD chain needs the same rules added by hand.
"""

from __future__ import annotations

import atexit
import errno
import os
import threading

from ...errors import DockyardError
from . import nftables as nft

FAMILY = nft.NFPROTO_IPV4
FAMILY6 = nft.NFPROTO_IPV6  # IPv6: the same table, chains and comments in the ip6 family
TABLE = "dockyard"
SKELETON = "dockyard skeleton"
HOST_MARK = "dockyard bridges"
BRIDGE_PREFIXES = ("dy*", "dockyard*")  # every dockyard bridge (dyb…, dyn…, dockyard0)
BASE_CHAINS = {
    "prerouting": ("nat", nft.HOOK_PREROUTING, nft.PRIO_DSTNAT),
    "output": ("nat", nft.HOOK_OUTPUT, nft.PRIO_DSTNAT),
    "postrouting": ("nat", nft.HOOK_POSTROUTING, nft.PRIO_SRCNAT),
    "forward": ("filter", nft.HOOK_FORWARD, nft.PRIO_FILTER),
}
ISOLATION_2 = "isolation-2"
CHAINS = ["ports", "forward-ports", "isolation", ISOLATION_2]


def _accept() -> list[bytes]:
    return [nft.counter(), nft.verdict(nft.NF_ACCEPT)]


def _drop() -> list[bytes]:
    return [nft.counter(), nft.verdict(nft.NF_DROP)]


def _skeleton(family: int = FAMILY) -> list[tuple[str, list[bytes]]]:
    loopback = "::1/128" if family == FAMILY6 else "127.0.0.0/8"
    return [
        ("prerouting", nft.addr_is_local(source=False) + [nft.verdict(nft.NFT_JUMP, "ports")]),
        ("output", nft.ip_addr(loopback, source=False, neq=True) + nft.addr_is_local(source=False)
         + [nft.verdict(nft.NFT_JUMP, "ports")]),
        ("forward", [nft.verdict(nft.NFT_JUMP, "forward-ports")]),
        ("forward", [nft.verdict(nft.NFT_JUMP, "isolation")]),
    ]


def _host_rules(native: bool, bridges: tuple[str, ...] = BRIDGE_PREFIXES) -> list[list[bytes]]:
    """The accepts for ``table ip filter``, chain ``FORWARD`` (see the module's doc): for every
    bridge named as ours, or for one bridge of another name."""
    if native:  # a filter table of nft's own (no xtables compat in the kernel): nft's syntax
        state = nft.ct_state(nft.CT_ESTABLISHED | nft.CT_RELATED)
    else:
        state = [nft.xt_ctstate(nft.XT_STATE_ESTABLISHED | nft.XT_STATE_RELATED | nft.XT_STATE_DNAT)]
    return [rule for br in bridges for rule in (nft.ifname(br) + _accept(), nft.ifname(br, out=True) + state + _accept())]


def named_as_ours(bridge: str) -> bool:
    """Whether the host's accepts for every dockyard bridge cover ``bridge`` (else, a bridge
    named by ``com.docker.network.bridge.name``, its network brings accepts of its own)."""
    return bridge.startswith(tuple(p.rstrip("*") for p in BRIDGE_PREFIXES))


# -- rule groups ----------------------------------------------------------------------------------
# A group is a JSON-able list (the endpoints table keeps a container's port groups):
#   ["net", bridge, subnet, internal, icc, masquerade]
#   ["port", bridge, ip, proto, host_ip, host_port, port]

def network_rules(bridge: str, subnet: str, internal: bool, icc: bool = True,
                  masquerade: bool = True, subnet6: str = "") -> list[list]:
    """A bridge's own rules: masquerade egress, forwarding, isolation from other dockyard bridges;
    with ``subnet6``, the same in the ip6 table (NAT66 of egress, as dockerd's ip6tables rules)."""
    return [["net", bridge, subnet, bool(internal), bool(icc), bool(masquerade)] + ([subnet6] if subnet6 else [])]


def port_rules(bridge: str, ip: str, bindings: list[dict], ip6: str = "") -> list[list]:
    """DNAT (and the forwarding accept) for each published port of one container.
    ``bindings``: {"proto", "host_ip", "host_port", "port"}; with ``ip6``, a binding to every
    address (0.0.0.0) is published on [::] too, DNATed to the container's IPv6 address."""
    out = [["port", bridge, ip, b["proto"], b["host_ip"], int(b["host_port"]), int(b["port"])]
           for b in bindings if ":" not in b["host_ip"]]
    if ip6:
        out += [["port", bridge, ip6, b["proto"], b["host_ip"] if ":" in b["host_ip"] else "::", int(b["host_port"]),
                 int(b["port"])] for b in bindings if b["host_ip"] in ("", "0.0.0.0") or ":" in b["host_ip"]]
    return out


def _families(group: list) -> tuple[int, ...]:
    if group[0] == "net":
        return (FAMILY, FAMILY6) if len(group) > 6 else (FAMILY,)
    return (FAMILY6,) if ":" in group[2] else (FAMILY,)


def _note(group: list) -> str:
    if group[0] == "net":
        return f"dockyard net {group[1]}"
    return f"dockyard port {group[1]} {group[2]} {group[3]} {group[5]}"


def _expand(group: list, family: int = FAMILY) -> list[tuple[str, list[bytes]]]:
    """(chain, expressions) of each rule of a group in the table of ``family``, in order."""
    if group[0] == "port":
        _, br, ip, proto, host_ip, host_port, port = group
        dest = nft.ip_addr(host_ip, source=False) if host_ip not in ("", "0.0.0.0", "::") else []
        return [
            ("ports", dest + nft.ifname(br, neq=True) + nft.l4_dport(proto, host_port) + [nft.counter()]
             + nft.to_dnat(ip, port)),
            ("forward-ports", nft.ip_addr(ip, source=False) + nft.ifname(br, neq=True) + nft.ifname(br, out=True)
             + nft.l4_dport(proto, port) + _accept()),
        ]
    _, br, subnet, internal, icc, masquerade = group[:6]
    if family == FAMILY6:
        subnet = group[6]
    rules = [("isolation", nft.ifname(br) + nft.ifname(br, out=True, neq=True) + [nft.verdict(nft.NFT_JUMP, ISOLATION_2)]),
             (ISOLATION_2, nft.ifname(br, out=True) + _drop())]
    rules.append(("forward", nft.ifname(br) + nft.ifname(br, out=True) + (_accept() if icc else _drop())))
    if internal:
        rules += [("forward", nft.ifname(br) + nft.ifname(br, out=True, neq=True) + _drop()),
                  ("forward", nft.ifname(br, out=True) + nft.ifname(br, neq=True) + _drop())]
    else:
        rules += [("forward", nft.ifname(br, out=True) + nft.ct_state(nft.CT_ESTABLISHED | nft.CT_RELATED) + _accept()),
                  ("forward", nft.ifname(br) + nft.ifname(br, out=True, neq=True) + _accept())]
    rules.append(("postrouting", nft.ifname(br, out=True) + nft.addr_is_local(source=True) + [nft.masquerade()]))
    if not internal and masquerade:
        rules.append(("postrouting", nft.ip_addr(subnet, source=True) + nft.ifname(br, out=True, neq=True)
                      + [nft.masquerade()]))
    return rules


# -- applying -------------------------------------------------------------------------------------

def _plan(nf: nft.Nftables, groups: list[list], delete: bool, native: bool, family: int = FAMILY) -> list[tuple]:
    """The messages of one transaction on the table of ``family``, from the rules there are now."""
    groups = [g for g in groups if family in _families(g) or delete]
    ours = nf.rules(family, TABLE)
    notes = {_note(g) for g in groups}
    msgs = [nft.del_rule(family, TABLE, r.chain, r.handle) for r in ours if r.comment in notes]
    host = nf.has_chain(family, "filter", "FORWARD")
    host_all = nf.rules(family, "filter", "FORWARD") if host else []
    host_rules = [r for r in host_all if r.comment == HOST_MARK]
    # a network's own accepts there (a bridge not named as ours), replaced or deleted with it
    host_net = [nft.del_rule(family, "filter", "FORWARD", r.handle) for r in host_all if r.comment in notes]
    if delete:
        if not any(r.comment.startswith("dockyard net ") and r.comment not in notes for r in ours):
            # No network left: the table goes, and the host accepts with it.
            msgs = [nft.del_rule(family, "filter", "FORWARD", r.handle) for r in host_rules]
            if ours:
                msgs.append(nft.del_table(family, TABLE))
        return msgs + host_net
    msgs += host_net
    skeleton = [r for r in ours if r.comment == SKELETON]
    if not groups:
        return msgs
    nets = [g for g in groups if g[0] == "net"]
    if len(skeleton) != len(_skeleton(family)):
        msgs += [nft.new_table(family, TABLE)]
        msgs += [nft.new_chain(family, TABLE, name, base) for name, base in BASE_CHAINS.items()]
        msgs += [nft.new_chain(family, TABLE, name) for name in CHAINS]
        msgs += [nft.del_rule(family, TABLE, r.chain, r.handle) for r in skeleton]
        msgs += [nft.new_rule(family, TABLE, chain, exprs, SKELETON) for chain, exprs in _skeleton(family)]
    elif nets:
        msgs.append(nft.new_chain(family, TABLE, ISOLATION_2))  # a table of an earlier version lacks it
    for g in groups:
        msgs += [nft.new_rule(family, TABLE, chain, exprs, _note(g)) for chain, exprs in _expand(g, family)]
    if host and len(host_rules) != len(_host_rules(native)) and nets:
        msgs += [nft.del_rule(family, "filter", "FORWARD", r.handle) for r in host_rules]
        msgs += [nft.new_rule(family, "filter", "FORWARD", exprs, HOST_MARK, first=True)
                 for exprs in reversed(_host_rules(native))]
    for g in nets if host else []:
        if not named_as_ours(g[1]):
            msgs += [nft.new_rule(family, "filter", "FORWARD", exprs, _note(g), first=True)
                     for exprs in reversed(_host_rules(native, (g[1],)))]
    return msgs


_lock = threading.Lock()  # one transaction at a time per process (other processes: the generation)
_ensured: set[str] = set()


def apply(rules: list, delete: bool = False) -> None:
    """Add (or delete) rule groups (from :func:`network_rules` and :func:`port_rules`) in one
    transaction.  Adding replaces a group's rules that are already there; deleting a group
    that is not there is no error.  Rules of the earlier, iptables-based version (pairs of table
    and rule text, and a network's rules in its DOCKYARD* chains) are deleted with them."""
    groups = [list(g) for g in rules if len(g) > 2 and g[0] in ("net", "port")]
    if delete:
        _delete_legacy([tuple(g) for g in rules if len(g) == 2], [g[1] for g in groups if g[0] == "net"])
    for family in (FAMILY, FAMILY6):
        # deleting looks in both tables (a network's IPv6 rules carry the same comment)
        if any(family in _families(g) for g in groups) or (groups and delete):
            _transaction(lambda nf, native, family=family: _plan(nf, groups, delete, native, family))
    for g in groups:
        for family in _families(g):
            (_ensured.discard if delete else _ensured.add)((family, _note(g)))


def ensure(rules: list) -> None:
    """Add the groups that are not in the ruleset (once per process and group: the rules of a
    bridge that already exists, after a daemon restart, an upgrade or a flushed ruleset)."""
    groups = [list(g) for g in rules if any((f, _note(g)) not in _ensured for f in _families(g))]
    if not groups:
        return
    with _lock:
        have = {(f, r.comment) for f in (FAMILY, FAMILY6) for r in _socket().rules(f, TABLE)}
    missing = [g for g in groups if any((f, _note(g)) not in have for f in _families(g))]
    if missing:
        apply(missing)
    _ensured.update((f, _note(g)) for g in groups for f in _families(g))


_sockets: dict[tuple[int, int], nft.Nftables] = {}


def _socket() -> nft.Nftables:
    """This process's socket for the current network namespace, kept open: closing a
    NETLINK_NETFILTER socket makes the kernel finish freeing deleted rules first (an RCU grace
    period, 5-15 ms), which a socket per change paid on every container exit.  Use under _lock."""
    key = (os.getpid(), os.stat("/proc/thread-self/ns/net").st_ino)
    nf = _sockets.get(key)
    if nf is None:
        try:
            nf = _sockets[key] = nft.Nftables()
        except OSError as exc:
            raise _error(exc) from None
    return nf


@atexit.register
def _close_sockets() -> None:
    """At exit: the kept sockets are closed, not left to the collector (a ResourceWarning);
    unless a thread still in a transaction holds them past a deadline (the exit goes on)."""
    if not _lock.acquire(timeout=2):
        return
    try:
        for nf in _sockets.values():
            nf.close()
        _sockets.clear()
    finally:
        _lock.release()


def _error(exc: OSError) -> DockyardError:
    if exc.errno == errno.EPROTONOSUPPORT:
        return DockyardError("bridge networking needs nf_tables, which this kernel lacks")
    return DockyardError(f"cannot program the firewall: {exc.strerror or exc}")


def _transaction(plan) -> None:
    """Read, plan and commit until the commit finds the ruleset as it was read."""
    native = False
    with _lock:
        nf = _socket()
        try:
            for _attempt in range(100):
                generation = nf.generation()
                try:
                    nf.commit(plan(nf, native), generation)
                    return
                except nft.NftError as exc:
                    if exc.errno == errno.ERESTART:  # someone changed the ruleset meanwhile
                        continue
                    if exc.errno in (errno.ENOENT, errno.EOPNOTSUPP) and not native and exc.where[:2] == ("filter", "FORWARD"):
                        native = True  # no xtables compat: the host's accepts in nft's syntax
                        continue
                    raise
            raise DockyardError("nftables: the ruleset kept changing; giving up")
        except OSError as exc:
            raise _error(exc) from None


LEGACY_CHAINS = (("nat", "DOCKYARD"), ("nat", "DOCKYARD-POST"), ("filter", "DOCKYARD-FWD"), ("filter", "DOCKYARD-ISO"))


def _delete_legacy(port_rules: list[tuple], bridges: list[str]) -> None:
    """What the iptables-based version made for these containers' ports and networks: its
    port rules by the iptables that made them (when it is still there), a network's rules
    (each names its bridge) over netlink from its chains in iptables-nft's tables."""
    if port_rules:
        import shutil
        import subprocess

        ipt = shutil.which("iptables") or shutil.which("iptables", path="/usr/sbin:/sbin")
        for table, rule in port_rules if ipt else []:
            subprocess.run([ipt, "-w", "-t", table, "-D", *rule.split()[1:]], capture_output=True)
    if not bridges:
        return

    def plan(nf: nft.Nftables, native: bool) -> list[tuple]:
        msgs = []
        for table, chain in LEGACY_CHAINS:
            if nf.has_chain(FAMILY, table, chain):
                msgs += [nft.del_rule(FAMILY, table, chain, r.handle) for r in nf.rules(FAMILY, table, chain)
                         if any(f'"{b}"' in r.text() for b in bridges)]
        return msgs

    try:
        _transaction(plan)
    except DockyardError:
        pass  # another program's tables: never fail a removal over them


def rules_mentioning(word: str) -> list[str]:
    """Every current rule of dockyard's table (and its accepts in the host's FORWARD chain) that
    mentions ``word``, as text (tests use it to check cleanup)."""
    with _lock:
        nf = _socket()
        rules = [r for f in (FAMILY, FAMILY6) for r in nf.rules(f, TABLE)
                 + [r for r in nf.rules(f, "filter", "FORWARD")
                    if r.comment == HOST_MARK or r.comment.startswith("dockyard net ")]]
    return [r.text() for r in rules if word in r.text()]


def all_rules() -> list[str]:
    """Every rule in dockyard's table and of dockyard's in the host's FORWARD chain, as text."""
    return rules_mentioning("")



def release() -> None:
    """Close this process's sockets (a socket keeps its network namespace alive)."""
    with _lock:
        while _sockets:
            _sockets.popitem()[1].close()
