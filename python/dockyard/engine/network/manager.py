"""Networks: the default bridge, user-defined bridges, IPAM, ports, links and the files a
container sees (/etc/hosts, /etc/resolv.conf, /etc/hostname).

State lives in two tables: ``networks`` (one row per network; the predefined ``bridge``,
``host`` and ``none`` included) and ``endpoints`` (one row per container and network it is
connected to: the address it holds while running, its MAC, aliases, the host ports it
published and the firewall rules added for them).  The kernel side (a network namespace bound
under the run dir, a veth pair, nf_tables rules) is made at start and unmade when the exit is
recorded or the container is removed; every step first removes what a crashed earlier attempt
may have left, so a crash at any point is repaired by the next start.

Addresses are leased at start and released at exit, as docker does; a restarted container asks
for its previous address first, so it usually keeps it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import socket
from pathlib import Path

from ...errors import Conflict, DockyardError, InvalidArgument, NotFound
from ..store import Store
from .ipam import (
    DEFAULT_POOL, USER_POOL, Forbidden, choose, host_routes, pick, pick6, pick_from, pool_config, with_gateway,
)
from .syntax import endpoint_extra, link_variables, split_link

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS networks (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL, subnet TEXT NOT NULL DEFAULT '',
        gateway TEXT NOT NULL DEFAULT '', bridge TEXT NOT NULL DEFAULT '', internal INTEGER NOT NULL DEFAULT 0,
        labels TEXT NOT NULL DEFAULT '{}', options TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL,
        subnet6 TEXT NOT NULL DEFAULT '', gateway6 TEXT NOT NULL DEFAULT '', ipam TEXT NOT NULL DEFAULT '{}')""",
    """CREATE TABLE IF NOT EXISTS endpoints (
        container TEXT NOT NULL, network TEXT NOT NULL, idx INTEGER NOT NULL DEFAULT 0,
        ip TEXT NOT NULL DEFAULT '', want_ip TEXT NOT NULL DEFAULT '', mac TEXT NOT NULL DEFAULT '',
        aliases TEXT NOT NULL DEFAULT '[]', ports TEXT NOT NULL DEFAULT '[]', rules TEXT NOT NULL DEFAULT '[]',
        endpoint_id TEXT NOT NULL DEFAULT '', ip6 TEXT NOT NULL DEFAULT '', want_ip6 TEXT NOT NULL DEFAULT '',
        extra TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (container, network))""",
]
#: a bridge network's option for the MTU of its containers' interfaces (docker's name)
MTU_OPTION = "com.docker.network.driver.mtu"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
HOST_BINDING_OPTION = "com.docker.network.bridge.host_binding_ipv4"
ICC_OPTION = "com.docker.network.bridge.enable_icc"
BIP = "_bip"  # (an option not shown) the daemon's --bip that gave the default bridge its subnet
ADOPTED = "_adopted"  # (an option not shown) the bridge was the host's: network rm leaves it

# Columns added since the first schema (a root made before them gets them at open).
#   networks.subnet6/gateway6: the IPv6 subnet and gateway of a network with IPv6 enabled;
#   networks.ipam: {"Driver", "Options", "Config": what inspect shows, "v4"/"v6": the pools in
#   use ({"Subnet", "IPRange", "Gateway", "AuxiliaryAddresses"})};
#   endpoints.ip6/want_ip6: the IPv6 address held while running and the one asked for;
#   endpoints.extra: {"links": ["target:alias"], "link_local": [...], "driver_opts": {}, "mac": ""}.
ADDED = {"networks": (("subnet6", "TEXT NOT NULL DEFAULT ''"), ("gateway6", "TEXT NOT NULL DEFAULT ''"),
                      ("ipam", "TEXT NOT NULL DEFAULT '{}'")),
         "endpoints": (("ip6", "TEXT NOT NULL DEFAULT ''"), ("want_ip6", "TEXT NOT NULL DEFAULT ''"),
                       ("extra", "TEXT NOT NULL DEFAULT '{}'"))}


# The daemon's network settings, as dockerd's flags (``dockyard daemon --ipv6 --fixed-cidr-v6
# fd00:1::/64 --default-address-pool base=fd00:2::/48,size=64``): the default bridge's IPv6
# subnet (used with --ipv6), and the pools a network created with ``--ipv6`` and no IPv6
# subnet takes a subnet from (base, prefix length); IPv4 bases there replace USER_POOL for
# user networks made without a subnet (the default bridge keeps DEFAULT_POOL).
def daemon_settings() -> tuple[bool, str, list[tuple[str, int]]]:
    """(--ipv6, --fixed-cidr-v6, [(pool base, size)]) as the daemon was started with (its CLI
    puts them in DOCKYARD_IPV6, DOCKYARD_FIXED_CIDR_V6 and DOCKYARD_ADDRESS_POOLS="base,size ...")."""
    pools = [(b, int(n)) for b, _, n in (p.partition(",") for p in os.environ.get("DOCKYARD_ADDRESS_POOLS", "").split())
             if n.isdigit()]
    return os.environ.get("DOCKYARD_IPV6", "") == "1", os.environ.get("DOCKYARD_FIXED_CIDR_V6", ""), pools


PREDEFINED = ("bridge", "host", "none")
#: set by a daemon while it serves: a private root's default bridge then stays between
#: containers (made once, with its rules; no bridge and firewall churn per ``run --rm``) and
#: goes at the daemon's shutdown if no container needs it (``Networks.release_default_bridge``)
KEEP_DEFAULT_BRIDGE = False


class NetworkNotFound(NotFound):
    pass


class AliasError(InvalidArgument):
    """docker's CLI refuses these itself."""

    client_side = True


def _now() -> str:
    from ..images import now_rfc3339

    return now_rfc3339()


class Networks:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ensured: set[tuple] = set()  # bridges whose rules were checked (firewall.ensure)
        self._bridge_name = ""
        db = store.db
        have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"networks", "endpoints"} <= have:
            with store.transaction() as tx:
                for stmt in SCHEMA:
                    tx.execute(stmt)
        for table, cols in ADDED.items():
            present = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            missing = [(c, t) for c, t in cols if c not in present]
            if missing:
                with store.transaction() as tx:
                    present = {r[1] for r in tx.execute(f"PRAGMA table_info({table})")}
                    for c, t in missing:
                        if c not in present:
                            tx.execute(f"ALTER TABLE {table} ADD COLUMN {c} {t}")
        if db.execute("SELECT 1 FROM networks WHERE name='bridge'").fetchone() is None:
            self._predefine()
        self._default_ipv6()
        self._default_subnet()
        self._default_options()

    def _default_ipv6(self) -> None:
        """The default bridge's IPv6 subnet follows the daemon's --ipv6/--fixed-cidr-v6 (a
        change applies once no container is on it: the bridge is made again)."""
        ipv6, fixed, _ = daemon_settings()
        want = str(ipaddress.IPv6Network(fixed, strict=False)) if ipv6 and fixed else ""
        r = self._default_bridge_to_change(lambda row: row["subnet6"] == want)
        if r is None:
            return
        with self._lock():
            self._destroy_bridge(r)
            with self.store.transaction() as db:
                db.execute("UPDATE networks SET subnet6=?, gateway6=? WHERE id=?",
                           (want, str(ipaddress.IPv6Network(want).network_address + 1) if want else "", r["id"]))

    def _default_bridge_to_change(self, unchanged) -> dict | None:
        """The default bridge's row when a daemon setting would change it (``unchanged(row)``
        is false) and no container is on it (until then the change waits)."""
        r = self.store.db.execute("SELECT * FROM networks WHERE name='bridge'").fetchone()
        if r is None or unchanged(r):
            return None
        if self.store.db.execute("SELECT 1 FROM endpoints WHERE network=? AND ip != '' LIMIT 1", (r["id"],)).fetchone():
            return None
        return dict(r)

    def _default_subnet(self) -> None:
        """The default bridge's subnet and address follow the daemon's --bip, as dockerd's (a
        change applies once no container is on it: the bridge is made again); without --bip, a
        --fixed-cidr outside the subnet becomes the subnet (dockerd 28 does so for a bridge
        without an address), and without either again, a free subnet of the default pool."""
        bip = os.environ.get("DOCKYARD_BIP", "")
        fixed = os.environ.get("DOCKYARD_FIXED_CIDR", "")

        def unchanged(row) -> bool:
            if json.loads(row["options"] or "{}").get(BIP) != (bip or None):
                return False
            return bool(bip) or not fixed or ipaddress.IPv4Network(fixed).subnet_of(ipaddress.IPv4Network(row["subnet"]))

        r = self._default_bridge_to_change(unchanged)
        if r is not None:
            if not bip and fixed and ipaddress.IPv4Network(fixed).prefixlen > 30:
                raise InvalidArgument(f"--fixed-cidr {fixed} is too small to be the default bridge's subnet: "
                                      "give --bip a subnet that holds it")
            with self._lock():
                self._destroy_bridge(r)
                with self.store.transaction() as db:
                    options = json.loads(r["options"] or "{}")
                    options.pop(BIP, None)
                    if bip:
                        iface = ipaddress.IPv4Interface(bip)
                        net, gateway = iface.network, iface.ip
                        options[BIP] = bip
                    elif fixed:
                        net = ipaddress.IPv4Network(fixed)
                        gateway = net.network_address + 1
                    else:
                        taken = [ipaddress.IPv4Network(x[0]) for x in
                                 db.execute("SELECT subnet FROM networks WHERE subnet != '' AND id != ?", (r["id"],))]
                        net = pick(DEFAULT_POOL, taken + host_routes())
                        gateway = net.network_address + 1
                    db.execute("UPDATE networks SET subnet=?, gateway=?, options=? WHERE id=?",
                               (str(net), str(gateway), json.dumps(options), r["id"]))
                    db.execute("UPDATE endpoints SET ip='' WHERE network=?", (r["id"],))
        self._default_range(fixed)

    def _default_range(self, fixed: str) -> None:
        """The addresses the default bridge gives containers follow the daemon's --fixed-cidr
        (its IPAM pool's IPRange, as dockerd's): at once for the containers started from now
        on, once it is within the bridge's subnet (a subnet change may be waiting for the
        bridge's containers to go)."""
        r = self.store.db.execute("SELECT * FROM networks WHERE name='bridge'").fetchone()
        if r is None or not r["subnet"]:
            return
        ipam = json.loads(r["ipam"] or "{}")
        if (ipam.get("v4") or {}).get("IPRange", "") == fixed:
            return
        if fixed and not ipaddress.IPv4Network(fixed).subnet_of(ipaddress.IPv4Network(r["subnet"])):
            return
        if fixed:
            ipam["v4"] = {**(ipam.get("v4") or {}), "IPRange": fixed}
        else:
            (ipam.get("v4") or {}).pop("IPRange", None)
        with self.store.transaction() as db:
            db.execute("UPDATE networks SET ipam=? WHERE id=?", (json.dumps(ipam), r["id"]))

    def _default_options(self) -> None:
        """The default bridge's options follow the daemon's --mtu, --ip (the host address of
        ports published without one) and --icc, as dockerd's: containers started from then on
        get the MTU and the address; a change of --icc is applied to the bridge's rules now."""
        want = {MTU_OPTION: os.environ.get("DOCKYARD_MTU") or "1500",
                HOST_BINDING_OPTION: os.environ.get("DOCKYARD_DEFAULT_IP") or "0.0.0.0",
                ICC_OPTION: "false" if os.environ.get("DOCKYARD_ICC") == "false" else "true"}
        r = self.store.db.execute("SELECT * FROM networks WHERE name='bridge'").fetchone()
        options = json.loads(r["options"] or "{}") if r else {}
        if r is None or all(options.get(k) == v for k, v in want.items()):
            return
        with self._lock():
            with self.store.transaction() as db:
                db.execute("UPDATE networks SET options=? WHERE id=?", (json.dumps({**options, **want}), r["id"]))
            if options.get(ICC_OPTION, "true") != want[ICC_OPTION] and os.path.exists(f"/sys/class/net/{r['bridge']}"):
                from . import firewall

                firewall.apply(self._rules(self.row(r["id"])))  # (replaces the bridge's rules)

    # -- helpers ----------------------------------------------------------------------------

    def _default_bridge_name(self) -> str:
        if not self._bridge_name:
            root = str(self.store.root.resolve())
            self._bridge_name = ("dockyard0" if root == "/var/lib/dockyard"
                                 else "dyb" + hashlib.sha256(root.encode()).hexdigest()[:10])
        return self._bridge_name

    def _predefine(self) -> None:
        from ..names import new_id

        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM networks WHERE name='bridge'").fetchone():
                return
            taken = [ipaddress.IPv4Network(r[0]) for r in db.execute("SELECT subnet FROM networks WHERE subnet != ''")]
            subnet = pick(DEFAULT_POOL, taken + host_routes())
            for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
                sub = str(subnet) if name == "bridge" else ""
                gw = str(subnet.network_address + 1) if name == "bridge" else ""
                db.execute("INSERT INTO networks (id, name, driver, subnet, gateway, bridge, options, created) "
                           "VALUES (?,?,?,?,?,?,?,?)",
                           (new_id(), name, driver, sub, gw, self._default_bridge_name() if name == "bridge" else "",
                            json.dumps({"com.docker.network.bridge.default_bridge": "true",
                                        ICC_OPTION: "true",
                                        "com.docker.network.bridge.enable_ip_masquerade": "true",
                                        HOST_BINDING_OPTION: "0.0.0.0",
                                        "com.docker.network.bridge.name": self._default_bridge_name(),
                                        MTU_OPTION: "1500"} if name == "bridge" else {}),
                            _now()))

    @contextlib.contextmanager
    def _lock(self):
        fd = os.open(self.store.root / "net.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def row(self, ref: str) -> dict:
        db = self.store.db
        r = db.execute("SELECT * FROM networks WHERE name=? OR id=?", (ref, ref)).fetchone()
        if r is None and ref:
            rows = db.execute("SELECT * FROM networks WHERE id >= ? AND id < ? LIMIT 2", (ref, ref + "g")).fetchall()
            if len(rows) == 1:
                r = rows[0]
            elif len(rows) > 1:
                raise InvalidArgument(f"network {ref} is ambiguous ({len(rows)} matches found based on ID prefix)")
        if r is None:
            raise NetworkNotFound(f"network {ref} not found")
        return dict(r)

    # -- network commands ---------------------------------------------------------------------

    def create(self, name: str, subnet: str = "", gateway: str = "", internal: bool = False,
               labels: dict[str, str] | None = None, driver: str = "bridge", options: dict[str, str] | None = None,
               configs: list[dict] | None = None, ipv6: bool = False, ipam_driver: str = "default",
               ipam_options: dict[str, str] | None = None) -> str:
        """A bridge network.  ``configs``: the IPAM pools as the API gives them (``Subnet``,
        ``IPRange``, ``Gateway``, ``AuxiliaryAddresses``), at most one per family; ``subnet`` and
        ``gateway`` are the short form of one IPv4 pool."""
        from ..names import new_id

        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver not in ("bridge", ""):
            raise NotFound(f"plugin \"{driver}\" not found")
        if ipam_driver not in ("default", ""):
            raise NotFound(f"plugin \"{ipam_driver}\" not found")
        if not name:
            raise InvalidArgument("network name is required")
        if name in PREDEFINED:
            raise Conflict(f"operation is not permitted on predefined {name} network ")
        if configs is None:
            configs = [{"Subnet": subnet, "Gateway": gateway}] if subnet or gateway else []
        pools = {4: [], 6: []}
        for cfg in configs:
            pool = pool_config(cfg)
            pools[pool["_family"]].append(pool)
        if len(pools[4]) > 1 or len(pools[6]) > 1:
            raise Forbidden("bridge driver doesn't support multiple subnets")
        mtu = (options or {}).get(MTU_OPTION)
        if mtu is not None and not re.fullmatch(r"[+-]?[0-9]+", mtu):
            raise InvalidArgument(f'failed to parse {MTU_OPTION} value: {mtu} (strconv.Atoi: parsing "{mtu}": '
                                  "invalid syntax)")
        binding = (options or {}).get(HOST_BINDING_OPTION)
        if binding is not None:
            try:
                ipaddress.ip_address(binding)
            except ValueError:
                raise InvalidArgument(f"failed to parse {HOST_BINDING_OPTION} value: {binding} (nil ip)") from None
        v4, v6 = (pools[4] or [None])[0], (pools[6] or [None])[0]
        nid = new_id()
        requested = _bridge_option(options or {})
        bridge = requested or "dyn" + nid[:12]
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM networks WHERE name=?", (name,)).fetchone():
                raise Conflict(f"network with name {name} already exists")
            same = db.execute("SELECT id FROM networks WHERE bridge=?", (bridge,)).fetchone()
            if same:
                raise Forbidden(f"cannot create network {nid} ({bridge}): conflicts with network {same[0]} ({bridge}): "
                                "networks have same bridge name")
            if requested and os.path.lexists(f"/sys/class/net/{bridge}"):
                # a bridge of the host's: used as it is and left there by `network rm`, as
                # dockerd does (any other device is refused)
                if not os.path.isdir(f"/sys/class/net/{bridge}/bridge"):
                    raise DockyardError(f"existing interface {bridge} is not a bridge")
                from .firewall import named_as_ours

                if named_as_ours(bridge):  # another dockyard root's
                    raise Conflict(f"existing interface {bridge} is the bridge of another dockyard network")
                options = {**(options or {}), ADOPTED: "true"}
            taken = [ipaddress.ip_network(r[0]) for r in
                     db.execute("SELECT subnet FROM networks WHERE subnet != '' UNION ALL "
                                "SELECT subnet6 FROM networks WHERE subnet6 != ''")]
            taken += [ipaddress.ip_network(c["Subnet"]) for r in db.execute("SELECT ipam FROM networks")
                      for c in (json.loads(r[0]).get("Config") or []) if ":" in c.get("Subnet", "")]
            shown = []
            if v4 is None:
                pools4 = [p for p in daemon_settings()[2] if ":" not in p[0]]
                net = (pick_from(pools4, taken + host_routes(), 4) if pools4
                       else pick(USER_POOL, taken + host_routes()))
                v4 = {"Subnet": str(net), "Gateway": str(net.network_address + 1)}
                shown.append(dict(v4))
            else:
                if any(ipaddress.ip_network(v4["Subnet"]).overlaps(t) for t in taken if t.version == 4):
                    raise Forbidden("Pool overlaps with other one on this address space")
                shown.append({k: v for k, v in v4.items() if not k.startswith("_") and v})
                v4 = with_gateway(v4)
            if v6 is None and ipv6:
                net6 = pick6(daemon_settings()[2], taken + host_routes(socket.AF_INET6))
                v6 = {"Subnet": str(net6), "Gateway": str(net6.network_address + 1)}
                shown.append(dict(v6))
            elif v6 is not None:
                if any(ipaddress.ip_network(v6["Subnet"]).overlaps(t) for t in taken if t.version == 6):
                    raise Forbidden("Pool overlaps with other one on this address space")
                shown.append({k: v for k, v in v6.items() if not k.startswith("_") and v})
                v6 = with_gateway(v6)
            ipam = {"Driver": ipam_driver or "default", "Options": ipam_options, "Config": shown,
                    "v4": {k: v for k, v in v4.items() if not k.startswith("_")},
                    "v6": {k: v for k, v in v6.items() if not k.startswith("_")} if v6 and ipv6 else None}
            db.execute("INSERT INTO networks (id, name, driver, subnet, gateway, bridge, internal, labels, options, "
                       "created, subnet6, gateway6, ipam) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (nid, name, "bridge", v4["Subnet"], v4["Gateway"], bridge, int(internal),
                        json.dumps(labels or {}), json.dumps(options or {}), _now(),
                        v6["Subnet"] if v6 and ipv6 else "", v6["Gateway"] if v6 and ipv6 else "", json.dumps(ipam)))
        try:
            with self._lock():
                self._ensure_bridge(self.row(nid))
        except BaseException:
            self._destroy_bridge(self.row(nid))
            with self.store.transaction() as db:
                db.execute("DELETE FROM networks WHERE id=?", (nid,))
            raise
        return nid

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict]:
        filters = filters or {}
        for key in filters:
            if key not in ("name", "id", "driver", "label", "type", "dangling", "scope"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        out = []
        for r in self.store.db.execute("SELECT id FROM networks ORDER BY name"):
            n = self.inspect(r[0])
            if "name" in filters and not any(f in n["Name"] for f in filters["name"]):
                continue
            if "id" in filters and not any(n["Id"].startswith(f) for f in filters["id"]):
                continue
            if "driver" in filters and n["Driver"] not in filters["driver"]:
                continue
            if "scope" in filters and "local" not in filters["scope"]:
                continue
            if "type" in filters:
                kind = "builtin" if n["Name"] in PREDEFINED else "custom"
                if kind not in filters["type"]:
                    continue
            if "label" in filters:
                labels = n["Labels"] or {}
                if not all((k in labels and (not eq or labels[k] == v))
                           for k, eq, v in (f.partition("=") for f in filters["label"])):
                    continue
            if "dangling" in filters:
                dangling = n["Name"] not in PREDEFINED and not self._users(n["Id"])
                if str(dangling).lower() not in [v.lower() for v in filters["dangling"]]:
                    continue
            out.append(n)
        return out

    def _users(self, nid: str) -> list[str]:
        """Containers with an active endpoint (running): docker lets a network with only stopped
        members go, and their next start fails with "network ... not found"."""
        return [r[0] for r in self.store.db.execute("SELECT container FROM endpoints WHERE network=? AND ip != ''",
                                                    (nid,))]

    def inspect(self, ref: str) -> dict:
        r = self.row(ref)
        containers = {}
        for e in self.store.db.execute(
                "SELECT e.*, c.name AS cname FROM endpoints e JOIN containers c ON c.id=e.container "
                "WHERE e.network=? AND e.ip != ''", (r["id"],)):
            prefix = ipaddress.IPv4Network(r["subnet"]).prefixlen
            v6 = f"{e['ip6']}/{ipaddress.IPv6Network(r['subnet6']).prefixlen}" if e["ip6"] and r["subnet6"] else ""
            containers[e["container"]] = {"Name": e["cname"], "EndpointID": e["endpoint_id"],
                                          "MacAddress": e["mac"], "IPv4Address": f"{e['ip']}/{prefix}",
                                          "IPv6Address": v6}
        options = json.loads(r["options"])
        ipam = json.loads(r["ipam"] or "{}")
        if "Config" in ipam:
            ipam_cfg = ipam["Config"]
        else:  # the predefined networks, and networks made before the ipam column
            ipam_cfg = [{"Subnet": r["subnet"]}] if r["subnet"] else []
            if r["subnet"] and (ipam.get("v4") or {}).get("IPRange"):  # the default bridge's --fixed-cidr
                ipam_cfg[0]["IPRange"] = ipam["v4"]["IPRange"]
            if r["subnet"] and (r["name"] == "bridge" or options.get("_gateway")):  # docker shows a given one only
                ipam_cfg[0]["Gateway"] = r["gateway"]
            if r["subnet6"]:  # the default bridge's --fixed-cidr-v6: dockerd shows no gateway for it
                ipam_cfg.append({"Subnet": r["subnet6"]})
        return {
            "Name": r["name"], "Id": r["id"], "Created": r["created"], "Scope": "local", "Driver": r["driver"],
            "EnableIPv6": bool(r["subnet6"]),
            "IPAM": {"Driver": ipam.get("Driver") or "default",
                     "Options": ipam.get("Options") if "Config" in ipam else None if r["name"] in PREDEFINED else {},
                     "Config": ipam_cfg},
            "Internal": bool(r["internal"]), "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": {k: v for k, v in options.items() if not k.startswith("_")},
            "Labels": json.loads(r["labels"]),
        }

    def remove(self, ref: str) -> str:
        r = self.row(ref)
        if r["name"] in PREDEFINED:
            raise Conflict(f"{r['name']} is a pre-defined network and cannot be removed")
        if self._users(r["id"]):
            raise Conflict(f"error while removing network: network {r['name']} id {r['id']} has active endpoints")
        with self._lock():
            self._destroy_bridge(r)
            with self.store.transaction() as db:
                db.execute("DELETE FROM networks WHERE id=?", (r["id"],))
        return r["id"]

    def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        out = []
        for n in self.list({k: v for k, v in (filters or {}).items() if k == "label"}):
            if n["Name"] in PREDEFINED or self._users(n["Id"]):
                continue
            self.remove(n["Id"])
            out.append(n["Name"])
        return out

    # -- the kernel side ----------------------------------------------------------------------

    def _ensure_bridge(self, r: dict) -> int:
        """The bridge device of a network, with its address and rules (made if missing)."""
        return self._bridge(r)[0]

    def _bridge(self, r: dict) -> tuple[int, bool]:
        """:meth:`_ensure_bridge`, and whether the device was made now (the default bridge's
        subnet may have moved then)."""
        from . import firewall, netlink

        with netlink.Netlink() as nl:
            index = nl.link_index(r["bridge"])
        if index:
            key = (r["bridge"], r["subnet"], r["subnet6"], r["internal"], r["options"])
            if key not in self._ensured:  # once per daemon: a restart after a flush or an upgrade
                if ADOPTED in json.loads(r["options"]):  # the host's bridge: given our addresses
                    self._configure_bridge(r, index)
                firewall.ensure(self._rules(r))
                self._ensured.add(key)
            return index, False
        with _host_lock():
            net = ipaddress.IPv4Network(r["subnet"])
            clash = [t for t in host_routes() if t.overlaps(net)]
            if clash and r["name"] == "bridge" and BIP not in json.loads(r["options"] or "{}"):
                # Another root's bridge took this subnet while ours was down: move to a free one.
                with self.store.transaction() as db:
                    taken = [ipaddress.IPv4Network(x[0]) for x in
                             db.execute("SELECT subnet FROM networks WHERE subnet != '' AND id != ?", (r["id"],))]
                    net = pick(DEFAULT_POOL, taken + host_routes())
                    db.execute("UPDATE networks SET subnet=?, gateway=? WHERE id=?",
                               (str(net), str(net.network_address + 1), r["id"]))
                    db.execute("UPDATE endpoints SET ip='' WHERE network=?", (r["id"],))
                r = self.row(r["id"])
            elif clash:
                raise Conflict(f"cannot create bridge {r['bridge']}: subnet {net} overlaps a route on the host ({clash[0]})")
            return self._make_bridge(r), True

    def _make_bridge(self, r: dict) -> int:
        from . import firewall, netlink

        with netlink.Netlink() as nl:
            index = nl.create_bridge(r["bridge"])
        self._configure_bridge(r, index)
        firewall.apply(self._rules(r))
        return index

    def _configure_bridge(self, r: dict, index: int) -> None:
        """A network's gateway addresses on its bridge, which is up (an address already there
        is no error)."""
        from . import netlink

        if not r["internal"]:
            _sysctl("net/ipv4/ip_forward", "1")  # egress needs forwarding on, as docker sets it
        with netlink.Netlink() as nl:
            if r["subnet6"]:
                _sysctl(f"net/ipv6/conf/{r['bridge']}/disable_ipv6", "0")
                if not r["internal"]:
                    _sysctl("net/ipv6/conf/all/forwarding", "1")  # as dockerd with IPv6 networks
            nl.batch([netlink.address_request(index, iface) for iface in _gateways(r)]
                     + [netlink.up_request(index, r["bridge"])])

    def _destroy_bridge(self, r: dict) -> None:
        from . import firewall, netlink

        if not r["bridge"]:
            return
        with netlink.Netlink() as nl:
            if ADOPTED not in json.loads(r["options"] or "{}"):
                nl.delete_link(r["bridge"])
            elif index := nl.link_index(r["bridge"]):  # the host's bridge stays, without our addresses
                nl.batch([netlink.address_request(index, iface, delete=True) for iface in _gateways(r)])
        # The rules go even when the device was already gone (a crash between the two, a device
        # deleted by hand); with nothing to delete this is a read of the ruleset (~0.5 ms).
        firewall.apply(self._rules(r), delete=True)

    @staticmethod
    def _rules(r: dict) -> list[tuple[str, str]]:
        from . import firewall

        opts = json.loads(r["options"])
        return firewall.network_rules(
            r["bridge"], r["subnet"], bool(r["internal"]), subnet6=r["subnet6"],
            icc=opts.get(ICC_OPTION, "true") == "true",
            masquerade=opts.get("com.docker.network.bridge.enable_ip_masquerade", "true") == "true")

    def netns_path(self, cid: str) -> Path:
        from ..runtime import run_dir

        return run_dir() / "netns" / cid[:32]

    # -- containers: create -------------------------------------------------------------------

    def plan(self, mode: str, aliases: list[str], want_ip: str, links: list[str], resolve_container,
             endpoint: dict | None = None) -> dict:
        """Validate a container's network options at create time; returns what to store.
        ``endpoint``: the rest of the API's EndpointSettings (``ip6``, ``links``, ``link_local``,
        ``driver_opts``, ``mac``)."""
        mode = mode or "default"
        endpoint = dict(endpoint or {})
        want_ip6 = endpoint.pop("ip6", "") or ""
        extra = endpoint_extra(endpoint)
        if mode.startswith("container:"):
            target = resolve_container(mode.split(":", 1)[1])
            if links:
                raise InvalidArgument("conflicting options: container type network can't be used with links. "
                                      "This would result in undefined behavior")
            if aliases:
                raise AliasError("network-scoped aliases are only supported for user-defined networks")
            if want_ip or want_ip6:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            return {"mode": f"container:{target}", "networks": []}
        if mode in ("host", "none"):
            if aliases:
                raise AliasError("network-scoped aliases are only supported for user-defined networks")
            if want_ip or want_ip6:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if links:
                raise InvalidArgument("conflicting options: host type networking can't be used with links. "
                                      "This would result in undefined behavior" if mode == "host"
                                      else "Conflicting options: --link cannot be used with --network none")
            return {"mode": mode, "networks": []}
        try:
            r = self.row("bridge" if mode == "default" else mode)
        except NetworkNotFound:
            if mode == "default":
                raise
            # as dockerd: the container is made and its start fails with "network X not found"
            # (a 404 at create would tell the docker CLI that the image is missing)
            return {"mode": mode, "networks": [{"id": mode, "aliases": aliases, "want_ip": want_ip,
                                                "want_ip6": want_ip6, "extra": extra}]}
        if r["driver"] != "bridge":
            raise InvalidArgument(f"network {mode} is not a bridge network")
        if r["name"] == "bridge":
            if want_ip or want_ip6:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if aliases:
                raise AliasError("network-scoped aliases are only supported for user-defined networks")
        if want_ip:
            try:
                ip = ipaddress.IPv4Address(want_ip)
            except ValueError:
                raise InvalidArgument(f"invalid IPv4 address: {want_ip}") from None
            if ip not in ipaddress.IPv4Network(r["subnet"]):
                raise InvalidArgument(f"Invalid address {want_ip}: It does not belong to any of this network's subnets")
        if want_ip6:
            try:
                ip6 = ipaddress.IPv6Address(want_ip6)
            except ValueError:
                raise InvalidArgument(f"invalid IPv6 address: {want_ip6}") from None
            # dockerd keeps an address of a network's configured IPv6 pool even while IPv6 is off
            # (and assigns none); one outside every pool is refused
            pools6 = [ipaddress.ip_network(c["Subnet"], strict=False)
                      for c in json.loads(r["ipam"] or "{}").get("Config") or [] if ":" in c.get("Subnet", "")]
            if not any(ip6 in p for p in pools6 + ([ipaddress.IPv6Network(r["subnet6"])] if r["subnet6"] else [])):
                raise InvalidArgument(f"Invalid address {want_ip6}: It does not belong to any of this network's subnets")
        return {"mode": mode if r["name"] != "bridge" or mode == "bridge" else "default",
                "networks": [{"id": r["id"], "aliases": aliases, "want_ip": want_ip, "want_ip6": want_ip6,
                              "extra": extra}]}

    def add_endpoints(self, db, cid: str, networks: list[dict]) -> None:
        from ..names import new_id

        for i, n in enumerate(networks):
            db.execute("INSERT OR REPLACE INTO endpoints (container, network, idx, want_ip, aliases, endpoint_id, "
                       "want_ip6, extra) VALUES (?,?,?,?,?,?,?,?)",
                       (cid, n["id"], i, n.get("want_ip", ""), json.dumps(n.get("aliases") or []), new_id(),
                        n.get("want_ip6", ""), json.dumps(n.get("extra") or {})))

    # -- containers: start ----------------------------------------------------------------------

    def endpoint_rows(self) -> dict[str, tuple]:
        """Every container's raw endpoint rows, in one query: what ``settings`` reads of this
        table, as a value that compares equal while nothing changed (the container list's cache
        keys on it)."""
        out: dict[str, list] = {}
        for row in self.store.db.execute("SELECT * FROM endpoints ORDER BY container, idx"):
            out.setdefault(row["container"], []).append(tuple(row))
        return {cid: tuple(rows) for cid, rows in out.items()}

    def endpoints(self, cid: str) -> list[dict]:
        rows = self.store.db.execute(
            "SELECT e.*, n.name AS net_name, n.subnet, n.gateway, n.bridge, n.internal, n.options AS net_options, "
            "n.subnet6, n.gateway6, n.ipam "
            "FROM endpoints e JOIN networks n ON n.id=e.network WHERE e.container=? ORDER BY e.idx", (cid,))
        return [dict(r) for r in rows]

    def setup(self, rec: dict, mode: str, ports: list[dict]) -> str | None:
        """Make the network namespace of a starting container; returns its path (None: the
        host's; "": a new one that the runtime makes, with its loopback up: ``--network none``)."""
        from . import netlink

        cid = rec["id"]
        if mode == "host":
            return None
        if mode.startswith("container:"):
            other = mode.split(":", 1)[1]
            row = self.store.db.execute("SELECT spec, state FROM containers WHERE id=?", (other,)).fetchone()
            if row is None:
                raise NotFound(f"No such container: {other}")
            if not json.loads(row["state"]).get("Running"):
                raise Conflict(f"cannot join network of a non running container: {other}")
            omode = json.loads(row["spec"])["HostConfig"].get("NetworkMode", "")
            if omode == "host":
                return None
            if omode.startswith("container:"):  # joined through a joiner: the first one's namespace
                other = omode.split(":", 1)[1]
                row = self.store.db.execute("SELECT spec, state FROM containers WHERE id=?", (other,)).fetchone()
                if row is None:
                    raise NotFound(f"No such container: {other}")
                omode = json.loads(row["spec"])["HostConfig"].get("NetworkMode", "")
            if omode == "none":  # the runtime made it: it is the process's
                return f"/proc/{json.loads(row['state']).get('Pid') or 0}/ns/net"
            return str(self.netns_path(other))
        gone = self.store.db.execute(
            "SELECT e.network FROM endpoints e LEFT JOIN networks n ON n.id=e.network WHERE e.container=? "
            "AND n.id IS NULL", (cid,)).fetchall()
        if gone:
            name = mode if mode not in ("default", "bridge") else gone[0][0]
            raise NetworkNotFound(f"network {name} not found")
        path = self.netns_path(cid)
        eps = self.endpoints(cid)
        if any(ep["ip"] or ep["rules"] != "[]" for ep in eps) or path.exists():
            self.teardown(cid, release=False)  # whatever a crashed start left
        if mode == "none" and not eps:
            # no bind mount of ours: a thousand of them doubled the host's mount table, which
            # every container's start copies and every exit tears down
            return ""
        if any(ep["idx"] != i for i, ep in enumerate(eps)):
            # a disconnect while stopped left a gap: eth<N> and the veth's name follow idx
            with self.store.transaction() as db:
                for i, ep in enumerate(eps):
                    db.execute("UPDATE endpoints SET idx=? WHERE container=? AND network=?", (i, cid, ep["network"]))
            eps = self.endpoints(cid)
        gw = gateway_endpoint(eps)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            inside, nsfd = netlink.new_netns(str(path))
            try:
                for i, ep in enumerate(eps):
                    self._connect_one(rec, ep, str(path), inside, i, ports if ep is gw else [], nsfd, gateway=ep is gw)
            finally:
                inside.close()
                os.close(nsfd)
        except BaseException:
            self.teardown(cid)
            raise
        return str(path)

    def _lease(self, ep: dict, cid: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv6Address | None]:
        """The endpoint's addresses: the one asked for, else the previous one, else the first
        free one of the pool's range (skipping the gateway and the auxiliary addresses)."""
        ipam = json.loads(ep.get("ipam") or "{}")
        with self.store.transaction() as db:
            used, used6 = set(), set()
            for a, b in db.execute("SELECT ip, ip6 FROM endpoints WHERE network=? AND ip != '' AND container != ?",
                                   (ep["network"], cid)):
                used.add(a)
                used6.add(b)
            prev = ep.get("ip") or (str(ipaddress.IPv4Address(bytes.fromhex(ep["mac"].replace(":", "")[4:])))
                                    if ep.get("mac") and ep["mac"].startswith("02:42:") else "")
            ip = choose(ep["net_name"], ep["subnet"], ep["gateway"], ipam.get("v4") or {}, ep["want_ip"], prev, used)
            ip6 = None
            if ep.get("subnet6"):
                ip6 = choose(ep["net_name"], ep["subnet6"], ep["gateway6"], ipam.get("v6") or {}, ep["want_ip6"],
                              ep.get("ip6") or "", used6)
            from .netlink import mac_for, mac_text

            extra = json.loads(ep.get("extra") or "{}")
            db.execute("UPDATE endpoints SET ip=?, ip6=?, mac=? WHERE container=? AND network=?",
                       (str(ip), str(ip6) if ip6 else "", extra.get("mac") or mac_text(mac_for(ip)), cid, ep["network"]))
        return ip, ip6

    def _connect_one(self, rec: dict, ep: dict, path: str, inside, i: int, ports: list[dict], nsfd: int = -1,
                     gateway: bool = False) -> None:
        """One endpoint's veth pair, addresses and routes; ``inside`` works in the container's
        namespace, ``nsfd`` refers to it (-1: opened from ``path``).  The ``gateway`` endpoint
        (:func:`gateway_endpoint`) also gets the default routes and publishes ``ports``."""
        from . import netlink

        cid = rec["id"]
        host_if = _veth_name(cid, i)
        with self._lock():  # one root's bridge, leases and veths change one container at a time
            master, made = self._bridge(self.row(ep["network"]))
            if made:  # the default bridge may have moved to a free subnet
                ep = next(e for e in self.endpoints(cid) if e["network"] == ep["network"])
            ip, ip6 = self._lease(ep, cid)
            mac = json.loads(ep.get("extra") or "{}").get("mac")
            peer_mac = bytes.fromhex(mac.replace(":", "")) if mac else netlink.mac_for(ip)
            fd = nsfd if nsfd >= 0 else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                with netlink.Netlink() as nl:
                    for attempt in range(3):
                        try:
                            nl.create_veth(host_if, f"eth{i}", fd, master, peer_mac=peer_mac, mtu=_mtu(ep))
                            break
                        except netlink.NetlinkError as exc:
                            # A crashed start's, or an exit's not yet reaped: the kernel may
                            # still be destroying the previous run's namespace (and the veth in
                            # it) when a restart comes at once.  A fresh container's name is
                            # new: this costs nothing then.  One we find is deleted (that is
                            # synchronous); one that is going already is waited for (its
                            # RTM_DELLINK event, a 5 s deadline).
                            if exc.errno != errno.EEXIST or attempt == 2:
                                raise
                            if not nl.delete_link(host_if):
                                netlink.wait_link_gone(host_if, 5.0)
            finally:
                if fd != nsfd:
                    os.close(fd)
        prefix = ipaddress.IPv4Network(ep["subnet"]).prefixlen
        index = inside.link_index(f"eth{i}")
        if ip6 is not None:
            with netlink.entered(path):
                _sysctl(f"net/ipv6/conf/eth{i}/disable_ipv6", "0")
        # addresses, up, default routes: one send, acknowledged together
        reqs = [netlink.address_request(index, ipaddress.IPv4Interface(f"{ip}/{prefix}"))]
        if ip6 is not None:
            reqs.append(netlink.address_request(
                index, ipaddress.IPv6Interface(f"{ip6}/{ipaddress.IPv6Network(ep['subnet6']).prefixlen}")))
        for ll in json.loads(ep.get("extra") or "{}").get("link_local") or []:  # as dockerd: 169.254/16, fe80::/64
            a = ipaddress.ip_address(ll)
            reqs.append(netlink.address_request(index, ipaddress.ip_interface(f"{a}/{16 if a.version == 4 else 64}")))
        reqs.append(netlink.up_request(index, f"eth{i}"))
        if gateway:
            reqs += _default_routes(ep, index, ip6 is not None)
        inside.batch(reqs)
        if ports:
            self._publish(rec, dict(ep, ip=str(ip), ip6=str(ip6) if ip6 else ""),
                          self._bind_ports(rec, ports, _host_binding(ep)))

    def _publish(self, rec: dict, ep: dict, bindings: list[dict]) -> None:
        """DNAT the host ports of ``bindings`` to the endpoint's addresses; stored with it."""
        from . import firewall

        rules = firewall.port_rules(ep["bridge"], ep["ip"], bindings, ep["ip6"])
        with self.store.transaction() as db:
            db.execute("UPDATE endpoints SET ports=?, rules=? WHERE container=? AND network=?",
                       (json.dumps(bindings), json.dumps(rules), rec["id"], ep["network"]))
        firewall.apply(rules)

    def _unpublish(self, cid: str, ep: dict) -> None:
        from . import firewall

        if ep["rules"] != "[]":
            firewall.apply([tuple(r) for r in json.loads(ep["rules"])], delete=True)
            with self.store.transaction() as db:
                db.execute("UPDATE endpoints SET ports='[]', rules='[]' WHERE container=? AND network=?",
                           (cid, ep["network"]))

    def _move_gateway(self, rec: dict, old: dict | None, new: dict | None) -> None:
        """A running container's default routes and published ports go from endpoint ``old``
        to ``new`` (either may be None: no gateway), as dockerd moves them when a connect or a
        disconnect changes which endpoint is the gateway.  The host ports stay the same; a
        container that had none (only internal networks) binds its -p/-P ports now."""
        from . import netlink

        cid = rec["id"]
        bindings = json.loads(old["ports"]) if old else None
        if old is not None:
            self._unpublish(cid, old)
        with netlink.in_netns(str(self.netns_path(cid))) as inside:
            reqs = [netlink.no_default_route_request(socket.AF_INET), netlink.no_default_route_request(socket.AF_INET6)]
            if new is not None:
                reqs += _default_routes(new, inside.link_index(f"eth{new['idx']}"), bool(new["ip6"]))
            inside.batch(reqs)
        if new is not None:
            if bindings is None:
                bindings = self._bind_ports(rec, wanted_ports(rec["spec"]), _host_binding(new))
            if bindings:
                self._publish(rec, new, bindings)

    def _bind_ports(self, rec: dict, ports: list[dict], default_ip: str = "0.0.0.0") -> list[dict]:
        """Host ports for the container's -p/-P: checked free (ours and the host's), random
        ones picked by the kernel; a port given without a host address binds ``default_ip``."""
        from ... import rootless

        cid = rec["id"]
        ours = {}
        for r in self.store.db.execute("SELECT container, ports FROM endpoints WHERE ports != '[]' AND container != ?", (cid,)):
            for b in json.loads(r[1]):
                ours[(b["proto"], b["host_port"])] = b
        out = []
        for p in ports:
            host_ip = p["host_ip"] or default_ip
            host_port = p["host_port"]
            if host_port:
                other = ours.get((p["proto"], host_port))
                if other and (other["host_ip"] in ("", "0.0.0.0") or host_ip in ("0.0.0.0", other["host_ip"])):
                    raise Conflict(f"driver failed programming external connectivity on endpoint {rec['name']} "
                                   f"({cid}): Bind for {host_ip}:{host_port} failed: port is already allocated")
            v6 = ":" in host_ip
            try:
                # (a socket of the kind the proxy listens with, to check the port free or have
                # the kernel pick one)
                s = rootless.host_socket(p["proto"], host_ip, int(host_port or 0), listen=False)
            except OSError as exc:
                raise Conflict(f"driver failed programming external connectivity on endpoint {rec['name']} "
                               f"({cid}): Error starting userland proxy: listen {p['proto']}{6 if v6 else 4} "
                               f"{f'[{host_ip}]' if v6 else host_ip}:{host_port}: "
                               f"bind: {exc.strerror.lower() if exc.strerror else exc}") from None
            with s:
                port = s.getsockname()[1]
            b = dict(p, host_ip=host_ip, host_port=str(port))
            ours[(p["proto"], str(port))] = b
            out.append(b)
        return out

    def teardown(self, cid: str, release: bool = True, eps: list[dict] | None = None) -> None:
        """Undo :meth:`setup`: rules, veths, the namespace; release the addresses.  Does no
        kernel work when there is nothing to undo (it runs at exit and again at rm).  ``eps``:
        the container's :meth:`endpoints`, if the caller has just read them."""
        from . import firewall, netlink

        if eps is None:
            eps = self.endpoints(cid)
        leased = any(ep["ip"] for ep in eps)
        rules = [tuple(r) for ep in eps for r in json.loads(ep["rules"])]
        if rules:
            firewall.apply(rules, delete=True)
        path = str(self.netns_path(cid))
        if release and os.path.exists(path):
            # Unbinding the namespace is enough: with no process, mount or socket left in it the
            # kernel destroys it, and the veth pair with it, off our path (deleting the veth here
            # costs ~15 ms of synchronous RCU waits on every container exit).
            netlink.remove_netns(path)
        elif os.path.exists(path) or leased:  # a crashed start's leftovers: remove them by name
            with netlink.Netlink() as nl:
                for i in range(len(eps) or 1):
                    nl.delete_link(_veth_name(cid, i))
            netlink.remove_netns(path)
        if release and (leased or rules):
            with self.store.transaction() as db:
                db.execute("UPDATE endpoints SET ip='', ip6='', ports='[]', rules='[]' WHERE container=?", (cid,))
        elif rules:
            with self.store.transaction() as db:
                db.execute("UPDATE endpoints SET ports='[]', rules='[]' WHERE container=?", (cid,))
        if release and leased and any(ep["net_name"] == "bridge" for ep in eps):
            self._gc_default_bridge()

    def _gc_default_bridge(self) -> None:
        """A private root's default bridge goes when its last container does (so tests and
        throw-away roots leave no device behind); the host root's stays, as docker0 does."""
        if KEEP_DEFAULT_BRIDGE or self._default_bridge_name() == "dockyard0":
            return
        self.release_default_bridge()

    def release_default_bridge(self) -> None:
        """Remove a private root's default bridge (and its rules) if no container is on it."""
        if self._default_bridge_name() == "dockyard0":
            return
        r = self.row("bridge")
        with self._lock():
            busy = self.store.db.execute("SELECT 1 FROM endpoints WHERE network=? AND ip != '' LIMIT 1",
                                         (r["id"],)).fetchone()
            if not busy:
                self._destroy_bridge(r)

    def forget(self, cid: str) -> None:
        """The container is removed: its endpoints go too."""
        self.teardown(cid)
        with self.store.transaction() as db:
            db.execute("DELETE FROM endpoints WHERE container=?", (cid,))

    # -- connect / disconnect -------------------------------------------------------------------

    def connect(self, rec: dict, ref: str, aliases: list[str], want_ip: str = "", endpoint: dict | None = None) -> None:
        """Connect a container; ``endpoint`` as for :meth:`plan` (``ip6``, ``links``, ...)."""
        r = self.row(ref)
        cid = rec["id"]
        mode = rec["spec"]["HostConfig"].get("NetworkMode", "")
        if r["driver"] != "bridge" or mode in ("host", "none") or mode.startswith("container:"):
            raise Conflict("container cannot be disconnected from host network or connected to host network"
                           if mode == "host" or r["name"] == "host" else
                           "container sharing network namespace with another container or host cannot be connected "
                           "to any other network" if mode.startswith("container:") else
                           "container cannot be connected to multiple networks with one of the networks in private (none) mode")
        if self.store.db.execute("SELECT 1 FROM endpoints WHERE container=? AND network=?", (cid, r["id"])).fetchone():
            raise Conflict(f"endpoint with name {rec['name']} already exists in network {r['name']}")
        plan = self.plan(r["name"], aliases, want_ip, [], None, endpoint)
        idx = max([e["idx"] for e in self.endpoints(cid)] + [-1]) + 1
        from ..names import new_id

        n = plan["networks"][0]
        with self.store.transaction() as db:
            db.execute("INSERT INTO endpoints (container, network, idx, want_ip, aliases, endpoint_id, want_ip6, extra) "
                       "VALUES (?,?,?,?,?,?,?,?)", (cid, r["id"], idx, want_ip, json.dumps(n["aliases"]), new_id(),
                                                     n["want_ip6"], json.dumps(n["extra"])))
        if rec["state"].get("Running"):
            from . import netlink

            path = str(self.netns_path(cid))
            eps = self.endpoints(cid)
            before = gateway_endpoint([e for e in eps if e["network"] != r["id"]])
            ep = next(e for e in eps if e["network"] == r["id"])
            try:
                with netlink.in_netns(path) as inside:
                    self._connect_one(rec, ep, path, inside, idx, [])
                if gateway_endpoint(eps) is ep:  # the new network is the better gateway
                    self._move_gateway(rec, before, next(e for e in self.endpoints(cid) if e["network"] == r["id"]))
            except BaseException:
                with contextlib.suppress(Exception):
                    self.disconnect(rec, r["id"])  # its veth; the gateway back where it was
                with self.store.transaction() as db:
                    db.execute("DELETE FROM endpoints WHERE container=? AND network=?", (cid, r["id"]))
                raise
            self.notify_dns()

    def disconnect(self, rec: dict, ref: str, force: bool = False) -> None:
        from . import netlink

        r = self.row(ref)
        cid = rec["id"]
        eps = self.endpoints(cid)
        ep = next((e for e in eps if e["network"] == r["id"]), None)
        if ep is None:  # with force too: force only reaches endpoints of containers that are gone
            raise Conflict(f"container {cid} is not connected to network {r['name']}")
        if ep["ip"] and rec["state"].get("Running") and gateway_endpoint(eps) is ep:
            # its default routes and published ports go to the next best endpoint, if any
            self._move_gateway(rec, ep, gateway_endpoint([e for e in eps if e is not ep]))
        else:
            self._unpublish(cid, ep)
        if ep["ip"]:
            with netlink.Netlink() as nl:
                nl.delete_link(_veth_name(cid, ep["idx"]))
        with self.store.transaction() as db:
            db.execute("DELETE FROM endpoints WHERE container=? AND network=?", (cid, r["id"]))
        if ep["ip"]:
            from . import dns

            dns.sync(self.store.root, spawn=False, timeout=1.0)  # its DNS socket, if it was the last user network

    def disconnect_gone(self, ref: str, name: str) -> None:
        """``disconnect --force`` of a container that no longer exists: its endpoints on the
        network, if any are left, go (dockerd's clean-up of a stale endpoint)."""
        r = self.row(ref)
        with self.store.transaction() as db:
            gone = db.execute("DELETE FROM endpoints WHERE network=? AND (container=? OR container LIKE ?) AND "
                              "container NOT IN (SELECT id FROM containers)", (r["id"], name, name + "%")).rowcount
        if not gone:
            raise NotFound(f"endpoint {name} not found")

    # -- what a container sees ------------------------------------------------------------------

    def hosts_file(self, rec: dict, mode: str, extra_hosts: list[str], links: list[str]) -> str:
        cfg = rec["spec"]["Config"]
        if mode == "host":
            try:
                return Path("/etc/hosts").read_text()
            except OSError:
                pass
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
                 "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
        for h in extra_hosts:
            name, _, ip = h.partition(":")
            lines.append(f"{self.host_gateway() if ip == 'host-gateway' else ip}\t{name}")
        for link in links:
            target, alias = split_link(link)
            row = self.store.db.execute("SELECT id, name FROM containers WHERE name=?", (target,)).fetchone()
            if row is None:
                continue
            ip = self._bridge_ip(row["id"])
            if ip:  # docker: alias, short ID, name (the name left out when it is the alias)
                names = [alias, row["id"][:12]] + ([row["name"]] if row["name"] != alias else [])
                lines.append(f"{ip}\t{' '.join(names)}")
                ip6 = self._bridge_ip(row["id"], "ip6")
                if ip6:
                    lines.append(f"{ip6}\t{' '.join(names)}")
        eps = [e for e in self.endpoints(rec["id"]) if e["ip"]]
        if eps:
            hostname = cfg["Hostname"]
            full = f"{hostname}.{cfg['Domainname']} {hostname}" if cfg.get("Domainname") else hostname
            lines.append(f"{eps[0]['ip']}\t{full}")
            if eps[0]["ip6"]:
                lines.append(f"{eps[0]['ip6']}\t{full}")
        return "\n".join(lines) + "\n"

    def host_gateway(self) -> str:
        """What ``--add-host NAME:host-gateway`` maps NAME to: as dockerd's default, the host's
        address on the default bridge (made now if it is not there), which every container with
        a default route reaches."""
        with self._lock():
            self._ensure_bridge(self.row("bridge"))
        return self.row("bridge")["gateway"]  # (read again: the bridge may have moved when made)

    def _bridge_ip(self, cid: str, column: str = "ip") -> str:
        r = self.store.db.execute(
            f"SELECT e.{'ip6' if column == 'ip6' else 'ip'} FROM endpoints e JOIN networks n ON n.id=e.network "
            "WHERE e.container=? AND n.name='bridge'", (cid,)).fetchone()
        return r[0] if r else ""

    def link_env(self, rec: dict, links: list[str]) -> list[str]:
        """Docker's legacy link variables for each ``--link`` target (which must be running).
        On a user-defined network a link is only a DNS alias (dns.py), as in docker."""
        env: list[str] = []
        if not any(ep["net_name"] == "bridge" for ep in self.endpoints(rec["id"])):
            return env
        for link in links:
            target, alias = split_link(link)
            row = self.store.db.execute("SELECT id, name, spec, state FROM containers WHERE name=?", (target,)).fetchone()
            if row is None or not json.loads(row["state"]).get("Running"):
                raise Conflict(f"Cannot link to a non running container: /{target} AS /{rec['name']}/{alias}")
            ip = self._bridge_ip(row["id"])
            if not ip:
                raise Conflict(f"Cannot link to /{target}, as it does not belong to the default network")
            spec = json.loads(row["spec"])
            env += link_variables(alias, f"/{rec['name']}/{alias}", ip, list((spec["Config"].get("ExposedPorts") or {})),
                                  spec["Config"].get("Env") or [])
        return env

    def linked_from(self, name: str) -> list[str]:
        """IDs of running containers that link to the container called ``name``."""
        # this runs at every start: the partial index containers_linking (store.py) holds the
        # containers with links, so neither Python nor SQLite reads every record's JSON
        rows = self.store.db.execute(
            "SELECT c.id, l.value FROM containers c INDEXED BY containers_linking, "
            "json_each(c.spec, '$.HostConfig.Links') l "
            "WHERE json_array_length(c.spec, '$.HostConfig.Links') > 0 "
            "AND json_extract(c.state, '$.Running') AND l.type = 'text'")
        out: list[str] = []
        for cid, link in rows:
            if split_link(link)[0] == name and cid not in out:
                out.append(cid)
        return out

    def settings(self, rec: dict) -> dict:
        """inspect's NetworkSettings."""
        cid = rec["id"]
        mode = rec["spec"]["HostConfig"].get("NetworkMode", "")
        eps = self.endpoints(cid)
        running = rec["state"].get("Running")
        ports: dict = {}
        if running and mode not in ("host", "none") and not mode.startswith("container:") and gateway_endpoint(eps):
            for p in rec["spec"]["Config"].get("ExposedPorts") or {}:
                ports[p] = None
            for ep in eps:
                for b in json.loads(ep["ports"]):
                    key = f"{b['port']}/{b['proto']}"
                    ports[key] = (ports.get(key) or []) + [{"HostIp": b["host_ip"], "HostPort": b["host_port"]}]
                    if b["host_ip"] in ("", "0.0.0.0") and host_has_ipv6():
                        # its [::] twin, as dockerd 20.10: DNATed to the container's IPv6 address
                        # (firewall.port_rules), else relayed by the proxy (dns.py)
                        ports[key].append({"HostIp": "::", "HostPort": b["host_port"]})
        networks = {}
        top = {"EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
               "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": ""}
        if mode in ("host", "none"):
            nrow = self.row(mode)
            networks[mode] = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": nrow["id"],
                              "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                              "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}
        for ep in eps:
            on = bool(ep["ip"]) and running
            prefix = ipaddress.IPv4Network(ep["subnet"]).prefixlen
            aliases = json.loads(ep["aliases"])
            extra = json.loads(ep.get("extra") or "{}")
            if ep["net_name"] != "bridge":
                aliases = aliases + [cid[:12]]
            ipam_cfg = {k: v for k, v in (("IPv4Address", ep["want_ip"]), ("IPv6Address", ep["want_ip6"]),
                                          ("LinkLocalIPs", extra.get("link_local"))) if v}
            host_links = rec["spec"]["HostConfig"].get("Links") or []
            links = ([f"{split_link(l)[0]}:{split_link(l)[1]}" for l in host_links]
                     if ep["net_name"] == "bridge" and host_links else []) + (extra.get("links") or [])
            on6 = on and bool(ep["ip6"])
            entry = {"IPAMConfig": ipam_cfg or None, "Links": links or None,
                     "Aliases": aliases or None, "NetworkID": ep["network"],
                     "EndpointID": ep["endpoint_id"] if on else "", "Gateway": ep["gateway"] if on else "",
                     "IPAddress": ep["ip"] if on else "", "IPPrefixLen": prefix if on else 0,
                     "IPv6Gateway": ep["gateway6"] if on6 else "",
                     "GlobalIPv6Address": ep["ip6"] if on6 else "",
                     "GlobalIPv6PrefixLen": ipaddress.IPv6Network(ep["subnet6"]).prefixlen if on6 else 0,
                     "MacAddress": ep["mac"] if on else extra.get("mac", ""),
                     "DriverOpts": extra.get("driver_opts") or None}
            networks[ep["net_name"]] = entry
            if ep["net_name"] == "bridge" and on:
                top = {k: entry[k] for k in top}
        sandbox = ""
        if running and mode == "none":
            sandbox = f"/proc/{rec['state'].get('Pid') or 0}/ns/net"  # (made by the runtime)
        elif running and mode != "host" and not mode.startswith("container:"):
            sandbox = str(self.netns_path(cid))
        return {"Bridge": "", "SandboxID": hashlib.sha256(cid.encode()).hexdigest() if sandbox else "",
                "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
                "SandboxKey": sandbox, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, **top,
                "Networks": networks}

    # -- embedded DNS ---------------------------------------------------------------------------

    def needs_dns(self, cid: str) -> bool:
        return self.store.db.execute(
            "SELECT 1 FROM endpoints e JOIN networks n ON n.id=e.network WHERE e.container=? AND n.name != 'bridge' "
            "LIMIT 1", (cid,)).fetchone() is not None

    def notify_dns(self) -> None:
        from . import dns

        dns.sync(self.store.root)


def _gateways(r: dict) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """The addresses a network's bridge has: its gateways, with their subnets' prefixes."""
    out: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = [
        ipaddress.IPv4Interface(f"{r['gateway']}/{ipaddress.IPv4Network(r['subnet']).prefixlen}")]
    if r["subnet6"]:
        out.append(ipaddress.IPv6Interface(f"{r['gateway6']}/{ipaddress.IPv6Network(r['subnet6']).prefixlen}"))
    return out


def _bridge_option(options: dict[str, str]) -> str:
    """The bridge device a network asks for by name (``com.docker.network.bridge.name``), checked
    as the kernel checks a link's name; "" for none (dockyard names it)."""
    name = options.get(BRIDGE_NAME_OPTION, "")
    if not name:
        return ""
    if len(name.encode()) > 15:
        raise InvalidArgument("failed to check bridge interface existence: numerical result out of range")
    if name in (".", "..") or re.search(r"[\s/:*]", name):  # (dockerd: the kernel's EINVAL)
        raise InvalidArgument(f"invalid bridge name {name!r}: none of ' ', '/', ':', '*'")
    return name


def gateway_endpoint(eps: list[dict]) -> dict | None:
    """The endpoint that gives a container its default routes and publishes its ports: as
    dockerd orders them, the first that is not on an internal network, dual-stack before
    IPv4-only, then by network name.  None: every network is internal (dockerd 25 and later
    give such a container no default route and publish none of its ports)."""
    outside = [ep for ep in eps if not ep["internal"]]
    return min(outside, key=lambda ep: (not ep["subnet6"], ep["net_name"]), default=None)


def _mtu(ep: dict) -> int:
    """The MTU of an endpoint's veth pair: its network's ``com.docker.network.driver.mtu``."""
    return int(json.loads(ep.get("net_options") or "{}").get(MTU_OPTION) or 1500)


def _host_binding(ep: dict) -> str:
    """The host address of an endpoint's ports published without one: its network's
    ``com.docker.network.bridge.host_binding_ipv4`` (as dockerd's), else every address."""
    return json.loads(ep.get("net_options") or "{}").get(HOST_BINDING_OPTION) or "0.0.0.0"


def _default_routes(ep: dict, index: int, v6: bool) -> list[tuple]:
    from . import netlink

    reqs = [netlink.default_route_request(ipaddress.IPv4Address(ep["gateway"]), index)]
    if v6:
        reqs.append(netlink.default_route_request(ipaddress.IPv6Address(ep["gateway6"]), index))
    return reqs


def wanted_ports(spec: dict) -> list[dict]:
    """A container's ports to publish: its -p bindings, and with -P every exposed port that
    has none."""
    ports = list(spec.get("_Ports") or [])
    if spec["HostConfig"].get("PublishAllPorts"):
        have = {(b["port"], b["proto"]) for b in ports}
        for key in (spec["Config"].get("ExposedPorts") or {}):
            num, _, proto = key.partition("/")
            if (int(num), proto or "tcp") not in have:
                ports.append({"proto": proto or "tcp", "host_ip": "", "host_port": "", "port": int(num)})
    return ports


def _veth_name(cid: str, i: int) -> str:
    return f"dyv{cid[:10]}{i:02x}"


@contextlib.contextmanager
def _host_lock():
    """Host-wide: choosing a subnet and making its bridge is atomic across roots.  A rootless
    daemon's bridges are in a network namespace of its own: its run directory is enough."""
    from ... import rootless

    if rootless.active():
        from ..runtime import run_dir

        base = str(run_dir())
    else:
        base = "/run/lock" if os.path.isdir("/run/lock") else "/tmp"
    fd = os.open(f"{base}/dockyard-net.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def host_has_ipv6() -> bool:
    return os.path.exists("/proc/net/if_inet6")


def _sysctl(key: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)
    except OSError:
        pass
