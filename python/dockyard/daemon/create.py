"""Docker's ContainerCreate body (``Config`` + ``HostConfig`` + ``NetworkingConfig``) to the
engine's :class:`~dockyard.engine.containers.CreateOptions`, with the Engine API's validation:
a field Docker does not know is a 400, a known field of the wrong type is a 400."""

from __future__ import annotations

from ..errors import InvalidArgument

# field -> expected JSON type(s); None allowed everywhere (Go's zero value)
_STR, _BOOL, _INT, _LIST, _DICT = (str,), (bool,), (int,), (list,), (dict,)
CONFIG_FIELDS = {
    "Hostname": _STR, "Domainname": _STR, "User": _STR, "AttachStdin": _BOOL, "AttachStdout": _BOOL,
    "AttachStderr": _BOOL, "ExposedPorts": _DICT, "Tty": _BOOL, "OpenStdin": _BOOL, "StdinOnce": _BOOL,
    "Env": _LIST, "Cmd": (list, str), "Healthcheck": _DICT, "ArgsEscaped": _BOOL, "Image": _STR,
    "Volumes": _DICT, "WorkingDir": _STR, "Entrypoint": (list, str), "NetworkDisabled": _BOOL,
    "MacAddress": _STR, "OnBuild": _LIST, "Labels": _DICT, "StopSignal": _STR, "StopTimeout": _INT,
    "Shell": _LIST,
}
HOST_FIELDS = {
    "Binds": _LIST, "ContainerIDFile": _STR, "LogConfig": _DICT, "NetworkMode": _STR, "PortBindings": _DICT,
    "RestartPolicy": _DICT, "AutoRemove": _BOOL, "VolumeDriver": _STR, "VolumesFrom": _LIST,
    "ConsoleSize": _LIST, "Annotations": _DICT, "CapAdd": _LIST, "CapDrop": _LIST, "CgroupnsMode": _STR,
    "Dns": _LIST, "DnsOptions": _LIST, "DnsSearch": _LIST, "ExtraHosts": _LIST, "GroupAdd": _LIST,
    "IpcMode": _STR, "Cgroup": _STR, "Links": _LIST, "OomScoreAdj": _INT, "PidMode": _STR,
    "Privileged": _BOOL, "PublishAllPorts": _BOOL, "ReadonlyRootfs": _BOOL, "SecurityOpt": _LIST,
    "StorageOpt": _DICT, "Tmpfs": _DICT, "UTSMode": _STR, "UsernsMode": _STR, "ShmSize": _INT,
    "Sysctls": _DICT, "Runtime": _STR, "Isolation": _STR, "CpuShares": _INT, "Memory": _INT,
    "NanoCpus": _INT, "CgroupParent": _STR, "BlkioWeight": _INT, "BlkioWeightDevice": _LIST,
    "BlkioDeviceReadBps": _LIST, "BlkioDeviceWriteBps": _LIST, "BlkioDeviceReadIOps": _LIST,
    "BlkioDeviceWriteIOps": _LIST, "CpuPeriod": _INT, "CpuQuota": _INT, "CpuRealtimePeriod": _INT,
    "CpuRealtimeRuntime": _INT, "CpusetCpus": _STR, "CpusetMems": _STR, "Devices": _LIST,
    "DeviceCgroupRules": _LIST, "DeviceRequests": _LIST, "KernelMemory": _INT, "KernelMemoryTCP": _INT,
    "MemoryReservation": _INT, "MemorySwap": _INT, "MemorySwappiness": _INT, "OomKillDisable": _BOOL,
    "PidsLimit": _INT, "Ulimits": _LIST, "CpuCount": _INT, "CpuPercent": _INT, "IOMaximumIOps": _INT,
    "IOMaximumBandwidth": _INT, "Mounts": _LIST, "MaskedPaths": _LIST, "ReadonlyPaths": _LIST,
    "Init": _BOOL,
}
BODY_FIELDS = {"HostConfig": _DICT, "NetworkingConfig": _DICT, **CONFIG_FIELDS}


def _check(obj: dict, fields: dict, where: str) -> None:
    for key, value in obj.items():
        if key not in fields:
            raise InvalidArgument(f"json: unknown field {key!r} in {where}")
        types = fields[key]
        if value is None:
            continue
        if types == _INT and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidArgument(f"json: cannot unmarshal {_jtype(value)} into field {where}.{key} of type integer")
        if not isinstance(value, types) or (types != _BOOL and isinstance(value, bool) and bool not in types):
            raise InvalidArgument(f"json: cannot unmarshal {_jtype(value)} into field {where}.{key} of type "
                                  f"{'/'.join(_TNAME[t] for t in types)}")


_TNAME = {str: "string", bool: "bool", int: "integer", list: "array", dict: "object"}


def _jtype(value: object) -> str:
    return {str: "string", bool: "bool", int: "number", float: "number", list: "array",
            dict: "object"}.get(type(value), "value")


def _strlist(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"json: {what} must be a list of strings")
    return list(value)


def options_from_body(body: object, name: str = ""):  # noqa: ANN201, C901
    from ..engine.containers import CreateOptions
    from ..engine.spec import Resources, parse_ulimit

    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON in request body: expected an object")
    _check(body, BODY_FIELDS, "ContainerConfig")
    host = body.get("HostConfig") or {}
    _check(host, HOST_FIELDS, "HostConfig")
    net_cfg = body.get("NetworkingConfig") or {}
    image = body.get("Image") or ""
    if not image:
        raise InvalidArgument("config cannot be empty in order to create a container" if not body
                              else "no image specified")
    for key in ("Env", "OnBuild", "Shell"):
        _strlist(body.get(key), key)
    labels = body.get("Labels") or {}
    if not all(isinstance(v, str) for v in labels.values()):
        raise InvalidArgument("json: Labels values must be strings")
    cmd = body.get("Cmd")
    cmd = [cmd] if isinstance(cmd, str) else (_strlist(cmd, "Cmd") if cmd is not None else None)
    entrypoint = body.get("Entrypoint")
    if entrypoint is not None:
        entrypoint = [entrypoint] if isinstance(entrypoint, str) else _strlist(entrypoint, "Entrypoint")
        if entrypoint == [""]:
            entrypoint = []  # docker's --entrypoint "": reset the image's
    res = Resources()
    res.memory = host.get("Memory") or 0
    if res.memory and res.memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    res.memory_swap = host.get("MemorySwap") or 0
    res.memory_reservation = host.get("MemoryReservation") or 0
    res.nano_cpus = host.get("NanoCpus") or 0
    res.cpu_shares = host.get("CpuShares") or 0
    res.cpu_quota = host.get("CpuQuota") or 0
    res.cpu_period = host.get("CpuPeriod") or 0
    res.cpuset_cpus = host.get("CpusetCpus") or ""
    res.cpuset_mems = host.get("CpusetMems") or ""
    pids = host.get("PidsLimit") or 0
    res.pids_limit = pids if pids > 0 else 0
    for u in host.get("Ulimits") or []:
        if not isinstance(u, dict) or not isinstance(u.get("Name"), str):
            raise InvalidArgument("json: Ulimits entries need Name, Soft and Hard")
        res.ulimits.append(parse_ulimit(f"{u['Name']}={int(u.get('Soft') or 0)}:{int(u.get('Hard') or 0)}"))
    policy = host.get("RestartPolicy") or {}
    restart = policy.get("Name") or "no"
    if not isinstance(restart, str):
        raise InvalidArgument("json: RestartPolicy.Name must be a string")
    if policy.get("MaximumRetryCount"):
        if restart != "on-failure":
            raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
        restart += f":{int(policy['MaximumRetryCount'])}"
    publish = []
    for port, bindings in (host.get("PortBindings") or {}).items():
        for b in bindings or [{}]:
            hip, hport = (b or {}).get("HostIp") or "", (b or {}).get("HostPort") or ""
            publish.append(f"{hip}:{hport}:{port}" if hip else (f"{hport}:{port}" if hport else port))
    mounts = []
    for m in host.get("Mounts") or []:
        if not isinstance(m, dict):
            raise InvalidArgument("json: Mounts entries must be objects")
        parts = [f"type={m.get('Type') or 'volume'}"]
        if m.get("Source"):
            parts.append(f"source={m['Source']}")
        if not m.get("Target"):
            raise InvalidArgument("invalid mount config: Target must not be empty")
        parts.append(f"target={m['Target']}")
        if m.get("ReadOnly"):
            parts.append("readonly")
        bind, vol, tmpfs_opts = (m.get(k) or {} for k in ("BindOptions", "VolumeOptions", "TmpfsOptions"))
        if not all(isinstance(o, dict) for o in (bind, vol, tmpfs_opts)):
            raise InvalidArgument("json: BindOptions, VolumeOptions and TmpfsOptions must be objects")
        if bind.get("Propagation"):
            parts.append(f"bind-propagation={bind['Propagation']}")
        if vol.get("NoCopy"):
            parts.append("volume-nocopy=true")
        if tmpfs_opts.get("SizeBytes"):
            parts.append(f"tmpfs-size={int(tmpfs_opts['SizeBytes'])}")
        if tmpfs_opts.get("Mode"):
            parts.append(f"tmpfs-mode={int(tmpfs_opts['Mode']):o}")
        mounts.append(",".join(parts))
    tmpfs = [f"{k}:{v}" if v else k for k, v in (host.get("Tmpfs") or {}).items()]
    network = host.get("NetworkMode") or "default"
    aliases: list[str] = []
    ip = ""
    for net, ep in ((net_cfg.get("EndpointsConfig") or {}).items() if isinstance(net_cfg, dict) else []):
        ep = ep or {}
        aliases += _strlist(ep.get("Aliases"), "Aliases")
        ip = ip or ((ep.get("IPAMConfig") or {}).get("IPv4Address") or "")
        if network == "default" and net:
            network = net
    return CreateOptions(
        image=image, cmd=cmd or None, entrypoint=entrypoint, env=_strlist(body.get("Env"), "Env"),
        workdir=body.get("WorkingDir") or "", user=body.get("User") or "", hostname=body.get("Hostname") or "",
        tty=bool(body.get("Tty")), open_stdin=bool(body.get("OpenStdin")),
        stdin_once=bool(body.get("StdinOnce")) if "StdinOnce" in body else None, labels=dict(labels), name=name,
        resources=res, cap_add=_strlist(host.get("CapAdd"), "CapAdd"), cap_drop=_strlist(host.get("CapDrop"), "CapDrop"),
        privileged=bool(host.get("Privileged")), read_only=bool(host.get("ReadonlyRootfs")),
        security_opt=_strlist(host.get("SecurityOpt"), "SecurityOpt"), init=bool(host.get("Init")),
        restart=restart, auto_remove=bool(host.get("AutoRemove")), stop_signal=body.get("StopSignal") or "",
        stop_timeout=body.get("StopTimeout"), network=network,
        volumes=_strlist(host.get("Binds"), "Binds"), mounts=mounts, tmpfs=tmpfs,
        volumes_from=_strlist(host.get("VolumesFrom"), "VolumesFrom"), publish=publish,
        publish_all=bool(host.get("PublishAllPorts")), expose=list((body.get("ExposedPorts") or {}).keys()),
        network_aliases=aliases, links=_strlist(host.get("Links"), "Links"), dns=_strlist(host.get("Dns"), "Dns"),
        dns_search=_strlist(host.get("DnsSearch"), "DnsSearch"), dns_option=_strlist(host.get("DnsOptions"), "DnsOptions"),
        add_host=_strlist(host.get("ExtraHosts"), "ExtraHosts"), ip=ip,
    )
