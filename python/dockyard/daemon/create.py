"""Docker's ContainerCreate body (``Config`` + ``HostConfig`` + ``NetworkingConfig``) to the
engine's :class:`~dockyard.engine.containers.CreateOptions`, decoded as dockerd decodes it: Go's
``encoding/json`` into moby's types.  A field Docker does not know is ignored, field names match
case-insensitively, and a known field of the wrong type is a 400 with Go's own sentence (what
dockerd 25+ answers: ``invalid JSON: json: cannot unmarshal string into Go struct field
HostConfig.HostConfig.PortBindings of type []nat.PortBinding``)."""

from __future__ import annotations

import json
import posixpath

from ..engine.userns import check_mode
from ..errors import InvalidArgument


class GoType:
    """One of moby's Go types, enough of it to decode JSON as encoding/json does."""

    __slots__ = ("kind", "name", "elem", "fields", "lo", "hi")

    def __init__(self, kind: str, name: str, elem: GoType | None = None, fields: dict | None = None,
                 lo: int = 0, hi: int = 0) -> None:
        self.kind, self.name, self.elem, self.fields, self.lo, self.hi = kind, name, elem, fields, lo, hi


def _s(name: str = "string") -> GoType:
    return GoType("string", name)


def _i(name: str = "int64") -> GoType:
    base = {"time.Duration": "int64", "os.FileMode": "uint32"}.get(name, name)
    bits = int(base.lstrip("uint") or 64)
    if base.startswith("u"):
        return GoType("int", name, lo=0, hi=2 ** bits - 1)
    return GoType("int", name, lo=-(2 ** (bits - 1)), hi=2 ** (bits - 1) - 1)


def _list(elem: GoType, name: str = "") -> GoType:
    return GoType("slice", name or f"[]{elem.name}", elem)


def _map(elem: GoType, name: str = "") -> GoType:
    return GoType("map", name or f"map[string]{elem.name}", elem)


def _struct(name: str, fields: dict) -> GoType:
    return GoType("struct", name, fields=fields)


_B, _STR, _I64, _INT = GoType("bool", "bool"), _s(), _i("int64"), _i("int")
_STRS = _list(_STR)
_STRMAP = _map(_STR)
_STRSLICE = GoType("strslice", "string")  # strslice.StrSlice: a string or a list of strings
_EMPTY = _struct("struct {}", {})
_DUR = _i("time.Duration")

HEALTH = _struct("container.HealthConfig", {"Test": _STRS, "Interval": _DUR, "Timeout": _DUR,
                                            "StartPeriod": _DUR, "StartInterval": _DUR, "Retries": _INT})
CONFIG_FIELDS = {
    "Hostname": _STR, "Domainname": _STR, "User": _STR, "AttachStdin": _B, "AttachStdout": _B, "AttachStderr": _B,
    "ExposedPorts": _map(_EMPTY, "nat.PortSet"), "Tty": _B, "OpenStdin": _B, "StdinOnce": _B, "Env": _STRS,
    "Cmd": _STRSLICE, "Healthcheck": HEALTH, "ArgsEscaped": _B, "Image": _STR, "Volumes": _map(_EMPTY, "map[string]struct {}"),
    "WorkingDir": _STR, "Entrypoint": _STRSLICE, "NetworkDisabled": _B, "MacAddress": _STR, "OnBuild": _STRS,
    "Labels": _STRMAP, "StopSignal": _STR, "StopTimeout": _INT, "Shell": _STRSLICE,
}
_THROTTLE = _list(_struct("blkiodev.ThrottleDevice", {"Path": _STR, "Rate": _i("uint64")}), "[]*blkiodev.ThrottleDevice")
_MOUNT = _struct("mount.Mount", {
    "Type": _s("mount.Type"), "Source": _STR, "Target": _STR, "ReadOnly": _B, "Consistency": _s("mount.Consistency"),
    "BindOptions": _struct("mount.BindOptions", {"Propagation": _s("mount.Propagation"), "NonRecursive": _B,
                                                 "CreateMountpoint": _B, "ReadOnlyNonRecursive": _B,
                                                 "ReadOnlyForceRecursive": _B}),
    "VolumeOptions": _struct("mount.VolumeOptions", {"NoCopy": _B, "Labels": _STRMAP, "Subpath": _STR,
                                                     "DriverConfig": _struct("mount.Driver", {"Name": _STR, "Options": _STRMAP})}),
    "TmpfsOptions": _struct("mount.TmpfsOptions", {"SizeBytes": _I64, "Mode": _i("os.FileMode"),
                                                   "Options": _list(_STRS, "[][]string")}),
})
HOST_FIELDS = {
    "Binds": _STRS, "ContainerIDFile": _STR, "LogConfig": _struct("container.LogConfig", {"Type": _STR, "Config": _STRMAP}),
    "NetworkMode": _s("container.NetworkMode"),
    "PortBindings": _map(_list(_struct("nat.PortBinding", {"HostIp": _STR, "HostPort": _STR})), "nat.PortMap"),
    "RestartPolicy": _struct("container.RestartPolicy", {"Name": _s("container.RestartPolicyMode"), "MaximumRetryCount": _INT}),
    "AutoRemove": _B, "VolumeDriver": _STR, "VolumesFrom": _STRS, "ConsoleSize": _list(_i("uint"), "[2]uint"),
    "Annotations": _STRMAP, "CapAdd": _STRSLICE, "CapDrop": _STRSLICE, "CgroupnsMode": _s("container.CgroupnsMode"),
    "Dns": _STRS, "DnsOptions": _STRS, "DnsSearch": _STRS, "ExtraHosts": _STRS, "GroupAdd": _STRS,
    "IpcMode": _s("container.IpcMode"), "Cgroup": _s("container.CgroupSpec"), "Links": _STRS, "OomScoreAdj": _INT,
    "PidMode": _s("container.PidMode"), "Privileged": _B, "PublishAllPorts": _B, "ReadonlyRootfs": _B,
    "SecurityOpt": _STRS, "StorageOpt": _STRMAP, "Tmpfs": _STRMAP, "UTSMode": _s("container.UTSMode"),
    "UsernsMode": _s("container.UsernsMode"), "ShmSize": _I64, "Sysctls": _STRMAP, "Runtime": _STR,
    "Isolation": _s("container.Isolation"), "CpuShares": _I64, "Memory": _I64, "NanoCpus": _I64,
    "CgroupParent": _STR, "BlkioWeight": _i("uint16"),
    "BlkioWeightDevice": _list(_struct("blkiodev.WeightDevice", {"Path": _STR, "Weight": _i("uint16")}), "[]*blkiodev.WeightDevice"),
    "BlkioDeviceReadBps": _THROTTLE, "BlkioDeviceWriteBps": _THROTTLE, "BlkioDeviceReadIOps": _THROTTLE,
    "BlkioDeviceWriteIOps": _THROTTLE, "CpuPeriod": _I64, "CpuQuota": _I64, "CpuRealtimePeriod": _I64,
    "CpuRealtimeRuntime": _I64, "CpusetCpus": _STR, "CpusetMems": _STR,
    "Devices": _list(_struct("container.DeviceMapping", {"PathOnHost": _STR, "PathInContainer": _STR,
                                                         "CgroupPermissions": _STR})),
    "DeviceCgroupRules": _STRS,
    "DeviceRequests": _list(_struct("container.DeviceRequest", {"Driver": _STR, "Count": _INT, "DeviceIDs": _STRS,
                                                                "Capabilities": _list(_STRS, "[][]string"),
                                                                "Options": _STRMAP})),
    "KernelMemory": _I64, "KernelMemoryTCP": _I64, "MemoryReservation": _I64, "MemorySwap": _I64,
    "MemorySwappiness": _I64, "OomKillDisable": _B, "PidsLimit": _I64,
    "Ulimits": _list(_struct("units.Ulimit", {"Name": _STR, "Hard": _I64, "Soft": _I64}), "[]*units.Ulimit"),
    "CpuCount": _I64, "CpuPercent": _I64, "IOMaximumIOps": _i("uint64"), "IOMaximumBandwidth": _i("uint64"),
    "Mounts": _list(_MOUNT), "MaskedPaths": _STRS, "ReadonlyPaths": _STRS, "Init": _B,
}
_IPAM = _struct("network.EndpointIPAMConfig", {"IPv4Address": _STR, "IPv6Address": _STR, "LinkLocalIPs": _STRS})
ENDPOINT = _struct("network.EndpointSettings", {
    "IPAMConfig": _IPAM, "Links": _STRS, "Aliases": _STRS, "MacAddress": _STR, "DriverOpts": _STRMAP,
    "NetworkID": _STR, "EndpointID": _STR, "Gateway": _STR, "IPAddress": _STR, "IPPrefixLen": _INT,
    "IPv6Gateway": _STR, "GlobalIPv6Address": _STR, "GlobalIPv6PrefixLen": _INT, "DNSNames": _STRS,
})
NETWORKING = _struct("network.NetworkingConfig", {"EndpointsConfig": _map(ENDPOINT, "map[string]*network.EndpointSettings")})
CREATE_REQUEST = _struct("container.CreateRequest", {
    **CONFIG_FIELDS, "HostConfig": _struct("container.HostConfig", HOST_FIELDS), "NetworkingConfig": NETWORKING,
})
BODY_FIELDS = CREATE_REQUEST.fields


class GoTypeError(InvalidArgument):
    """encoding/json's UnmarshalTypeError, in dockerd 25+'s words (a 400; dockerd 20.10 said
    the same sentence without "invalid JSON: " as a 500)."""


def _jkind(value: object) -> str:
    return {str: "string", bool: "bool", int: "number", float: "number", list: "array",
            dict: "object"}.get(type(value), "value")


def _literal(value: object) -> str:
    return json.dumps(value)


def _fail(value: object, t: GoType, struct: str, path: str, with_literal: bool = False) -> GoTypeError:
    what = _jkind(value) + (f" {_literal(value)}" if with_literal else "")
    where = f"Go struct field {struct}.{path}" if struct else "Go value"
    return GoTypeError(f"invalid JSON: json: cannot unmarshal {what} into {where} of type {t.name}")


def _zero(t: GoType) -> object:
    """What a JSON null leaves in a Go slice element or map value."""
    return {"string": "", "bool": False, "int": 0}.get(t.kind)


def go_decode(value: object, t: GoType, struct: str = "", path: str = "") -> object:
    """``value`` as ``t``: struct keys matched case-insensitively to their Go names and
    unknown ones dropped; the first value of the wrong JSON type raises Go's error."""
    if value is None:
        return None
    k = t.kind
    if k == "string":
        if not isinstance(value, str):
            raise _fail(value, t, struct, path)
        return value
    if k == "bool":
        if not isinstance(value, bool):
            raise _fail(value, t, struct, path)
        return value
    if k == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(value, t, struct, path)
        if isinstance(value, float) or not t.lo <= value <= t.hi:
            raise _fail(value, t, struct, path, with_literal=True)
        return value
    if k == "strslice":
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise _fail(value, t, struct, path)
    if k == "slice":
        if not isinstance(value, list):
            raise _fail(value, t, struct, path)
        return [_zero(t.elem) if v is None else go_decode(v, t.elem, struct, path) for v in value]
    if k == "map":
        if not isinstance(value, dict):
            raise _fail(value, t, struct, path)
        return {key: _zero(t.elem) if v is None else go_decode(v, t.elem, struct, path) for key, v in value.items()}
    # struct
    if not isinstance(value, dict):
        raise _fail(value, t, struct, path)
    short = t.name.rsplit(".", 1)[-1]
    lower = {name.lower(): name for name in t.fields}
    out: dict = {}
    for key, v in value.items():
        name = key if key in t.fields else lower.get(key.lower())
        if name is None:
            continue  # dockerd ignores what it does not know
        out[name] = go_decode(v, t.fields[name], short, f"{path}.{name}" if path else name)
    return out


def _check(obj: dict, fields: dict, where: str) -> dict:
    """``obj`` decoded as the Go struct ``where`` with ``fields`` (see :func:`go_decode`)."""
    return go_decode(obj, _struct(where, fields))  # type: ignore[return-value]


def _strs(value: object) -> list[str]:
    return list(value) if value else []


#: HostConfig's block I/O settings: what blkio_support calls each, and what dockerd says when the
#: host's cgroups lack it (and drops it)
_BLKIO = {
    "BlkioWeight": ("weight", "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                              "Weight discarded."),
    "BlkioWeightDevice": ("weight_device", "Your kernel does not support Block I/O weight_device or the cgroup "
                                           "is not mounted. Weight-device discarded."),
    "BlkioDeviceReadBps": ("read_bps", "Your kernel does not support BPS Block I/O read limit or the cgroup is "
                                       "not mounted. Block I/O BPS read limit discarded."),
    "BlkioDeviceWriteBps": ("write_bps", "Your kernel does not support BPS Block I/O write limit or the cgroup "
                                         "is not mounted. Block I/O BPS write limit discarded."),
    "BlkioDeviceReadIOps": ("read_iops", "Your kernel does not support IOPS Block read limit or the cgroup is "
                                         "not mounted. Block I/O IOPS read limit discarded."),
    "BlkioDeviceWriteIOps": ("write_iops", "Your kernel does not support IOPS Block write limit or the cgroup "
                                           "is not mounted. Block I/O IOPS write limit discarded."),
}


def _blkio(host: dict, res, warnings: list[str]) -> dict:
    """HostConfig's block I/O settings, checked as dockerd checks them at create: a setting the
    host's cgroups cannot take is dropped with a warning (inspect then shows it empty), a weight
    is 10 to 1000; into ``res`` (the devices are looked up at start) and, as kept, for inspect."""
    from ..engine.cgroupstats import blkio_support
    from ..engine.spec import BLKIO_THROTTLES

    if host.get("IOMaximumBandwidth") or host.get("IOMaximumIOps"):
        raise InvalidArgument("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")
    if not any(host.get(k) for k in _BLKIO):
        return {}
    support = blkio_support()
    kept: dict = {}
    for key, (what, unsupported) in _BLKIO.items():
        value = host.get(key)
        if value and not support[what]:
            warnings.append(unsupported)
            value = None
        kept[key] = value or (0 if key == "BlkioWeight" else [])
    if kept["BlkioWeight"] and not 10 <= kept["BlkioWeight"] <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    res.blkio_weight = kept["BlkioWeight"]
    res.blkio_weight_device = [{"Path": d.get("Path") or "", "Weight": d.get("Weight") or 0}
                               for d in kept["BlkioWeightDevice"] if d]
    res.blkio_throttle = {k: [{"Path": d.get("Path") or "", "Rate": d.get("Rate") or 0} for d in kept[k] if d]
                          for k in BLKIO_THROTTLES if kept[k]}
    return {"BlkioWeight": res.blkio_weight, "BlkioWeightDevice": res.blkio_weight_device,
            **{k: res.blkio_throttle.get(k, []) for k in BLKIO_THROTTLES}}


_MIN_MEMORY = 6 * 1024 * 1024


def _cpu_list(text: str, what: str, available: str) -> None:
    """A cpuset list ("0-2,4") of ``what`` ("cpus", "mems"), each member in ``available`` (the
    same form, the host's), as dockerd checks it."""

    def members(value: str) -> set[int] | None:
        out: set[int] = set()
        for part in value.strip().split(","):
            lo, dash, hi = part.partition("-")
            if not lo.isdigit() or (dash and not hi.isdigit()):
                return None
            out.update(range(int(lo), int(hi if dash else lo) + 1))
        return out

    wanted = members(text)
    if wanted is None:
        raise InvalidArgument(f"Invalid value {text} for cpuset {what}: invalid format: {text}")
    have = members(available) if available.strip() else None
    if have is not None and not wanted <= have:
        noun = "CPUs" if what == "cpus" else "memory nodes"
        raise InvalidArgument(f"Requested {noun} are not available - requested {text}, available: {available.strip()}")


def _check_resources(host: dict, res, warnings: list[str]) -> int:
    """dockerd's checks of a create's memory and CPU settings against each other and this host
    (its errors, its warnings in ``warnings``); returns the KernelMemory to record (deprecated:
    recorded, warned about, not applied, as runc no longer applies it)."""
    from ..engine.cgroupstats import CGROUP_ROOT, is_v2

    v1 = not is_v2()
    if res.memory and res.memory_reservation and res.memory < res.memory_reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    if res.memory_swap > 0 and not res.memory:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    kernel_memory = host.get("KernelMemory") or 0
    if kernel_memory:
        warnings.append("Specifying a kernel memory limit is deprecated and will be removed in a future release.")
        if not (v1 and (CGROUP_ROOT / "memory" / "memory.kmem.limit_in_bytes").exists()):
            warnings.append("Your kernel does not support kernel memory limit capabilities or the cgroup is not "
                            "mounted. Limitation discarded.")
            kernel_memory = 0
    if 0 < kernel_memory < _MIN_MEMORY:
        raise InvalidArgument("Minimum kernel memory limit allowed is 6MB")
    if res.oom_kill_disable and not (v1 and (CGROUP_ROOT / "memory" / "memory.oom_control").exists()):
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        res.oom_kill_disable = False
    if res.oom_kill_disable and not res.memory:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can result in "
                        "the system running out of resources.")
    if res.nano_cpus and res.cpu_period:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if res.nano_cpus and res.cpu_quota:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    rt_period, rt_runtime = host.get("CpuRealtimePeriod") or 0, host.get("CpuRealtimeRuntime") or 0
    rt = v1 and (CGROUP_ROOT / "cpu" / "cpu.rt_period_us").exists()
    if rt_period and not rt:
        raise InvalidArgument("Your kernel does not support cgroup cpu real-time period")
    if rt_runtime and not rt:
        raise InvalidArgument("Your kernel does not support cgroup cpu real-time runtime")
    if rt_period and rt_runtime and rt_runtime > rt_period:
        raise InvalidArgument("cpu real-time runtime cannot be higher than cpu real-time period")
    for text, what in ((res.cpuset_cpus, "cpus"), (res.cpuset_mems, "mems")):
        if text:
            try:
                available = (CGROUP_ROOT / ("cpuset" if v1 else "") / f"cpuset.{what}{'' if v1 else '.effective'}").read_text()
            except OSError:
                available = ""
            _cpu_list(text, what, available)
    return kernel_memory


def options_from_body(body: object, name: str = ""):
    from ..engine.containers import CreateOptions
    from ..engine.spec import (Resources, check_nano_cpus, check_sysctls, default_ulimits, normalize_cap,
                               parse_device_cgroup_rule, parse_ulimit)

    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: json: cannot unmarshal " + _jkind(body)
                              + " into Go value of type container.CreateRequest")
    if not body:
        raise InvalidArgument("config cannot be empty in order to create a container")
    body = go_decode(body, CREATE_REQUEST)
    host = body.get("HostConfig") or {}
    net_cfg = body.get("NetworkingConfig") or {}
    image = body.get("Image") or ""
    if not image:
        raise InvalidArgument("no image specified")
    workdir = body.get("WorkingDir") or ""
    if workdir and not posixpath.isabs(workdir):
        raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    labels = body.get("Labels") or {}
    cmd = body.get("Cmd")
    entrypoint = body.get("Entrypoint")
    if entrypoint is not None and entrypoint == [""]:
        entrypoint = []  # docker's --entrypoint "": reset the image's
    for field in ("CapAdd", "CapDrop"):
        for cap in host.get(field) or []:
            try:
                normalize_cap(cap)
            except InvalidArgument as exc:
                raise InvalidArgument(f"invalid {field}: {exc}") from None
    res = Resources()
    res.memory = host.get("Memory") or 0
    if res.memory and res.memory < _MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if (host.get("ShmSize") or 0) < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    res.shm_size = host.get("ShmSize") or 0
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    res.memory_swappiness = None if swappiness in (None, -1) else swappiness
    res.oom_kill_disable = bool(host.get("OomKillDisable"))
    res.memory_swap = host.get("MemorySwap") or 0
    res.memory_reservation = host.get("MemoryReservation") or 0
    res.nano_cpus = host.get("NanoCpus") or 0
    check_nano_cpus(res.nano_cpus)
    res.cpu_shares = host.get("CpuShares") or 0  # a negative value fails at start, as in dockerd
    res.cpu_quota = host.get("CpuQuota") or 0
    res.cpu_period = host.get("CpuPeriod") or 0
    res.cpuset_cpus = host.get("CpusetCpus") or ""
    res.cpuset_mems = host.get("CpusetMems") or ""
    pids = host.get("PidsLimit") or 0
    res.pids_limit = pids if pids > 0 else 0
    warnings: list[str] = []
    kernel_memory = _check_resources(host, res, warnings)
    for u in host.get("Ulimits") or []:
        u = u or {}
        res.ulimits.append(parse_ulimit(f"{u.get('Name') or ''}={u.get('Soft') or 0}:{u.get('Hard') or 0}"))
    for dev in host.get("Devices") or []:
        dev = dev or {}
        on_host = dev.get("PathOnHost") or ""
        res.devices.append({"PathOnHost": on_host, "PathInContainer": dev.get("PathInContainer") or on_host,
                            "CgroupPermissions": dev.get("CgroupPermissions") or "rwm"})
    res.device_cgroup_rules = [parse_device_cgroup_rule(r) for r in _strs(host.get("DeviceCgroupRules"))]
    runtime = host.get("Runtime") or ""
    if runtime not in ("", "runc", "dockyard"):
        raise InvalidArgument(f"Unknown runtime specified {runtime}")
    isolation = host.get("Isolation") or ""
    if isolation not in ("", "default"):
        raise InvalidArgument(f'Invalid isolation: "{isolation}" - linux only supports \'default\'')
    # recorded as given and shown by inspect (CpuRealtime*: dockyard gives a container no
    # real-time budget; VolumeDriver: only the local driver exists, checked against the volumes)
    host_extra = {"Runtime": runtime or "runc", "Isolation": isolation,
                  "DeviceCgroupRules": _strs(host.get("DeviceCgroupRules")) or None,
                  "VolumeDriver": host.get("VolumeDriver") or "",
                  "CpuRealtimePeriod": host.get("CpuRealtimePeriod") or 0,
                  "CpuRealtimeRuntime": host.get("CpuRealtimeRuntime") or 0,
                  "UsernsMode": check_mode(host.get("UsernsMode") or "")}
    ipc = host.get("IpcMode") or ""
    if ipc not in ("", "private", "shareable", "host", "none") and not (ipc.startswith("container:") and ipc[10:]):
        raise InvalidArgument(f"Invalid IPC mode: {ipc}")
    host_extra["IpcMode"] = ipc or "private"  # (dockerd's default-ipc-mode)
    cgroupns = host.get("CgroupnsMode") or ""
    if cgroupns not in ("", "private", "host"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {cgroupns}")
    host_extra["CgroupnsMode"] = cgroupns or "private"
    host_extra["CgroupParent"] = host.get("CgroupParent") or ""
    if host.get("Annotations"):
        # (into the OCI spec too, as dockerd; dockyard.* are the engine's words to its runtime)
        reserved = sorted(k for k in host["Annotations"] if k.startswith("dockyard."))
        if reserved:
            raise InvalidArgument(f"annotation {reserved[0]} is reserved for dockyard")
        host_extra["Annotations"] = dict(host["Annotations"])
    oom = host.get("OomScoreAdj") or 0
    if not -1000 <= oom <= 1000:
        raise InvalidArgument(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    host_extra["OomScoreAdj"] = oom
    host_extra["MemorySwappiness"] = swappiness  # (as given: null, or -1 from an older client)
    host_extra["KernelMemory"] = kernel_memory
    host_extra.update(_blkio(host, res, warnings))
    host_extra["OomKillDisable"] = res.oom_kill_disable
    if host.get("Ulimits") == [] and not default_ulimits():
        host_extra["Ulimits"] = []  # (as given: the docker 28 CLI sends [], docker-py nothing, and dockerd keeps either)
    network = host.get("NetworkMode") or "default"
    res.sysctls = {k: v or "" for k, v in (host.get("Sysctls") or {}).items()}
    check_sysctls(res.sysctls, host_network=network == "host")
    policy = host.get("RestartPolicy") or {}
    restart = policy.get("Name") or "no"
    if policy.get("MaximumRetryCount"):
        if restart != "on-failure":
            raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
        restart += f":{policy['MaximumRetryCount']}"
    publish = []
    for port, bindings in (host.get("PortBindings") or {}).items():
        for b in bindings or [{}]:
            hip, hport = (b or {}).get("HostIp") or "", (b or {}).get("HostPort") or ""
            publish.append(f"{hip}:{hport}:{port}" if hip else (f"{hport}:{port}" if hport else port))
    mounts = []
    for m in host.get("Mounts") or []:
        m = m or {}
        parts = [f"type={m.get('Type') or 'volume'}"]
        if m.get("Source"):
            parts.append(f"source={m['Source']}")
        if not m.get("Target"):
            raise InvalidArgument("invalid mount config: Target must not be empty")
        parts.append(f"target={m['Target']}")
        if m.get("ReadOnly"):
            parts.append("readonly")
        bind, vol, tmpfs_opts = (m.get(k) or {} for k in ("BindOptions", "VolumeOptions", "TmpfsOptions"))
        if bind.get("Propagation"):
            parts.append(f"bind-propagation={bind['Propagation']}")
        if vol.get("NoCopy"):
            parts.append("volume-nocopy=true")
        if tmpfs_opts.get("SizeBytes"):
            parts.append(f"tmpfs-size={tmpfs_opts['SizeBytes']}")
        if tmpfs_opts.get("Mode"):
            parts.append(f"tmpfs-mode={tmpfs_opts['Mode']:o}")
        mounts.append(",".join(parts))
    tmpfs = []
    for dest, opts in (host.get("Tmpfs") or {}).items():
        if not posixpath.isabs(dest):
            raise InvalidArgument(f"invalid mount path: '{dest}' mount path must be absolute")
        tmpfs.append(f"{dest}:{opts}" if opts else dest)
    aliases: list[str] = []
    ip = ""
    endpoint = {"mac": body.get("MacAddress") or ""}
    for net, ep in (net_cfg.get("EndpointsConfig") or {}).items():
        ep = ep or {}
        aliases += _strs(ep.get("Aliases"))
        ip = ip or ((ep.get("IPAMConfig") or {}).get("IPv4Address") or "")
        from .resources import _endpoint

        given = _endpoint(ep)  # IPv6, links, link-local IPs, driver options, MAC: engine/network's
        endpoint = dict(given, mac=given["mac"] or endpoint["mac"])
        if network == "default" and net:
            network = net
    return CreateOptions(
        image=image, cmd=cmd or None, entrypoint=entrypoint, env=_strs(body.get("Env")),
        workdir=workdir, user=body.get("User") or "", hostname=body.get("Hostname") or "",
        domainname=body.get("Domainname") or "",
        tty=bool(body.get("Tty")), open_stdin=bool(body.get("OpenStdin")),
        stdin_once=bool(body.get("StdinOnce")) if "StdinOnce" in body else None, labels=dict(labels), name=name,
        resources=res, cap_add=_strs(host.get("CapAdd")), cap_drop=_strs(host.get("CapDrop")),
        privileged=bool(host.get("Privileged")), read_only=bool(host.get("ReadonlyRootfs")),
        security_opt=_strs(host.get("SecurityOpt")), init=bool(host.get("Init")),
        restart=restart, auto_remove=bool(host.get("AutoRemove")), stop_signal=body.get("StopSignal") or "",
        stop_timeout=body.get("StopTimeout"), healthcheck=body.get("Healthcheck") or None, network=network,
        pid_mode=host.get("PidMode") or "", uts_mode=host.get("UTSMode") or "", group_add=_strs(host.get("GroupAdd")),
        log_config=host.get("LogConfig") or None,
        volumes=_strs(host.get("Binds")), anon_volumes=list((body.get("Volumes") or {}).keys()), mounts=mounts, tmpfs=tmpfs,
        volumes_from=_strs(host.get("VolumesFrom")), publish=publish,
        publish_all=bool(host.get("PublishAllPorts")), expose=list((body.get("ExposedPorts") or {}).keys()),
        network_aliases=aliases, links=_strs(host.get("Links")), dns=_strs(host.get("Dns")),
        dns_search=_strs(host.get("DnsSearch")), dns_option=_strs(host.get("DnsOptions")),
        add_host=_strs(host.get("ExtraHosts")), ip=ip, host_extra=host_extra, endpoint=endpoint,
        warnings=warnings,
    )
