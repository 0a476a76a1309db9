"""iptables rules for dockyard's bridges and published ports.

Rules go in dockyard's own chains, entered from the built-in ones by one jump each:

    nat     DOCKYARD       published ports (DNAT), from PREROUTING and OUTPUT (local destinations)
    nat     DOCKYARD-POST  masquerading, from POSTROUTING
    filter  DOCKYARD-FWD   forwarding to and from each bridge, from FORWARD (first)

Each change is one ``iptables-restore --noflush`` run (one process per network created or per
container with published ports; none for a container without).  ``iptables`` here is whichever
backend the host's ``iptables`` command uses (nf_tables on current distributions); the legacy
backend works the same way.  Docker does the same; nftables' own syntax would need a second
rule set beside the iptables one on hosts whose FORWARD policy is DROP.
"""

from __future__ import annotations

import shutil
import subprocess

from ...errors import DockyardError

CHAINS = {"nat": ["DOCKYARD", "DOCKYARD-POST"], "filter": ["DOCKYARD-FWD", "DOCKYARD-ISO", "DOCKYARD-ISO2"]}
JUMPS = [
    ("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKYARD"),
    ("nat", "OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKYARD"),  # 127/8: the proxy
    ("nat", "POSTROUTING", "-j DOCKYARD-POST"),
    ("filter", "FORWARD", "-j DOCKYARD-FWD"),
    ("filter", "DOCKYARD-FWD", "-j DOCKYARD-ISO"),
    # Isolation, in docker's two stages: leaving bridge A (ISO) for any other dockyard bridge (ISO2).
    ("filter", "DOCKYARD-ISO2", "-o dy+ -j DROP"),
    ("filter", "DOCKYARD-ISO2", "-o dockyard+ -j DROP"),
]
_ready = False


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        raise DockyardError(f"{name} is not installed: bridge networking needs iptables")
    return path


def _run(args: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise DockyardError(f"iptables failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def ensure_chains() -> None:
    """Create dockyard's chains and the jumps into them, once per host (idempotent)."""
    global _ready
    if _ready:
        return
    ipt = _tool("iptables")
    table, chain, rule = JUMPS[1]
    if _run([ipt, "-w", "-t", table, "-C", chain, *rule.split()], check=False).returncode == 0:
        _ready = True  # this version's set-up ran on this host (one check, not one per rule)
        return
    # An earlier version DNATed loopback too (route_localnet): its OUTPUT jump goes.
    _run([ipt, "-w", "-t", "nat", "-D", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKYARD"],
         check=False)
    for table, chains in CHAINS.items():
        for chain in chains:
            _run([ipt, "-w", "-t", table, "-N", chain], check=False)
    for table, chain, rule in JUMPS[2:] + JUMPS[:2]:  # JUMPS[1], the marker above, last
        if _run([ipt, "-w", "-t", table, "-C", chain, *rule.split()], check=False).returncode != 0:
            pos = ["1"] if chain in ("FORWARD", "DOCKYARD-FWD") else []
            _run([ipt, "-w", "-t", table, "-I" if pos else "-A", chain, *pos, *rule.split()])
    _ready = True


def apply(rules: list[tuple[str, str]], delete: bool = False) -> None:
    """Add (or delete) rules given as (table, "-A CHAIN ..."/"-I CHAIN ...") in one batch.
    A deletion batch that fails (a rule already gone) is retried rule by rule, ignoring misses."""
    if not rules:
        return
    ensure_chains()
    by_table: dict[str, list[str]] = {}
    for table, rule in rules:
        if delete:
            rule = "-D" + rule[2:]
        by_table.setdefault(table, []).append(rule)
    text = "".join(f"*{t}\n" + "".join(r + "\n" for r in rs) + "COMMIT\n" for t, rs in by_table.items())
    proc = _run([_tool("iptables-restore"), "-w", "--noflush"], stdin=text, check=False)
    if proc.returncode == 0:
        return
    if not delete:
        raise DockyardError(f"iptables failed: {proc.stderr.strip()}")
    ipt = _tool("iptables")
    for table, rule in rules:
        _run([ipt, "-w", "-t", table, "-D", *rule.split()[1:]], check=False)


def network_rules(bridge: str, subnet: str, internal: bool, icc: bool = True,
                  masquerade: bool = True) -> list[tuple[str, str]]:
    """A bridge's own rules: masquerade egress, forwarding, isolation from other dockyard bridges."""
    rules = [
        ("filter", f"-A DOCKYARD-ISO -i {bridge} ! -o {bridge} -j DOCKYARD-ISO2"),
        # First in the chain: container-to-container traffic (the bulk) then skips every other rule.
        ("filter", f"-I DOCKYARD-FWD -i {bridge} -o {bridge} -j {'ACCEPT' if icc else 'DROP'}"),
        ("nat", f"-A DOCKYARD-POST -o {bridge} -m addrtype --src-type LOCAL -j MASQUERADE"),
    ]
    if internal:
        rules += [("filter", f"-A DOCKYARD-FWD -i {bridge} ! -o {bridge} -j DROP"),
                  ("filter", f"-A DOCKYARD-FWD -o {bridge} ! -i {bridge} -j DROP")]
    else:
        rules += [
            ("filter", f"-A DOCKYARD-FWD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            ("filter", f"-A DOCKYARD-FWD -i {bridge} ! -o {bridge} -j ACCEPT"),
        ]
        if masquerade:
            rules.append(("nat", f"-A DOCKYARD-POST -s {subnet} ! -o {bridge} -j MASQUERADE"))
    return rules


def port_rules(bridge: str, ip: str, bindings: list[dict]) -> list[tuple[str, str]]:
    """DNAT (and the forwarding accept) for each published port of one container.
    ``bindings``: {"proto", "host_ip", "host_port", "port"}."""
    rules = []
    for b in bindings:
        dest = f"-d {b['host_ip']}/32 " if b["host_ip"] not in ("", "0.0.0.0") else ""
        proto = b["proto"]
        rules.append(("nat", f"-A DOCKYARD {dest}! -i {bridge} -p {proto} -m {proto} --dport {b['host_port']} "
                             f"-j DNAT --to-destination {ip}:{b['port']}"))
        rules.append(("filter", f"-I DOCKYARD-FWD -d {ip}/32 ! -i {bridge} -o {bridge} -p {proto} -m {proto} "
                                f"--dport {b['port']} -j ACCEPT"))
    return rules


def rules_mentioning(word: str) -> list[str]:
    """Every current rule that mentions ``word`` (tests use it to check cleanup)."""
    out = []
    for table in ("nat", "filter"):
        proc = _run([_tool("iptables"), "-w", "-t", table, "-S"], check=False)
        out += [line for line in proc.stdout.splitlines() if word in line]
    return out
