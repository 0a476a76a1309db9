"""``/images/...``, ``/build``: each route maps to one engine (or registry/builder) call."""

from __future__ import annotations

import json
import os
import threading

from ..errors import DockyardError, InvalidArgument
from .http import STREAMED, Reply, Request, Router, stream_produced


def routes(r: Router) -> None:
    r.add("GET", "/images/json", list_)
    r.add("POST", "/images/create", create)
    r.add("POST", "/images/load", load)
    r.add("GET", "/images/get", get_many)
    r.add("POST", "/images/prune", prune)
    r.add("POST", "/build", build)
    r.add("POST", "/build/prune", build_prune)
    r.add("POST", "/auth", auth)
    # names may hold slashes: the suffix decides the route
    r.add("GET", "/images/{name*}/json", inspect)
    r.add("GET", "/images/{name*}/history", history)
    r.add("GET", "/images/{name*}/get", get_one)
    r.add("POST", "/images/{name*}/tag", tag)
    r.add("POST", "/images/{name*}/push", push)
    r.add("DELETE", "/images/{name*}", delete)


def _registry_for(req: Request, name: str):
    """A registry client with the credentials of ``X-Registry-Auth`` (base64url JSON, as the
    docker CLI sends them), or None: the registry client's own (the daemon user's config)."""
    import base64

    raw = req.headers.get("X-Registry-Auth")
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        raise InvalidArgument("invalid X-Registry-Auth header") from None
    if not isinstance(data, dict) or not data.get("username"):
        return None
    from .. import reference as refs
    from ..registry.client import Registry

    return Registry(refs.parse(name).domain, credentials=(data["username"], data.get("password") or ""))


def auth(d, req: Request) -> dict:
    """``docker login``: check the credentials against the registry (the CLI stores them)."""
    from ..registry import auth as regauth
    from ..registry.client import Registry

    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("username", ""), str):
        raise InvalidArgument("invalid JSON in request body: expected username, password, serveraddress")
    domain = regauth.server_key(body.get("serveraddress") or regauth.HUB_KEY)
    if domain == regauth.HUB_KEY:
        domain = "docker.io"
    reg = Registry(domain, credentials=(body.get("username") or "", body.get("password") or ""))
    try:
        reg.ping()
    except DockyardError as exc:
        from ..errors import DockyardError as _E

        err = _E(f"login attempt to {reg.url('/v2/')} failed: {exc}")
        err.status = 401
        raise err from None
    finally:
        reg.close()
    return {"Status": "Login Succeeded", "IdentityToken": ""}


IMAGE_FILTERS = ("dangling", "label", "reference", "before", "since", "until")


def list_(d, req: Request) -> list:
    filters = req.filters()
    for key in filters:
        if key not in IMAGE_FILTERS:
            raise InvalidArgument(f"Invalid filter '{key}'")
    for v in filters.get("dangling", []):
        if v.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={v}'")
    with d.engines.get() as engine:
        out = engine.images.summaries(all_=req.bool("all"), filters=filters)
    if req.before("1.44"):
        for s in out:
            s["VirtualSize"] = s["Size"]  # (dropped in API 1.44)
    return out


#: an image's ContainerConfig as dockerd before API 1.45 shows it when the image has none
_EMPTY_CONTAINER_CONFIG = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


#: fields of moby's container.Config without ``omitempty``: dockerd up to API 1.46 shows each one in
#: an image's Config, null or empty when unset (docker-py reads ``Config['OnBuild']``); newer
#: daemons leave the empty ones out, as dockyard's engine does
_FULL_CONFIG = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False),
    ("Env", None), ("Cmd", None), ("Healthcheck", None), ("ArgsEscaped", None), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", None), ("MacAddress", None), ("OnBuild", None),
    ("Labels", None), ("StopSignal", None), ("StopTimeout", None), ("Shell", None),
)
_OMITEMPTY = {"ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress", "StopSignal",
              "StopTimeout", "Shell"}


def full_config(config: dict) -> dict:
    """An image's Config as dockerd before API 1.47 shows it: every field of container.Config
    that has no ``omitempty``, in its order, and anything else the image carries after them."""
    out: dict = {}
    for key, empty in _FULL_CONFIG:
        if key in config:
            out[key] = config[key]
        elif key not in _OMITEMPTY:
            out[key] = empty
    for key, value in config.items():
        out.setdefault(key, value)
    return out


def inspect(d, req: Request, name: str) -> dict:
    with d.engines.get() as engine:
        out = engine.images.inspect(name)
        if req.before("1.47"):
            out["Config"] = full_config(out["Config"])
        if not req.before("1.45"):
            return out
        # API < 1.45 (compose v1 asks for 1.38 and reads ContainerConfig.Volumes of every image)
        config = engine.images.config(out["Id"])
    shaped: dict = {}
    for key, value in out.items():
        if key == "DockerVersion":
            shaped["Container"] = config.get("container", "")
            shaped["ContainerConfig"] = {**_EMPTY_CONTAINER_CONFIG, **(config.get("container_config") or {})}
        shaped[key] = value
        if key == "Size" and req.before("1.44"):
            shaped["VirtualSize"] = value
    return shaped


def history(d, req: Request, name: str) -> list:
    with d.engines.get() as engine:
        return engine.images.history(name)


def tag(d, req: Request, name: str) -> Reply:
    repo, tag_ = req.arg("repo") or "", req.arg("tag") or ""
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    with d.engines.get() as engine:
        engine.images.tag(name, f"{repo}:{tag_}" if tag_ else repo)
        image_id = engine.images.resolve(name)
    from .. import reference as refs

    d.events.emit("image", "tag", image_id, {"name": refs.parse(f"{repo}:{tag_ or 'latest'}").familiar()})
    return Reply(201, b"", "text/plain")


def delete(d, req: Request, name: str) -> list:
    force, noprune = req.bool("force"), req.bool("noprune")
    with d.engines.get() as engine:
        items = engine.images.remove(name, force=force, prune=not noprune)
    for item in items:
        for action, ident in item.items():
            d.events.emit("image", action.lower().replace("untagged", "untag").replace("deleted", "delete"),
                          ident, {"name": ident})
    return items


def prune(d, req: Request) -> dict:
    filters = req.filters()
    for key in filters:
        if key not in ("dangling", "label", "label!", "until"):
            raise InvalidArgument(f"Invalid filter '{key}'")
    dangling = filters.pop("dangling", ["true"])
    all_ = any(v.lower() in ("false", "0") for v in dangling)
    with d.engines.get() as engine:
        report = engine.images.prune(all_=all_, filters=filters)
        if not filters:  # (labels and dates are an image's, not a download's)
            from ..registry.pull import prune_partials

            report["SpaceReclaimed"] += prune_partials(engine.store)
    d.events.emit("image", "prune", "", {"reclaimed": str(report.get("SpaceReclaimed", 0))})
    return report


def _progress_stream(req: Request):
    out = req.start_stream("application/json")
    req._started = True
    return out


def create(d, req: Request):
    """``fromSrc`` imports (``-``: the body), ``fromImage`` pulls; both stream JSON progress."""
    src, image = req.arg("fromSrc"), req.arg("fromImage")
    repo, tag_ = req.arg("repo") or "", req.arg("tag") or ""
    changes = req.args("changes")
    message = req.arg("message") or ""
    platform = req.arg("platform") or None
    if src:
        reference = None
        if repo:
            reference = f"{repo}:{tag_}" if tag_ else repo
        with d.engines.get() as engine:
            if src == "-":
                with req.body_source() as body:
                    image_id = engine.import_image(body, reference, changes, message, platform)
            else:
                raise InvalidArgument("importing from a URL is not supported: send the archive as the body (fromSrc=-)")
        d.events.emit("image", "import", image_id, {"name": reference or ""})
        out = _progress_stream(req)
        out.json({"status": image_id})
        out.close()
        return STREAMED
    if not image:
        raise InvalidArgument("fromSrc or fromImage is required")
    name = image
    if tag_ and "@" not in image:
        name = f"{image}@{tag_}" if tag_.startswith("sha256:") else f"{image}:{tag_}"
    try:
        from ..registry import pull as regpull
    except ImportError:
        return Reply(501, {"message": "pull is not implemented by this daemon"})
    from .. import reference as refs

    parsed = refs.parse(name)
    # a name alone (no tag in fromImage, no ``tag``) pulls every tag of the repository, as
    # dockerd does (``docker pull -a``); the docker CLI and docker-py send ``tag`` otherwise
    all_tags = parsed.tag is None and parsed.digest is None
    lock = threading.Lock()
    state: dict = {"out": None}

    def stream():
        # headers go out with the first progress message: an error before that (no such
        # repository, registry unreachable) is a plain error response, as dockerd's
        if state["out"] is None:
            state["out"] = _progress_stream(req)
        return state["out"]

    def progress(layer: str, status: str, current: int | None = None, total: int | None = None) -> None:
        msg: dict = {"status": status}
        if layer:
            msg["id"] = layer
        if current is not None and total:
            msg["progressDetail"] = {"current": current, "total": total}
        with lock:
            stream().json(msg)

    try:
        with d.engines.get() as engine:
            results = regpull.pull(engine, name, platform=platform, all_tags=all_tags, progress=progress,
                                     registry=_registry_for(req, name))
        out = stream()
        for r in results:
            if r.digest:
                out.json({"status": f"Digest: {r.digest}"})
            fam = refs.parse(r.reference).familiar()
            out.json({"status": f"Status: Downloaded newer image for {fam}" if r.new
                      else f"Status: Image is up to date for {fam}"})
            d.events.emit("image", "pull", r.reference, {"name": r.reference})
    except DockyardError as exc:
        if state["out"] is None:
            raise
        state["out"].json({"errorDetail": {"message": str(exc)}, "error": str(exc)})
    state["out"].close()
    return STREAMED


def push(d, req: Request, name: str):
    from .. import reference as refs
    from ..registry import push as regpush

    tag_ = req.arg("tag") or ""
    full = f"{name}:{tag_}" if tag_ else name
    # no tag anywhere: every tag of the repository, as dockerd (``docker push -a``)
    all_tags = not tag_ and refs.parse(name).tag is None
    chunk_size = req.int("chunksize")  # dockyard's: PATCH uploads of this size
    out = _progress_stream(req)

    def progress(layer: str, status: str, current: int | None = None, total: int | None = None) -> None:
        msg: dict = {"status": status}
        if layer:
            msg["id"] = layer
        if current is not None and total:
            msg["progressDetail"] = {"current": current, "total": total}
        out.json(msg)

    try:
        with d.engines.get() as engine:
            results = regpush.push(engine, full, all_tags=all_tags, progress=progress, chunk_size=chunk_size,
                                     registry=_registry_for(req, full))
        for r in results:
            # the "TAG: digest: … size: …" line went out with the progress; the result follows
            # on its own, as dockerd sends it
            tagname = refs.parse(r.reference).tag or "latest"
            out.json({"progressDetail": {}, "aux": {"Tag": tagname, "Digest": r.digest, "Size": r.size}})
    except DockyardError as exc:
        out.json({"errorDetail": {"message": str(exc)}, "error": str(exc)})
    out.close()
    return STREAMED


def load(d, req: Request):
    req.bool("quiet")
    try:
        with d.engines.get() as engine, req.body_source() as body:
            lines = engine.load(body)
    except InvalidArgument as exc:
        # dockerd answers 200 and streams a bad archive's error (docker-py raises ImageLoadError)
        out = _progress_stream(req)
        out.json({"errorDetail": {"message": str(exc)}, "error": str(exc)})
        out.close()
        return STREAMED
    for line in lines:
        d.events.emit("image", "load", line.split(": ", 1)[-1], {})
    out = _progress_stream(req)
    for line in lines:
        out.json({"stream": line + "\n"})
    out.close()
    return STREAMED


SAVE_FORMATS = ("docker-archive", "oci-archive")


def _save(d, req: Request, names: list[str]):
    if not names:
        raise InvalidArgument("names is required")
    # ``format`` (dockyard's, for ``dockyard save --format oci-archive``): dockerd has none
    fmt = req.arg("format") or "docker-archive"
    if fmt not in SAVE_FORMATS:
        raise InvalidArgument(f"invalid format {fmt!r}: expected one of {', '.join(SAVE_FORMATS)}")
    with d.engines.get() as engine:
        for n in names:
            engine.images.resolve(n)  # 404 before anything is sent

        def produce(w: int) -> None:
            with os.fdopen(w, "wb", closefd=False) as f:
                engine.save(names, f, fmt)

        return stream_produced(req, produce)


def get_many(d, req: Request):
    return _save(d, req, req.args("names"))


def get_one(d, req: Request, name: str):
    return _save(d, req, [name])


def build(d, req: Request):
    """``POST /build``, the classic builder's: the body is the context as a tar (or a Dockerfile
    alone), ``dockerfile`` names the Dockerfile inside it; the output streams as JSON lines
    (``stream``, ``aux`` with the ID, ``error``/``errorDetail`` at the end of a failed build).

    A client that goes away (it closed or half-closed the connection: ``dockyard build`` on
    SIGTERM or Ctrl-C) cancels the build: its RUN container is killed and the builder unwinds
    through its ``finally`` blocks, so nothing of the build is left behind."""
    try:
        from ..build import BuildOptions, Builder
        from ..build.builder import classic_line
        from ..build.follow import StderrLine
    except ImportError:
        return Reply(501, {"message": "build is not implemented by this daemon"})
    from .. import reference as refs

    if req.arg("remote"):
        raise InvalidArgument("remote build contexts are not supported: send the context as the body")
    tags = []
    for t in req.args("t"):
        tags.append(str(refs.parse_repository_tag(t).with_default_tag()))
    # the first value, as Go's FormValue (docker-py sends its (name, contents) tuple for a
    # Dockerfile outside the context as two dockerfile= values; the file is in the tar)
    dockerfile_name = (req.args("dockerfile") or [""])[0] or "Dockerfile"
    try:
        build_args = json.loads(req.arg("buildargs") or "{}")
        labels = json.loads(req.arg("labels") or "{}")
    except ValueError:
        raise InvalidArgument("buildargs and labels must be JSON objects") from None
    if not isinstance(build_args, dict) or not isinstance(labels, dict):
        raise InvalidArgument("buildargs and labels must be JSON objects")
    target = req.arg("target") or ""
    no_cache = req.bool("nocache")
    quiet = req.bool("q")
    # builds run without a network unless asked ("default" is what the docker CLI sends)
    network = req.arg("networkmode") or "default"
    network = "none" if network == "default" else network
    req.bool("rm", True)
    req.bool("forcerm")
    pull = req.bool("pull")
    extra_hosts = [h for v in req.args("extrahosts") for h in v.split(",") if h]  # RUN's /etc/hosts
    cache_from = None
    if req.arg("cachefrom"):
        try:
            cache_from = json.loads(req.arg("cachefrom") or "[]")
        except ValueError:
            raise InvalidArgument("cachefrom must be a JSON list of image names") from None
        if cache_from is not None and not isinstance(cache_from, list):  # (null: none, as Go decodes it)
            raise InvalidArgument("cachefrom must be a JSON list of image names")
    resources = _build_resources(req)
    with d.engines.get() as engine, engine.store.staging() as stage:
        tar = stage / "context.tar"
        src = req.stream
        with open(tar, "wb") as f:
            while chunk := src.read(1 << 20):
                f.write(chunk)
        with open(tar, "rb") as f:
            head = f.read(512)
        ctx = None
        if _is_archive(head):
            from .. import _native

            ctx = stage / "context"
            ctx.mkdir()
            try:
                _native.extract(str(tar), str(ctx), whiteouts="apply")
            except (DockyardError, OSError) as exc:
                raise InvalidArgument(f"invalid build context: {exc}") from None
            tar.unlink()
            try:
                dockerfile = (ctx / dockerfile_name).read_bytes()
            except OSError:
                raise InvalidArgument(f"Cannot locate specified Dockerfile: {dockerfile_name}") from None
        else:  # not an archive: the body is the Dockerfile itself (``docker build - < Dockerfile``)
            dockerfile = tar.read_bytes()
            if not dockerfile:  # (dockerd's answer to an empty body, before any stream)
                raise DockyardError(f"Cannot locate specified Dockerfile: {dockerfile_name}")
            dockerfile_name = "Dockerfile"
        if not any(line.strip() and not line.lstrip().startswith(b"#") for line in dockerfile.splitlines()):
            # no instruction at all: dockerd refuses it before any stream (400)
            raise InvalidArgument(f"the Dockerfile ({dockerfile_name}) cannot be empty")
        out = _progress_stream(req)
        cancelled = threading.Event()
        done = threading.Event()
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC)  # the build's end wakes the watcher (no poll)
        tracked = _Tracking(engine, cancelled)
        watcher = threading.Thread(target=_watch_client, daemon=True,
                                   args=(d, req.handler.connection, tracked, done, wake_r))
        watcher.start()

        # Messages go out together when the builder is about to wait (a RUN, a COPY, a pull: its
        # ``flush``) and at the end: a warm cache's steps reach the client as one write.
        pending: list[bytes] = []

        def flush() -> None:
            if cancelled.is_set():
                raise DockyardError("the build was cancelled: the client went away")
            if not pending:
                return
            data = b"".join(pending)
            pending.clear()
            try:
                out.write(data)
            except OSError:
                cancelled.set()
                raise DockyardError("the build was cancelled: the client went away") from None

        def send(msg: dict) -> None:
            if cancelled.is_set():
                raise DockyardError("the build was cancelled: the client went away")
            pending.append(json.dumps(msg).encode() + b"\n")

        def emit(line: str) -> None:
            # the classic builder's words, as dockerd's /build streams them (docker-py counts
            # ' ---> Using cache'; a RUN's stderr comes wrapped in red)
            if not quiet:
                if isinstance(line, StderrLine):
                    send({"stream": "\x1b[91m" + line + "\n\x1b[0m"})
                elif line.startswith("[") and classic_line(line) != line:
                    # dockerd writes a step's line and its newline as two messages
                    send({"stream": classic_line(line)})
                    send({"stream": "\n"})
                else:
                    send({"stream": classic_line(line) + "\n"})
            elif cancelled.is_set():
                raise DockyardError("the build was cancelled: the client went away")

        try:
            opts = BuildOptions(ctx, dockerfile, dockerfile_name, tags, build_args, target, no_cache, labels,
                                network, context_is_archive=True, pull=pull, extra_hosts=extra_hosts,
                                cache_from=cache_from, resources=resources)
            image_id = Builder(tracked, opts, emit, flush).build()
            send({"aux": {"ID": image_id}})
            if quiet:
                send({"stream": image_id + "\n"})
            else:
                send({"stream": f"Successfully built {image_id.split(':', 1)[1][:12]}\n"})
                for t in tags:
                    send({"stream": f"Successfully tagged {refs.parse(t).familiar()}\n"})
            flush()
            out.close()  # the client has all it waits for: what follows is cleanup
        except DockyardError as exc:
            detail: dict = {"message": str(exc)}
            code = getattr(exc, "cli_exit", None)
            if isinstance(code, int) and code > 0:
                detail["code"] = code
            pending.append(json.dumps({"errorDetail": detail, "error": str(exc)}).encode() + b"\n")
            try:
                out.write(b"".join(pending))
            except OSError:
                pass
            out.close()
        finally:
            done.set()
            os.write(wake_w, b"x")
            watcher.join()
            os.close(wake_r)
            os.close(wake_w)
    return STREAMED


def _is_archive(head: bytes) -> bool:
    """A tar, or a compressed stream (gzip, zstd, bzip2, xz) the extractor unpacks."""
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd" or head[:3] == b"BZh" \
            or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


class _Tracking:
    """The engine as a build sees it, keeping the containers the build creates, so that a build
    whose client went away can stop them from another thread (:meth:`cancel`)."""

    def __init__(self, engine, cancelled: threading.Event) -> None:
        self._engine = engine
        self.containers = _TrackedContainers(engine.containers, cancelled)

    def cancel(self, d) -> None:
        self.containers.cancel(d)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


class _TrackedContainers:
    """The engine's containers, noting those the build creates.  A cancelled build starts no
    container, and one it was starting when cancelled is killed as soon as its start returns:
    with :meth:`cancel` killing those already running, none is left to run on (no retries on a
    timer)."""

    def __init__(self, containers, cancelled: threading.Event) -> None:
        self._containers = containers
        self._cancelled = cancelled
        self._lock = threading.Lock()
        self.created: list[str] = []

    def create(self, *args, **kwargs) -> str:
        cid = self._containers.create(*args, **kwargs)
        with self._lock:
            self.created.append(cid)
        return cid

    def start(self, cid: str, *args, **kwargs) -> dict:
        with self._lock:
            if self._cancelled.is_set():
                raise DockyardError("the build was cancelled: the client went away")
        try:
            return self._containers.start(cid, *args, **kwargs)
        finally:
            with self._lock:
                late = self._cancelled.is_set()  # cancel() may have found it not running yet
            if late:
                try:
                    self._containers.kill(cid, "KILL")
                except DockyardError:
                    pass

    def cancel(self, d) -> None:
        """Say the build is cancelled and kill the containers it has running (from any thread)."""
        with self._lock:
            self._cancelled.set()
            created = list(self.created)
        for cid in created:
            try:
                with d.engines.get() as engine:
                    engine.containers.kill(cid, "KILL")
            except Exception:  # (not running, removed meanwhile: nothing to stop)
                pass

    def __getattr__(self, name: str):
        return getattr(self._containers, name)


def _watch_client(d, sock, tracked: _Tracking, done: threading.Event, wake: int) -> None:
    """Until ``done`` (said on the ``wake`` pipe too): when the client closes its side of the
    connection, cancel the build (:meth:`_Tracking.cancel`)."""
    import select
    import socket

    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLRDHUP)
    poller.register(wake, select.POLLIN)
    while not done.is_set():
        if wake in dict(poller.poll()):  # (no timeout: the build's end writes to ``wake``)
            return
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data:
            return  # the client sent something (not a hang-up): nothing to watch for any more
        tracked.cancel(d)
        return


def _build_resources(req: Request):
    """The RUN containers' limits that ``/build`` takes (``shmsize``, ``memory``, ``memswap``,
    ``cpushares``, ``cpusetcpus``, ``cpusetmems``, ``cpuperiod``, ``cpuquota``, ``ulimits``), as
    the classic builder applies them."""
    from ..engine.spec import Resources, parse_ulimit

    res = Resources(shm_size=req.int("shmsize", 0) or 0, memory=req.int("memory", 0) or 0,
                    memory_swap=req.int("memswap", 0) or 0, cpu_shares=req.int("cpushares", 0) or 0,
                    cpu_period=req.int("cpuperiod", 0) or 0, cpu_quota=req.int("cpuquota", 0) or 0,
                    cpuset_cpus=req.arg("cpusetcpus") or "", cpuset_mems=req.arg("cpusetmems") or "")
    if res.shm_size < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    if res.memory and res.memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    try:
        ulimits = json.loads(req.arg("ulimits") or "null") or []
        res.ulimits = [parse_ulimit(f"{u['Name']}={int(u['Soft'])}:{int(u['Hard'])}") for u in ulimits]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("ulimits must be a JSON list of {Name, Soft, Hard}") from None
    return res


def build_prune(d, req: Request) -> dict:
    """Forget the build cache (its images stay, as the classic builder's: ``image prune``)."""
    from ..build import prune_cache

    req.bool("all")
    with d.engines.get() as engine:
        return prune_cache(engine)
