"""What users write about networks, parsed as docker's CLI parses it: ``-p``/``--publish`` specs,
``--link`` values, and the environment variables a link gives the container."""

from __future__ import annotations

import ipaddress

from ...errors import InvalidArgument


class PublishError(InvalidArgument):
    """A malformed -p: docker's CLI reports these itself."""

    client_side = True


def split_link(link: str) -> tuple[str, str]:
    """"/db:/web/dbapp" (stored) or "db:dbapp" / "db" (given) -> ("db", "dbapp")."""
    target, _, alias = link.partition(":")
    target = target.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else target
    return target, alias


def parse_link(value: str) -> tuple[str, str]:
    target, _, alias = value.partition(":")
    if not target or (":" in value and not alias):
        raise InvalidArgument(f"invalid argument \"{value}\" for \"--link\" flag: bad format for links: {value}")
    return target.lstrip("/"), alias or target.lstrip("/")


def parse_range(text: str, what: str) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if dash else a
    except ValueError:
        raise PublishError(f"invalid {what}: {text}") from None
    if not (0 < a <= 65535 and 0 < b <= 65535) or b < a:
        raise PublishError(f"invalid {what}: {text}")
    return a, b


def parse_publish(spec: str) -> list[dict]:
    """``-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`` (ranges allowed) -> bindings."""
    rest, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise PublishError(f"invalid proto: {proto}")
    if proto == "sctp":
        raise PublishError("sctp is not supported by dockyard")
    host_ip, host_port, cport = "", "", ""
    if rest.startswith("["):  # [IPv6]:HOSTPORT:CONTAINERPORT
        addr, close, tail = rest[1:].partition("]")
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            raise PublishError(f"invalid IP address: {addr}") from None
        if not close or not tail.startswith(":") or tail.count(":") != 2:
            raise PublishError(f"invalid publish spec: {spec}")
        parts = [addr] + tail[1:].split(":")
    else:
        parts = rest.rsplit(":", 2)
    if len(parts) == 1:
        cport = parts[0]
    elif len(parts) == 2:
        host_port, cport = parts
    else:
        host_ip, host_port, cport = parts
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise PublishError(f"invalid IP address: {host_ip}") from None
    if not cport:
        raise PublishError(f"no port specified: {spec}<empty>")
    c0, c1 = parse_range(cport, "containerPort")
    if host_port:
        h0, h1 = parse_range(host_port, "hostPort")
        if h1 - h0 != c1 - c0:
            if h0 != h1 and c0 == c1:
                pass  # docker: a host range for one container port (first free)
            else:
                raise PublishError(f"invalid ranges specified for container and host Ports: {cport} and {host_port}")
        if c0 == c1 and h0 != h1:
            return [{"proto": proto, "host_ip": host_ip, "host_port": str(h0), "port": c0}]
        return [{"proto": proto, "host_ip": host_ip, "host_port": str(h0 + i), "port": c0 + i} for i in range(c1 - c0 + 1)]
    return [{"proto": proto, "host_ip": host_ip, "host_port": "", "port": p} for p in range(c0, c1 + 1)]


def link_variables(alias: str, name: str, ip: str, exposed: list[str], env: list[str]) -> list[str]:
    """What docker's legacy links put in the environment for one link."""
    prefix = alias.upper().replace("-", "_")
    ports = []
    for p in exposed:
        num, _, proto = p.partition("/")
        ports.append((int(num), proto or "tcp"))
    ports.sort(key=lambda x: (x[0], x[1] != "tcp"))
    out = []
    if ports:
        out.append(f"{prefix}_PORT={ports[0][1]}://{ip}:{ports[0][0]}")
    i = 0
    while i < len(ports):
        j = i
        while j + 1 < len(ports) and ports[j + 1][0] == ports[j][0] + 1:
            j += 1
        if j > i:
            (p, proto), (q, qproto) = ports[i], ports[j]
            key = f"{prefix}_PORT_{p}_{proto.upper()}"
            out += [f"{key}_START={proto}://{ip}:{p}", f"{key}_ADDR={ip}", f"{key}_PROTO={proto}",
                    f"{key}_PORT_START={p}", f"{key}_END={qproto}://{ip}:{q}", f"{key}_PORT_END={q}"]
            i = j + 1
        else:
            i += 1
    for p, proto in ports:
        key = f"{prefix}_PORT_{p}_{proto.upper()}"
        out += [f"{key}={proto}://{ip}:{p}", f"{key}_ADDR={ip}", f"{key}_PORT={p}", f"{key}_PROTO={proto}"]
    out.append(f"{prefix}_NAME={name}")
    for e in env:
        k, eq, v = e.partition("=")
        if eq and k not in ("HOME", "PATH"):
            out.append(f"{prefix}_ENV_{k}={v}")
    return out


def endpoint_extra(endpoint: dict) -> dict:
    """The EndpointSettings dockyard keeps beside the addresses, checked."""
    extra = {}
    links = [l if ":" in l else f"{l}:{l}" for l in endpoint.get("links") or []]
    if links:
        extra["links"] = links
    lls = list(endpoint.get("link_local") or [])
    for a in lls:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise InvalidArgument(f"invalid link-local IP address: {a}") from None
    if lls:
        extra["link_local"] = lls
    if endpoint.get("driver_opts"):
        extra["driver_opts"] = dict(endpoint["driver_opts"])
    mac = endpoint.get("mac") or ""
    if mac:
        try:
            raw = bytes.fromhex(mac.replace(":", ""))
        except ValueError:
            raw = b""
        if len(raw) != 6 or len(mac) != 17:
            raise InvalidArgument(f"{mac} is not a valid mac address")
        extra["mac"] = mac.lower()
    return extra
