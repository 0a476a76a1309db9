"""The SDK's objects in docker-py's shape: containers, images, volumes, networks, their
collections, and the create body of a container."""

from __future__ import annotations

import builtins

from .. import _wire
from ..errors import NotFound
from .transport import APIError, ContainerError, frames, quote

TYPE_CHECKING = False  # typing: milliseconds the CLI never pays
if TYPE_CHECKING:
    from typing import Any, Iterator

    from . import Client


# -- models -----------------------------------------------------------------------------------------

class Model:
    id_attribute = "Id"

    def __init__(self, attrs: dict, client: Client, collection: Any) -> None:
        self.attrs = attrs
        self.client = client
        self.collection = collection

    @property
    def id(self) -> str:
        return self.attrs.get(self.id_attribute, "")

    @property
    def short_id(self) -> str:
        ident = self.id
        return ident[:19] if ident.startswith("sha256:") else ident[:12]

    def reload(self) -> None:
        self.attrs = self.collection.get(self.id).attrs

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.short_id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other.id == self.id

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id))


class ExecResult:
    """``exit_code`` (None when detached or streamed) and ``output``; unpacks like docker-py's."""

    __slots__ = ("exit_code", "output")

    def __init__(self, exit_code: int | None, output: bytes | tuple[bytes | None, bytes | None]) -> None:
        self.exit_code = exit_code
        self.output = output

    def __iter__(self):
        return iter((self.exit_code, self.output))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecResult) and (other.exit_code, other.output) == (self.exit_code, self.output)

    def __repr__(self) -> str:
        return f"ExecResult(exit_code={self.exit_code!r}, output={self.output!r})"


class Container(Model):
    @property
    def name(self) -> str:
        return (self.attrs.get("Name") or (self.attrs.get("Names") or [""])[0]).lstrip("/")

    @property
    def status(self) -> str:
        state = self.attrs.get("State")
        return state.get("Status", "") if isinstance(state, dict) else (state or "")

    @property
    def labels(self) -> dict[str, str]:
        return (self.attrs.get("Config") or {}).get("Labels") or self.attrs.get("Labels") or {}

    @property
    def image(self) -> Image | None:
        ident = self.attrs.get("Image") or self.attrs.get("ImageID")
        return self.client.images.get(ident) if ident else None

    def _api(self, method: str, suffix: str, params: dict | None = None, body: Any = None, **kw: Any) -> Any:
        return self.client.api.json(method, f"/containers/{self.id}{suffix}", params, body, **kw)

    def start(self) -> None:
        self._api("POST", "/start")

    def stop(self, timeout: int | None = None, signal: str | None = None) -> None:
        self._api("POST", "/stop", {"t": timeout, "signal": signal}, timeout=None)

    def restart(self, timeout: int | None = None) -> None:
        self._api("POST", "/restart", {"t": timeout}, timeout=None)

    def kill(self, signal: str | int = "KILL") -> None:
        self._api("POST", "/kill", {"signal": signal})

    def pause(self) -> None:
        self._api("POST", "/pause")

    def unpause(self) -> None:
        self._api("POST", "/unpause")

    def rename(self, name: str) -> None:
        self._api("POST", "/rename", {"name": name})

    def remove(self, force: bool = False, v: bool = False) -> None:
        self._api("DELETE", "", {"force": force, "v": v})

    def wait(self, condition: str = "not-running", timeout: float | None = None) -> dict:
        return self._api("POST", "/wait", {"condition": condition}, timeout=timeout)

    def top(self, ps_args: str | None = None) -> dict:
        return self._api("GET", "/top", {"ps_args": ps_args})

    def diff(self) -> list[dict]:
        return self._api("GET", "/changes") or []

    def stats(self, stream: bool = False) -> dict:
        return self._api("GET", "/stats", {"stream": stream}, timeout=None)

    def _tty(self) -> bool:
        cfg = self.attrs.get("Config")
        if cfg is None:
            self.reload()
            cfg = self.attrs.get("Config") or {}
        return bool(cfg.get("Tty"))

    def logs(self, stdout: bool = True, stderr: bool = True, timestamps: bool = False, tail: int | str = "all",
             follow: bool = False, stream: bool = False, since: int | None = None) -> bytes | Iterator[bytes]:
        params = {"stdout": stdout, "stderr": stderr, "timestamps": timestamps, "tail": tail,
                  "follow": follow or stream, "since": since}
        tty = self._tty()
        resp = self.client.api.request("GET", f"/containers/{self.id}/logs", params, stream=True, timeout=None)

        def chunks() -> Iterator[bytes]:
            try:
                for _, data in frames(resp.recv, tty):
                    yield data
            finally:
                self.client.api.finish(resp)

        if stream:
            return chunks()
        return b"".join(chunks())

    def exec_run(self, cmd: str | list[str], stdout: bool = True, stderr: bool = True, stdin: bool = False,
                 tty: bool = False, privileged: bool = False, user: str = "", detach: bool = False,
                 stream: bool = False, environment: dict[str, str] | list[str] | None = None,
                 workdir: str | None = None, demux: bool = False) -> ExecResult:
        if isinstance(cmd, str):
            import shlex

            cmd = shlex.split(cmd)
        env = [f"{k}={v}" for k, v in environment.items()] if isinstance(environment, dict) else list(environment or [])
        body = {"Cmd": cmd, "AttachStdout": stdout, "AttachStderr": stderr, "AttachStdin": stdin, "Tty": tty,
                "Privileged": privileged, "User": user, "Env": env, "WorkingDir": workdir or ""}
        eid = self.client.api.json("POST", f"/containers/{self.id}/exec", None, body)["Id"]
        if detach:
            self.client.api.json("POST", f"/exec/{eid}/start", None, {"Detach": True, "Tty": tty})
            return ExecResult(None, b"")
        sock = self.client.api.hijack(f"/exec/{eid}/start", None, {"Detach": False, "Tty": tty})
        try:
            if not stdin:
                try:
                    sock.shutdown(_wire.SHUT_WR)
                except OSError:
                    pass
            parts = frames(sock.recv, tty)
            if stream:
                return ExecResult(None, (data for _, data in parts))  # type: ignore[arg-type]
            out: builtins.list[bytes] = []
            err: builtins.list[bytes] = []
            for kind, data in parts:
                (err if kind == 2 and demux else out).append(data)
        finally:
            if not stream:
                sock.close()
        code = self.client.api.json("GET", f"/exec/{eid}/json")["ExitCode"]
        if demux:
            return ExecResult(code, (b"".join(out) or None, b"".join(err) or None))
        return ExecResult(code, b"".join(out))

    def get_archive(self, path: str) -> tuple[bytes, dict]:
        import base64

        resp = self.client.api.request("GET", f"/containers/{self.id}/archive", {"path": path}, stream=True)
        try:
            stat = _wire.loads(base64.b64decode(resp.getheader("X-Docker-Container-Path-Stat") or "e30="))
            return resp.read(), stat if isinstance(stat, dict) else {}
        finally:
            self.client.api.finish(resp)

    def put_archive(self, path: str, data: bytes) -> bool:
        self.client.api.read("PUT", f"/containers/{self.id}/archive", {"path": path}, data,
                             headers={"Content-Type": "application/x-tar"})
        return True

    def export(self) -> bytes:
        return self.client.api.read("GET", f"/containers/{self.id}/export", timeout=None)

    def commit(self, repository: str | None = None, tag: str | None = None, message: str = "",
               author: str = "", changes: list[str] | None = None) -> Image:
        out = self.client.api.json("POST", "/commit", {"container": self.id, "repo": repository, "tag": tag,
                                                       "comment": message, "author": author,
                                                       "changes": changes or None}, {})
        return self.client.images.get(out["Id"])


class Image(Model):
    @property
    def tags(self) -> list[str]:
        return [t for t in self.attrs.get("RepoTags") or [] if t != "<none>:<none>"]

    @property
    def labels(self) -> dict[str, str]:
        return (self.attrs.get("Config") or {}).get("Labels") or {}

    def history(self) -> list[dict]:
        return self.client.api.json("GET", f"/images/{self.id}/history")

    def tag(self, repository: str, tag: str | None = None) -> bool:
        self.client.api.json("POST", f"/images/{self.id}/tag", {"repo": repository, "tag": tag})
        return True

    def save(self) -> bytes:
        return self.client.api.read("GET", f"/images/{self.id}/get", timeout=None)


# -- collections ------------------------------------------------------------------------------------

class ContainerSpec:
    """What ``containers.create``/``run`` take (the ContainerCreate body, typed)."""

    def __init__(self, image: str, command: list[str] | str | None = None, *,
                 name: str | None = None,
                 entrypoint: list[str] | str | None = None,
                 environment: dict[str, str] | list[str] | None = None,
                 working_dir: str | None = None,
                 user: str | None = None,
                 hostname: str | None = None,
                 tty: bool = False,
                 stdin_open: bool = False,
                 labels: dict[str, str] | None = None,
                 auto_remove: bool = False,
                 restart_policy: dict | None = None,
                 mem_limit: int | None = None,
                 nano_cpus: int | None = None,
                 pids_limit: int | None = None,
                 cap_add: list[str] | None = None,
                 cap_drop: list[str] | None = None,
                 privileged: bool = False,
                 read_only: bool = False,
                 init: bool | None = None,
                 volumes: list[str] | None = None,
                 network_mode: str | None = None,
                 ports: dict[str, Any] | None = None,
                 stop_signal: str | None = None) -> None:
        self.image = image
        self.command = command
        self.name = name
        self.entrypoint = entrypoint
        self.environment = environment
        self.working_dir = working_dir
        self.user = user
        self.hostname = hostname
        self.tty = tty
        self.stdin_open = stdin_open
        self.labels = labels if labels is not None else {}
        self.auto_remove = auto_remove
        self.restart_policy = restart_policy
        self.mem_limit = mem_limit
        self.nano_cpus = nano_cpus
        self.pids_limit = pids_limit
        self.cap_add = cap_add
        self.cap_drop = cap_drop
        self.privileged = privileged
        self.read_only = read_only
        self.init = init
        self.volumes = volumes
        self.network_mode = network_mode
        self.ports = ports
        self.stop_signal = stop_signal

    def __repr__(self) -> str:
        return f"ContainerSpec({self.image!r}, {self.command!r})"

    def body(self) -> dict:
        def listy(v: list[str] | str | None) -> list[str] | None:
            if v is None:
                return None
            if isinstance(v, str):
                import shlex

                return shlex.split(v)
            return list(v)

        env = self.environment
        env_list = [f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else list(env or [])
        host: dict[str, Any] = {"AutoRemove": self.auto_remove, "Privileged": self.privileged,
                                "ReadonlyRootfs": self.read_only}
        if self.restart_policy:
            host["RestartPolicy"] = self.restart_policy
        if self.mem_limit:
            host["Memory"] = self.mem_limit
        if self.nano_cpus:
            host["NanoCpus"] = self.nano_cpus
        if self.pids_limit:
            host["PidsLimit"] = self.pids_limit
        if self.cap_add:
            host["CapAdd"] = self.cap_add
        if self.cap_drop:
            host["CapDrop"] = self.cap_drop
        if self.init is not None:
            host["Init"] = self.init
        if self.volumes:
            host["Binds"] = self.volumes
        if self.network_mode:
            host["NetworkMode"] = self.network_mode
        body: dict[str, Any] = {"Image": self.image, "Cmd": listy(self.command), "Env": env_list,
                                "Tty": self.tty, "OpenStdin": self.stdin_open, "AttachStdin": self.stdin_open,
                                "StdinOnce": self.stdin_open, "Labels": self.labels, "HostConfig": host}
        if self.ports:
            exposed: dict[str, dict] = {}
            bindings: dict[str, builtins.list[dict]] = {}
            for port, host_port in self.ports.items():
                key = port if "/" in str(port) else f"{port}/tcp"
                exposed[key] = {}
                if host_port is not None:
                    bindings[key] = [{"HostIp": "", "HostPort": str(host_port)}]
            body["ExposedPorts"] = exposed
            host["PortBindings"] = bindings
        if self.entrypoint is not None:
            body["Entrypoint"] = listy(self.entrypoint)
        for key, value in (("WorkingDir", self.working_dir), ("User", self.user), ("Hostname", self.hostname),
                           ("StopSignal", self.stop_signal)):
            if value:
                body[key] = value
        return body


class ContainerCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _model(self, attrs: dict) -> Container:
        return Container(attrs, self.client, self)

    def get(self, container_id: str) -> Container:
        return self._model(self.client.api.json("GET", f"/containers/{quote(container_id, safe='')}/json"))

    def list(self, all: bool = False, filters: dict[str, Any] | None = None, limit: int = -1,
             sparse: bool = False) -> list[Container]:
        flt = {k: (v if isinstance(v, list) else [str(v)]) for k, v in (filters or {}).items()}
        rows = self.client.api.json("GET", "/containers/json", {"all": all, "limit": limit if limit > 0 else None,
                                                                "filters": flt or None})
        if sparse:
            return [self._model(r) for r in rows]
        out = []
        for r in rows:
            try:
                out.append(self.get(r["Id"]))
            except NotFound:
                pass  # removed meanwhile
        return out

    def create(self, image: str | ContainerSpec, command: builtins.list[str] | str | None = None, **kwargs: Any) -> Container:
        spec = image if isinstance(image, ContainerSpec) else ContainerSpec(image, command, **kwargs)
        out = self.client.api.json("POST", "/containers/create", {"name": spec.name}, spec.body())
        return self.get(out["Id"])

    def run(self, image: str | ContainerSpec, command: builtins.list[str] | str | None = None, *, detach: bool = False,
            remove: bool = False, stdout: bool = True, stderr: bool = False, stream: bool = False,
            **kwargs: Any) -> Container | bytes | Iterator[bytes]:
        """docker-py's ``run``: detached, the Container; else its output once it exits (raises
        :class:`ContainerError` on a non-zero exit)."""
        spec = image if isinstance(image, ContainerSpec) else ContainerSpec(image, command, **kwargs)
        if detach and remove:
            spec.auto_remove = True
        container = self.create(spec)
        container.start()
        if detach:
            try:
                container.reload()
            except NotFound:  # auto-removed already
                pass
            return container
        if stream:
            return container.logs(stdout=stdout, stderr=stderr, stream=True, follow=True)
        status = container.wait(timeout=None)
        code = status.get("StatusCode", 0)
        out = container.logs(stdout=stdout, stderr=stderr)
        err = container.logs(stdout=False, stderr=True) if code else b""
        err = err if isinstance(err, bytes) else b"".join(err)
        if remove:
            container.remove(force=True)
        if code:
            raise ContainerError(container, code, spec.body().get("Cmd"), spec.image, err)
        return out  # type: ignore[return-value]

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.json("POST", "/containers/prune", {"filters": filters or None})


class ImageCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _model(self, attrs: dict) -> Image:
        return Image(attrs, self.client, self)

    def get(self, name: str) -> Image:
        return self._model(self.client.api.json("GET", f"/images/{quote(name, safe='/:@')}/json"))

    def list(self, name: str | None = None, all: bool = False, filters: dict | None = None) -> list[Image]:
        flt = {k: (v if isinstance(v, list) else [str(v)]) for k, v in (filters or {}).items()}
        if name:
            flt["reference"] = [name]
        rows = self.client.api.json("GET", "/images/json", {"all": all, "filters": flt or None})
        return [self.get(r["Id"]) for r in rows]

    def remove(self, image: str, force: bool = False, noprune: bool = False) -> builtins.list[dict]:
        return self.client.api.json("DELETE", f"/images/{quote(image, safe='/:@')}", {"force": force, "noprune": noprune})

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.json("POST", "/images/prune", {"filters": filters or None})

    def load(self, data: bytes) -> builtins.list[Image]:
        msgs = self.client.api.json("POST", "/images/load", None, data, headers={"Content-Type": "application/x-tar"},
                                    timeout=None)
        msgs = msgs if isinstance(msgs, list) else [msgs]
        out = []
        for m in msgs:
            if isinstance(m, dict) and m.get("error"):
                raise APIError(m["error"], 400)  # a bad archive: dockerd streams its error
            text = (m or {}).get("stream", "")
            if ": " in text:
                out.append(self.get(text.split(": ", 1)[1].strip()))
        return out

    def import_image(self, data: bytes, repository: str | None = None, tag: str | None = None,
                     changes: builtins.list[str] | None = None) -> Image:
        msgs = self.client.api.json("POST", "/images/create", {"fromSrc": "-", "repo": repository, "tag": tag,
                                                               "changes": changes or None}, data,
                                    headers={"Content-Type": "application/x-tar"}, timeout=None)
        msgs = msgs if isinstance(msgs, list) else [msgs]
        return self.get(msgs[-1]["status"])

    def pull(self, repository: str, tag: str | None = None, all_tags: bool = False) -> Image:
        """Pull ``repository:tag`` (``latest`` unless given, as docker-py does; ``all_tags``: every
        tag, and the return value is the ``latest`` one)."""
        if tag is None and not all_tags and "@" not in repository and ":" not in repository.rsplit("/", 1)[-1]:
            tag = "latest"
        msgs = self.client.api.json("POST", "/images/create", {"fromImage": repository, "tag": tag}, timeout=None)
        for m in msgs if isinstance(msgs, list) else [msgs]:
            if isinstance(m, dict) and m.get("error"):
                raise APIError(m["error"], 500)
        name = repository if (tag is None or "@" in repository) else f"{repository}:{tag}"
        return self.get(name)


class Volume(Model):
    id_attribute = "Name"

    @property
    def name(self) -> str:
        return self.attrs.get("Name", "")

    @property
    def short_id(self) -> str:
        return self.name

    def remove(self, force: bool = False) -> None:
        self.client.api.json("DELETE", f"/volumes/{quote(self.name, safe='')}", {"force": force})


class VolumeCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, name: str) -> Volume:
        return Volume(self.client.api.json("GET", f"/volumes/{quote(name, safe='')}"), self.client, self)

    def create(self, name: str = "", labels: dict[str, str] | None = None, driver: str = "local",
               driver_opts: dict[str, str] | None = None) -> Volume:
        attrs = self.client.api.json("POST", "/volumes/create", None, {"Name": name, "Labels": labels or {},
                                                                       "Driver": driver, "DriverOpts": driver_opts or {}})
        return Volume(attrs, self.client, self)

    def list(self, filters: dict | None = None) -> list[Volume]:
        out = self.client.api.json("GET", "/volumes", {"filters": filters or None})
        return [Volume(v, self.client, self) for v in out.get("Volumes") or []]

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.json("POST", "/volumes/prune", {"filters": filters or None})


class Network(Model):
    @property
    def name(self) -> str:
        return self.attrs.get("Name", "")

    @property
    def containers(self) -> list[Container]:
        self.reload()
        return [self.client.containers.get(cid) for cid in (self.attrs.get("Containers") or {})]

    def connect(self, container: Container | str, aliases: list[str] | None = None, ipv4_address: str = "") -> None:
        cid = container.id if isinstance(container, Container) else container
        self.client.api.json("POST", f"/networks/{self.id}/connect", None, {
            "Container": cid, "EndpointConfig": {"Aliases": aliases or [], "IPAMConfig": {"IPv4Address": ipv4_address}}})

    def disconnect(self, container: Container | str, force: bool = False) -> None:
        cid = container.id if isinstance(container, Container) else container
        self.client.api.json("POST", f"/networks/{self.id}/disconnect", None, {"Container": cid, "Force": force})

    def remove(self) -> None:
        self.client.api.json("DELETE", f"/networks/{self.id}")


class NetworkCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, network_id: str) -> Network:
        return Network(self.client.api.json("GET", f"/networks/{quote(network_id, safe='')}"), self.client, self)

    def create(self, name: str, driver: str = "bridge", internal: bool = False, labels: dict[str, str] | None = None,
               subnet: str = "", gateway: str = "", options: dict[str, str] | None = None) -> Network:
        ipam = {"Config": [{"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}]} if subnet else {}
        out = self.client.api.json("POST", "/networks/create", None, {
            "Name": name, "Driver": driver, "Internal": internal, "Labels": labels or {}, "IPAM": ipam,
            "Options": options or {}})
        return self.get(out["Id"])

    def list(self, names: list[str] | None = None, filters: dict | None = None) -> list[Network]:
        flt = dict(filters or {})
        if names:
            flt["name"] = names
        return [Network(n, self.client, self) for n in self.client.api.json("GET", "/networks", {"filters": flt or None})]

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.json("POST", "/networks/prune", {"filters": filters or None})
