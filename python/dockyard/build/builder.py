"""The builder: Dockerfile instructions -> images, as Docker's classic builder makes them.

Every step is committed as an image whose parent is the previous step's (so a later build can
start from any of them), with Docker's history entries and empty-layer rules:

* RUN runs in a real container of the engine (network ``none``), its output streamed to the
  progress stream; the container's upper dir becomes the layer (none when nothing changed).
* COPY, ADD and WORKDIR change the image's root through an overlay mount of its layers with a
  private upper dir; that upper dir becomes the layer.  No container is needed.
* ENV, CMD, LABEL, ARG and the other metadata instructions change only the config and add a
  history entry with ``empty_layer: true``.

The cache (table ``build_cache`` in the store's database) maps a key made of the parent image
ID, the instruction with its arguments expanded (and the build args a RUN sees) and the
checksums of the files a COPY/ADD reads, to the image that step made.

An interrupted build leaves no container and no mount behind (``finally`` everywhere) and no
half-registered image (registration is one transaction).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.spec import Resources
from ..errors import DockyardError, ImageNotFound
from ..units import go_duration
from .cache import CACHE_SCHEMA, KNOWN
from .context import Context, _clean
from .errors import BuildError, DockerfileError
from .files import NoIgnore, OnlyNames, copy_one, extract_archive, is_archive, mkdir_all, parse_chown, replace_file, resolve_in
from .follow import follow
from .parser import Instruction, Stage, parse, parse_duration, parse_line, parse_port, split_stages
from .shell import ExpansionError, env_map, expand, expand_words

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


@dataclass
class BuildOptions:
    context: Path | None                   # None: no context (a Dockerfile alone)
    dockerfile: str | bytes
    dockerfile_name: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "none"                  # RUN containers' network (docker build --network)
    # A context that came as a tar: Docker's CLI applies .dockerignore only when it makes the tar
    # from a directory; the daemon then only drops the Dockerfile and .dockerignore if excluded.
    context_is_archive: bool = False
    pull: bool = False                     # docker build --pull: FROM images pulled even when present
    extra_hosts: list[str] = field(default_factory=list)  # --add-host HOST:IP for the RUN containers
    # --cache-from: when given, only these images (and their parents) are cache sources, as the
    # classic builder's; None: the local cache
    cache_from: list[str] | None = None
    # the RUN containers' limits (docker build --shm-size, --memory, --ulimit, ...)
    resources: Resources = field(default_factory=Resources)


def classic_line(line: str) -> str:
    """A progress line in the classic builder's words (dockerd's /build): ``[2/4] RUN x`` is
    ``Step 2/4 : RUN x``, a cache hit `` ---> Using cache``."""
    if line == " CACHED":
        return " ---> Using cache"
    if line.startswith("[") and "] " in line:
        head, _, rest = line[1:].partition("] ")
        n, _, total = head.partition("/")
        if n.isdigit() and total.isdigit():
            return f"Step {n}/{total} : {rest}"
    return line


@dataclass
class State:
    """One stage being built: the image so far and the variables in scope."""

    image_id: str = ""
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)  # {"diff_id", "chain_id", "existing": True}
    arch: str = "amd64"
    os: str = "linux"
    author: str = ""
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs declared in this stage
    cmd_set: bool = False
    name: str = ""

    @property
    def env(self) -> list[str]:
        return list(self.config.get("Env") or [])

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


class Builder:
    def __init__(self, engine, opts: BuildOptions, out: Callable[[str], None] | None = None,
                 flush: Callable[[], None] | None = None) -> None:
        """``out`` takes each line of progress; ``flush`` (if given) is called before the builder
        waits for something (a RUN, a COPY, a pull, a RUN's output), so that ``out`` may buffer
        lines until then: a warm cache's steps can then reach a client in one write."""
        self.engine = engine
        self.images = engine.images
        self.store = engine.store
        self.opts = opts
        self.out = out or (lambda s: None)
        self.flush = flush or (lambda: None)
        self.file = opts.dockerfile_name
        self.context = Context(opts.context) if opts.context is not None else None
        if self.context is not None and opts.context_is_archive:
            dropped = {n for n in (opts.dockerfile_name, ".dockerignore") if self.context.ignore.excluded(n)}
            self.context.ignore = OnlyNames(dropped)  # type: ignore[assignment]
        # Docker's CLI sends the Dockerfile and .dockerignore even when excluded, and the daemon
        # then removes them if they match: COPY sees the plain ignore rules.
        self.meta: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0
        self.escape = "\\"
        self.stage_results: dict[int, State] = {}
        self.stage_names: dict[str, int] = {}
        self._cache_ready = False

    # -- variables --------------------------------------------------------------------------------

    def _arg_value(self, key: str, mapping: dict[str, str | None]) -> tuple[str, bool]:
        if key in self.opts.build_args and self.opts.build_args[key] is not None:
            self.used_args.add(key)
            return self.opts.build_args[key], True  # type: ignore[return-value]
        if key in mapping and mapping[key] is not None:
            return mapping[key], True  # type: ignore[return-value]
        if key in mapping and self.meta.get(key) is not None:
            return self.meta[key], True  # type: ignore[return-value]
        return "", False

    def _all_allowed(self, mapping: dict[str, str | None]) -> dict[str, str]:
        out = {}
        for key in list(mapping) + [p for p in PROXY_ARGS if p not in mapping]:
            value, ok = self._arg_value(key, mapping)
            if ok:
                out[key] = value
        return out

    def _meta_env(self) -> dict[str, str]:
        out = {}
        for key in list(self.meta) + [p for p in PROXY_ARGS if p not in self.meta]:
            if key in self.opts.build_args and self.opts.build_args[key] is not None:
                out[key] = self.opts.build_args[key]
                self.used_args.add(key)
            elif self.meta.get(key) is not None:
                out[key] = self.meta[key]
        return out  # type: ignore[return-value]

    def _build_args(self, state: State) -> list[str]:
        """The build args a step sees: those in scope, minus the ones ENV has set."""
        env_keys = {e.partition("=")[0] for e in state.env}
        return [f"{k}={v}" for k, v in self._all_allowed(state.args).items() if k not in env_keys]

    def _expand_env(self, state: State) -> dict[str, str]:
        return env_map(state.env + self._build_args(state))

    def _expand(self, inst: Instruction, word: str, env: dict[str, str]) -> str:
        try:
            return expand(word, env, self.escape)
        except ExpansionError as exc:
            col = inst.original.find(word) + 1 if word else 0
            raise DockerfileError(str(exc), inst.line, col if col > 0 else 1, self.file) from None

    # -- the build --------------------------------------------------------------------------------

    def build(self) -> str:
        df = parse(self.opts.dockerfile, self.file)
        self.escape = df.escape
        meta, stages = split_stages(df)
        for inst in meta:
            for key, value in inst.pairs:
                if value is not None:
                    try:
                        value = expand(value, self._meta_env(), self.escape)
                    except ExpansionError as exc:
                        raise DockerfileError(str(exc), inst.line, 1, self.file) from None
                self.meta[key] = value
        for st in stages:
            if st.name:
                self.stage_names[st.name] = st.index
        target = stages[-1]
        if self.opts.target:
            idx = self.stage_names.get(self.opts.target.lower())
            if idx is None:
                raise DockerfileError(f"failed to reach build target {self.opts.target} in Dockerfile", 0, 0, self.file)
            target = stages[idx]
        needed = self._needed(stages, target)
        for key in sorted(self.opts.labels):
            inst = Instruction("LABEL", 0, 0, f"LABEL {key}={self.opts.labels[key]}")
            inst.pairs = [(key, self.opts.labels[key])]  # line 0: not expanded (see _do_label)
            target.instructions.append(inst)
        self.total = sum(1 + len(s.instructions) for s in stages if s.index in needed)
        state = State()
        for st in stages:
            if st.index not in needed:
                continue
            state = self._build_stage(st)
            self.stage_results[st.index] = state
            if st is target:
                break
        if not state.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        unused = sorted(k for k in self.opts.build_args if k not in self.used_args and k not in PROXY_ARGS
                        and not self._declared(k, stages, needed))
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        for tag in self.opts.tags:
            self.images.tag(state.image_id, tag)
        return state.image_id

    def _declared(self, key: str, stages: list[Stage], needed: set[int]) -> bool:
        if key in self.meta:
            return True
        return any(key == k for s in stages if s.index in needed for i in s.instructions
                   if i.cmd == "ARG" for k, _ in i.pairs)

    def _needed(self, stages: list[Stage], target: Stage) -> set[int]:
        by_name = {s.name: s.index for s in stages if s.name}
        meta_env = self._meta_env()
        need: set[int] = set()

        def visit(idx: int) -> None:
            if idx in need:
                return
            need.add(idx)
            st = stages[idx]
            try:
                base = expand(st.base, meta_env, self.escape).lower()
            except ExpansionError:
                base = st.base.lower()
            if base in by_name and by_name[base] < idx:
                visit(by_name[base])
            for inst in st.instructions:
                ref = inst.flags.get("from") if inst.cmd == "COPY" else None
                if ref:
                    try:
                        ref = expand(ref, meta_env, self.escape).lower()
                    except ExpansionError:
                        ref = ref.lower()
                    if ref in by_name and by_name[ref] < idx:
                        visit(by_name[ref])
                    elif ref.isdigit() and int(ref) < idx:
                        visit(int(ref))

        visit(target.index)
        return need

    def _announce(self, inst: Instruction) -> None:
        self.step += 1
        self.out(f"[{self.step}/{self.total}] {inst.original}")

    def _build_stage(self, st: Stage) -> State:
        self._announce(st.from_inst)
        state = self._from(st)
        triggers = list(state.config.get("OnBuild") or [])
        if triggers:
            state.config["OnBuild"] = None
            self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for expr in triggers:
                trig = parse_line(expr, st.from_inst.line, st.from_inst.line, self.escape, self.file, onbuild=True)
                self.out(f" ---> {trig.original}")
                self._dispatch(state, trig)
        for inst in st.instructions:
            self._announce(inst)
            self._dispatch(state, inst)
        return state

    def _from(self, st: Stage) -> State:
        inst = st.from_inst
        try:
            base = expand(st.base, self._meta_env(), self.escape)
        except ExpansionError as exc:
            raise DockerfileError(str(exc), inst.line, 1, self.file) from None
        if not base:
            raise DockerfileError(f"base name ({st.base}) should not be blank", inst.line, 1, self.file)
        idx = self.stage_names.get(base.lower())
        if idx is not None and idx < st.index:
            prev = self.stage_results[idx]
            state = State(prev.image_id, json.loads(json.dumps(prev.config)), list(prev.history),
                          list(prev.layers), prev.arch, prev.os, "")
        elif base == "scratch":
            state = State(config={})
            import platform as _p

            state.arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(_p.machine(), _p.machine())
        else:
            state = self._load(self._local_or_pulled(base, always=self.opts.pull))
        state.name = st.name
        env = state.config.get("Env") or []
        if not any(e.partition("=")[0] == "PATH" for e in env):
            state.config["Env"] = list(env) + ["PATH=" + DEFAULT_PATH]
        return state

    def _local_or_pulled(self, name: str, always: bool = False) -> str:
        """The image's ID, pulled from its registry first when the store lacks it (as docker's
        builder does for FROM and COPY --from), or in any case with ``always`` (``--pull``),
        the pull's lines in the build's output as docker's builder prints them."""
        if not always:
            try:
                return self.images.resolve(name)
            except ImageNotFound:
                pass
            self.out(f"Unable to find image '{name}' locally; pulling")
            self.flush()
        from ..registry.pull import pull

        def progress(layer: str, status: str, current: int | None, total: int | None) -> None:
            if current is None:  # (no byte counts in a build's log)
                self.out(f"{layer}: {status}" if layer else status)

        try:
            results = pull(self.engine, name, progress=progress)
        except DockyardError as exc:
            raise BuildError(f"pull access denied for {name}: {exc}") from None
        r = results[0]
        from .. import reference as refs

        fam = refs.parse(r.reference).familiar()
        self.out(f"Digest: {r.digest}")
        self.out(f"Status: Downloaded newer image for {fam}" if r.new else f"Status: Image is up to date for {fam}")
        self.flush()
        return r.image_id

    def _load(self, image_id: str) -> State:
        """The state of a stored image (one the store has: resolved, or a cache hit)."""
        known = KNOWN.get(image_id)
        if known is None:
            raw = self.images.config_bytes(image_id)  # (read and verified)
            known = KNOWN.put(image_id, raw, [(l["diff_id"], l["chain_id"]) for l in self.images.layers(image_id)])
        raw, layer_ids = known
        cfg = json.loads(raw)
        layers = [{"diff_id": d, "chain_id": c, "existing": True} for d, c in layer_ids]
        return State(image_id, dict(cfg.get("config") or {}), list(cfg.get("history") or []), layers,
                     cfg.get("architecture", "amd64"), cfg.get("os", "linux"), cfg.get("author", ""))

    # -- cache ------------------------------------------------------------------------------------

    def _cache_key(self, state: State, created_by: str, extra: str = "") -> str:
        h = hashlib.sha256()
        for part in (state.image_id, created_by, extra, json.dumps(full_config(state.config, ''), sort_keys=True), state.author):
            h.update(part.encode("utf-8", "surrogateescape"))
            h.update(b"\0")
        return h.hexdigest()

    def _cache_get(self, key: str) -> str | None:
        if self.opts.no_cache:
            return None
        self._ensure_cache()
        row = self.store.db.execute("SELECT b.image_id FROM build_cache b JOIN images i ON i.id = b.image_id "
                                    "WHERE b.key=?", (key,)).fetchone()
        if row is None:
            return None
        if self.opts.cache_from is not None and row[0] not in self._cache_sources():
            return None
        return row[0]

    def _cache_sources(self) -> set[str]:
        """The images --cache-from names (those that exist) and all their parents."""
        if getattr(self, "_sources", None) is None:
            out: set[str] = set()
            db = self.store.db
            for ref in self.opts.cache_from or []:
                try:
                    iid = self.images.resolve(ref)
                except DockyardError:
                    continue
                while iid and iid not in out:
                    out.add(iid)
                    row = db.execute("SELECT parent FROM images WHERE id=?", (iid,)).fetchone()
                    iid = row[0] if row else ""
            self._sources = out
        return self._sources

    def _ensure_cache(self) -> None:
        if not self._cache_ready:
            self.store.db.executescript(CACHE_SCHEMA)
            self._cache_ready = True

    def _cache_put(self, key: str, image_id: str) -> None:
        self._ensure_cache()
        # The first image made for a key stays its answer while it exists: a --no-cache build (or a
        # second stage with the same first steps) must not re-point a key and orphan the chain of
        # cached children that hangs off the image it had.
        with self.store.transaction() as db:
            row = db.execute("SELECT image_id FROM build_cache WHERE key=?", (key,)).fetchone()
            if row is not None and row[0] != image_id and \
                    db.execute("SELECT 1 FROM images WHERE id=?", (row[0],)).fetchone() is not None:
                return
            db.execute("INSERT OR REPLACE INTO build_cache VALUES (?,?,?)", (key, image_id, time.time()))

    def _try_cache(self, state: State, key: str) -> bool:
        hit = self._cache_get(key)
        if hit is None:
            return False
        name = state.name
        args, cmd_set = state.args, state.cmd_set
        loaded = self._load(hit)
        state.__dict__.update(loaded.__dict__)
        state.name, state.args, state.cmd_set = name, args, cmd_set
        self.out(" CACHED")
        return True

    # -- committing -------------------------------------------------------------------------------

    def _commit(self, state: State, created_by: str, layer: dict | None, key: str) -> None:
        from ..engine.images import NewImage, now_rfc3339
        from ..engine.store import chain_ids, dumps

        created = now_rfc3339()
        entry: dict = {"created": created, "created_by": created_by}
        if state.author:
            entry["author"] = state.author
        records = list(state.layers)
        if layer is not None and layer["diff_id"] != EMPTY_LAYER:
            layer["chain_id"] = chain_ids([r["diff_id"] for r in records] + [layer["diff_id"]])[-1]
            records.append(layer)
        else:
            entry["empty_layer"] = True
        history = state.history + [entry]
        config: dict = {"architecture": state.arch}
        if state.author:
            config["author"] = state.author
        config["config"] = full_config(state.config, state.image_id)
        config["created"] = created
        config["history"] = history
        config["os"] = state.os
        config["rootfs"] = {"type": "layers", "diff_ids": [r["diff_id"] for r in records]}
        raw = dumps(config).encode()
        image_id, _ = self.images.register(NewImage(raw, [], parent=state.image_id), records)
        KNOWN.put(image_id, raw, [(r["diff_id"], r["chain_id"]) for r in records])
        self._cache_put(key, image_id)
        state.image_id = image_id
        state.history = history
        state.layers = [{"diff_id": r["diff_id"], "chain_id": r["chain_id"], "existing": True} for r in records]

    def _meta_commit(self, state: State, comment: str, change: Callable[[], None]) -> None:
        """An empty-layer step: change the config, then commit ``#(nop)  comment``."""
        change()
        created_by = " ".join(state.shell + ["#(nop) ", comment])
        key = self._cache_key(state, created_by)
        if self._try_cache(state, key):
            return
        self._commit(state, created_by, None, key)

    # -- instructions -----------------------------------------------------------------------------

    def _dispatch(self, state: State, inst: Instruction) -> None:
        env = self._expand_env(state)
        cmd = inst.cmd
        handler = getattr(self, "_do_" + cmd.lower())
        handler(state, inst, env)

    def _do_maintainer(self, state: State, inst: Instruction, env: dict) -> None:
        def change() -> None:
            state.author = inst.args[0]
        self._meta_commit(state, "MAINTAINER " + inst.args[0], change)

    def _do_env(self, state: State, inst: Instruction, env: dict) -> None:
        pairs = [(self._expand(inst, k, env), self._expand(inst, v or "", env)) for k, v in inst.pairs]
        for k, _ in pairs:
            if not k:
                raise DockerfileError("ENV names can not be blank", inst.line, 1, self.file)

        def change() -> None:
            cur = state.env
            for k, v in pairs:
                new = f"{k}={v}"
                for i, e in enumerate(cur):
                    if e.partition("=")[0] == k:
                        cur[i] = new
                        break
                else:
                    cur.append(new)
            state.config["Env"] = cur
        self._meta_commit(state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs), change)

    def _do_label(self, state: State, inst: Instruction, env: dict) -> None:
        if inst.line == 0:  # from --label: no expansion
            pairs = [(k, v or "") for k, v in inst.pairs]
        else:
            pairs = [(self._expand(inst, k, env), self._expand(inst, v or "", env)) for k, v in inst.pairs]

        def change() -> None:
            labels = dict(state.config.get("Labels") or {})
            labels.update(pairs)
            state.config["Labels"] = labels
        self._meta_commit(state, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), change)

    def _do_arg(self, state: State, inst: Instruction, env: dict) -> None:
        parts = []
        for key, value in inst.pairs:
            if value is not None:
                value = self._expand(inst, value, env)
            state.args[key] = value
            if key in self.opts.build_args:
                self.used_args.add(key)
            parts.append(key if value is None else f"{key}={value}")
        self._meta_commit(state, "ARG " + " ".join(parts), lambda: None)

    def _do_cmd(self, state: State, inst: Instruction, env: dict) -> None:
        cmd = inst.args if inst.json else (state.shell + inst.args if inst.args else [])

        def change() -> None:
            state.config["Cmd"] = cmd or None
            if inst.args:
                state.cmd_set = True
        self._meta_commit(state, f"CMD {go_quote_list(cmd)}", change)

    def _do_entrypoint(self, state: State, inst: Instruction, env: dict) -> None:
        ep = inst.args if inst.json else (state.shell + inst.args if inst.args and inst.args[0] else [])

        def change() -> None:
            state.config["Entrypoint"] = ep if (ep or inst.json) else None
            if not state.cmd_set:
                state.config["Cmd"] = None
        self._meta_commit(state, f"ENTRYPOINT {go_quote_list(ep)}", change)

    def _do_shell(self, state: State, inst: Instruction, env: dict) -> None:
        def change() -> None:
            state.config["Shell"] = list(inst.args)
        self._meta_commit(state, f"SHELL [{' '.join(inst.args)}]", change)

    def _do_expose(self, state: State, inst: Instruction, env: dict) -> None:
        ports: list[str] = []
        for word in inst.args:
            try:
                ports += expand_words(word, env, self.escape)
            except ExpansionError as exc:
                raise DockerfileError(str(exc), inst.line, 1, self.file) from None
        specs = []
        for p in ports:
            specs += parse_port(p, inst, self.file)

        def change() -> None:
            exposed = dict(state.config.get("ExposedPorts") or {})
            for s in specs:
                exposed[s] = {}
            state.config["ExposedPorts"] = exposed
        self._meta_commit(state, "EXPOSE " + " ".join(sorted(ports)), change)  # Docker sorts them

    def _do_volume(self, state: State, inst: Instruction, env: dict) -> None:
        vols = []
        for word in inst.args:
            v = self._expand(inst, word, env).strip()
            if not v:
                raise DockerfileError("VOLUME specified can not be an empty string", inst.line, 1, self.file)
            vols.append(v)

        def change() -> None:
            cur = dict(state.config.get("Volumes") or {})
            for v in vols:
                cur[v] = {}
            state.config["Volumes"] = cur
        self._meta_commit(state, f"VOLUME [{' '.join(vols)}]", change)

    def _do_user(self, state: State, inst: Instruction, env: dict) -> None:
        user = self._expand(inst, inst.args[0], env)

        def change() -> None:
            state.config["User"] = user
        self._meta_commit(state, f"USER {user}", change)

    def _do_stopsignal(self, state: State, inst: Instruction, env: dict) -> None:
        from ..engine.spec import parse_signal

        sig = self._expand(inst, inst.args[0], env)
        try:
            parse_signal(sig)
        except DockyardError:
            raise DockerfileError(f"Invalid signal: {sig}", inst.line, 1, self.file) from None

        def change() -> None:
            state.config["StopSignal"] = sig
        self._meta_commit(state, f"STOPSIGNAL {sig}", change)

    def _do_onbuild(self, state: State, inst: Instruction, env: dict) -> None:
        expr = re.sub(r"(?i)^\s*ONBUILD\s*", "", inst.original)

        def change() -> None:
            state.config["OnBuild"] = list(state.config.get("OnBuild") or []) + [expr]
        self._meta_commit(state, "ONBUILD " + expr, change)

    def _do_healthcheck(self, state: State, inst: Instruction, env: dict) -> None:
        hc: dict = {"Test": list(inst.args)}
        values = {}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            raw = inst.flags.get(flag)
            ns = 0
            if raw:
                ns = parse_duration(raw, inst, self.file)
                if ns < 1_000_000 and ns != 0:
                    raise DockerfileError(f"Interval \"{flag}\" cannot be less than 1ms", inst.line, 1, self.file)
            values[key] = ns
            if ns:
                hc[key] = ns
        retries = 0
        if inst.flags.get("retries"):
            try:
                retries = int(inst.flags["retries"])
            except ValueError:
                raise DockerfileError(f"invalid retries value {inst.flags['retries']!r}", inst.line, 1, self.file) from None
            if retries < 1:
                raise DockerfileError(f"--retries must be at least 1 (not {retries})", inst.line, 1, self.file)
            if retries:
                hc["Retries"] = retries
        if inst.args == ["NONE"]:
            hc = {"Test": ["NONE"]}
            values = {"Interval": 0, "Timeout": 0, "StartPeriod": 0}
            retries = 0
        comment = (f"HEALTHCHECK &{{[{' '.join(go_quote(t) for t in hc['Test'])}] "
                   f"{go_quote(go_duration(values['Interval']))} {go_quote(go_duration(values['Timeout']))} "
                   f"{go_quote(go_duration(values['StartPeriod']))} {go_rune(retries)}}}")

        def change() -> None:
            # Docker's classic builder shares the health check between the step's config and the
            # container it creates to commit it, whose creation fills zero fields from the parent
            # image's health check: so those are inherited (the history shows the values given).
            prev = state.config.get("Healthcheck") or {}
            merged = dict(hc)
            for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
                if not merged.get(key) and prev.get(key):
                    merged[key] = prev[key]
            state.config["Healthcheck"] = merged
        self._meta_commit(state, comment, change)

    # -- RUN --------------------------------------------------------------------------------------

    def _do_run(self, state: State, inst: Instruction, env: dict) -> None:
        script: tuple[str, str] | None = None
        if inst.json:
            cmd = list(inst.args)
        elif inst.heredocs and inst.rest.strip() == f"<<{'-' if inst.heredocs[0].chomp else ''}" \
                f"{_quoted_name(inst)}" and len(inst.heredocs) == 1:
            cmd = state.shell + [inst.heredocs[0].content]
            if inst.heredocs[0].content.startswith("#!"):
                # BuildKit's rule: a script with a shebang runs as a file of its own, here bound
                # read-only at /dev/pipes/NAME (on /dev's tmpfs: nothing of it reaches the layer)
                script = (inst.heredocs[0].name, inst.heredocs[0].content)
        elif inst.heredocs:
            text = inst.rest + "\n" + "".join(h.content + h.name + "\n" for h in inst.heredocs)
            cmd = state.shell + [text]
        else:
            cmd = state.shell + [inst.args[0]]
        build_args = self._build_args(state)
        save_cmd = cmd
        if build_args:
            referenced = [a for a in build_args if a.partition("=")[0] not in PROXY_ARGS
                          or a.partition("=")[0] in state.args]
            save_cmd = [f"|{len(referenced)}", *sorted(referenced), *cmd]
        created_by = " ".join(save_cmd)
        key = self._cache_key(state, created_by)
        if self._try_cache(state, key):
            return
        if not state.image_id:
            raise BuildError(f"The command '{' '.join(cmd)}' could not run: the stage has no image "
                             "(FROM scratch has no shell)", 127)
        self.flush()
        layer_key = key
        containers = self.engine.containers
        from ..engine.containers import CreateOptions

        with self.store.staging() as stage:
            cid = ""
            binds = []
            run_cmd = cmd
            if script is not None:
                path = stage / "heredoc"
                path.write_text(script[1])
                os.chmod(path, 0o755)
                binds = [f"{path}:/dev/pipes/{script[0]}:ro"]
                run_cmd = [f"/dev/pipes/{script[0]}"]
            try:
                cid = containers.create(CreateOptions(
                    image=state.image_id, cmd=run_cmd, entrypoint=[], env=state.env + build_args,
                    workdir=state.config.get("WorkingDir") or "", user=state.config.get("User") or "",
                    network=self.opts.network or "none", labels={}, volumes=binds,
                    add_host=list(self.opts.extra_hosts), resources=self.opts.resources))
                started = containers.start(cid)
                code = follow(self.engine.containers, cid, started.get("ShimPid") or started.get("Pid") or 0,
                              self.out, self.flush)
                if code != 0:
                    raise BuildError(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", 1)
                layer = containers.snapshot(cid, stage)
            finally:
                if cid:
                    try:
                        containers.remove(cid, force=True)
                    except DockyardError:
                        pass
            self._commit(state, created_by, layer, layer_key)

    # -- COPY / ADD / WORKDIR -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _rootfs(self, state: State) -> Iterator[tuple[Path, Path, Path, list[str]]]:
        """The stage's root mounted read-write on a private upper dir: (stage, merged, upper, lowers)."""
        from .. import _native

        self.flush()
        with self.store.staging() as stage:
            upper, work, merged, empty = (stage / n for n in ("upper", "work", "merged", "empty"))
            for d in (upper, work, merged, empty):
                d.mkdir()
            lowers = [str(self.store.layer_path(r["chain_id"])) for r in reversed(state.layers)]
            _native.mount_overlay(lowers or [str(empty)], str(upper), str(work), str(merged))
            try:
                yield stage, merged, upper, lowers or [str(empty)]
            finally:
                try:
                    _native.umount(str(merged))
                except OSError:
                    pass

    def _layer_from_upper(self, stage: Path, upper: Path, lowers: list[str]) -> dict:
        from .. import _native
        from ..engine.images import LayerSource

        changes = _native.changes(str(upper), lowers)
        blob = stage / "layer.tar.gz"
        _native.pack(str(upper), str(blob), compression="gzip", level=1, upper=True, changes=changes)
        sub = stage / "extract"
        sub.mkdir()
        (layer,) = self.images.extract_layers(sub, [LayerSource(str(blob), own=True)])
        return layer

    def _do_workdir(self, state: State, inst: Instruction, env: dict) -> None:
        path = self._expand(inst, inst.args[0], env)
        base = state.config.get("WorkingDir") or "/"
        if not path:
            raise DockerfileError("cannot normalize nothing", inst.line, 1, self.file)
        # Docker's normalizeWorkdir: an absolute path is kept as written, a relative one joined
        workdir = path if path.startswith("/") else _clean(posixpath.join("/", base, path))
        state.config["WorkingDir"] = workdir
        created_by = " ".join(state.shell + [f"#(nop) WORKDIR {workdir}"])
        key = self._cache_key(state, created_by)
        if self._try_cache(state, key):
            return
        with self._rootfs(state) as (stage, merged, upper, lowers):
            real = resolve_in(merged, workdir)
            if not os.path.lexists(real):
                mkdir_all(merged, workdir, 0, 0)
            layer = self._layer_from_upper(stage, upper, lowers)
            self._commit(state, created_by, layer, key)

    def _do_copy(self, state: State, inst: Instruction, env: dict) -> None:
        self._copy(state, inst, env, add=False)

    def _do_add(self, state: State, inst: Instruction, env: dict) -> None:
        self._copy(state, inst, env, add=True)

    def _copy(self, state: State, inst: Instruction, env: dict, add: bool) -> None:
        name = "ADD" if add else "COPY"
        words = list(inst.args)
        heredoc_by_name = {h.name: h for h in inst.heredocs}
        srcs_raw, dest_raw = words[:-1], words[-1]
        dest = self._expand(inst, dest_raw, env)
        if not srcs_raw:
            raise DockerfileError(f"{name} requires at least two arguments", inst.line, 1, self.file)
        chown = self._expand(inst, inst.flags["chown"], env) if inst.flags.get("chown") else ""
        chmod = inst.flags.get("chmod") or ""
        mode = None
        if chmod:
            try:
                mode = int(chmod, 8)
            except ValueError:
                raise DockerfileError(f"invalid chmod parameter: {chmod}", inst.line, 1, self.file) from None
        from_state: State | None = None
        from_ref = inst.flags.get("from")
        if from_ref:
            from_ref = self._expand(inst, from_ref, self._meta_env())
            idx = self.stage_names.get(from_ref.lower())
            if idx is None and from_ref.isdigit():
                idx = int(from_ref)
            if idx is not None and idx in self.stage_results:
                from_state = self.stage_results[idx]
            elif idx is not None:
                raise DockerfileError(f"invalid from flag value {from_ref}: refers to a stage not built "
                                      "before this one", inst.line, 1, self.file)
            else:
                from_state = self._load(self._local_or_pulled(from_ref))
        # sources: (kind, value): ("ctx", rel) | ("heredoc", Heredoc)
        sources: list[tuple[str, object]] = []
        for raw in srcs_raw:
            m = re.fullmatch(r"<<-?[\"']?([A-Za-z_][A-Za-z0-9_.-]*)[\"']?", raw)
            if m and m.group(1) in heredoc_by_name:
                hd = heredoc_by_name[m.group(1)]
                content = self._expand(inst, hd.content, env) if hd.expand else hd.content
                sources.append(("heredoc", (hd.name, content)))
                continue
            src = self._expand(inst, raw, env)
            if re.match(r"^[a-z]+://", src):
                if add:
                    raise BuildError(f"ADD failed: fetching {src}: remote sources are not supported here "
                                     "(no network during builds)")
                raise BuildError(f"{name} failed: source can't be a URL for COPY")
            sources.append(("path", src))
        multi = len(sources) > 1
        probe = ""
        if from_state is not None:
            # An image's content never changes under its ID: a warm cache needs no mount to check
            probe = self._cache_key(state, f"{name} --from={from_state.image_id} {json.dumps(sources)} {dest}",
                                    f"{chown}\0{chmod}")
            if self._try_cache(state, probe):
                return
        with contextlib.ExitStack() as stack:
            if from_state is not None:
                _, src_merged, _, _ = stack.enter_context(self._rootfs(from_state))
                ctx = Context(src_merged, ignore=NoIgnore())
            else:
                if self.context is None and any(k == "path" for k, _ in sources):
                    raise BuildError(f"{name} failed: no build context: a Dockerfile alone on stdin "
                                     "cannot copy files")
                ctx = self.context  # type: ignore[assignment]
            items: list[tuple[str, object, list[str]]] = []  # (kind, source, walked rels)
            for kind, value in sources:
                if kind == "heredoc":
                    items.append(("heredoc", value, []))
                    continue
                src = str(value)
                matches = ctx.glob(src)
                if not matches or not all(os.path.lexists(ctx.root / m) if m != "." else True for m in matches):
                    if any(c in src for c in "*?["):
                        raise BuildError(f"{name} failed: no source files were specified")
                    raise BuildError(f"{name} failed: file not found in build context or excluded by "
                                     f".dockerignore: stat {src}: file does not exist")
                rel0 = matches[0]
                if len(matches) == 1 and rel0 != "." and ctx.ignore.excluded(rel0):
                    raise BuildError(f"{name} failed: file not found in build context or excluded by "
                                     f".dockerignore: stat {src}: file does not exist")
                if len(matches) > 1:
                    multi = True
                for rel in matches:
                    # a source named by a symlink is followed (inside the context), as Docker does
                    real = resolve_in(ctx.root, rel) if rel != "." else ctx.root
                    real_rel = str(real.relative_to(ctx.root)) or "."
                    if real_rel != "." and not os.path.lexists(real):
                        raise BuildError(f"{name} failed: file not found in build context or excluded by "
                                         f".dockerignore: stat {src}: file does not exist")
                    walked = ctx.walk(real_rel) if os.path.isdir(real) else []
                    items.append(("path", (rel, real_rel), walked))
            if multi and not dest.endswith("/"):
                raise BuildError(f"When using {name} with more than one source file, the destination "
                                 "must be a directory and end with a /")
            summary = hashlib.sha256()
            for kind, value, walked in items:
                if kind == "heredoc":
                    summary.update(os.fsencode(f"heredoc\0{value[0]}\0{value[1]}\n"))  # type: ignore[index]
                else:
                    summary.update(os.fsencode(f"{value[0]}\0"))  # type: ignore[index]
                    summary.update(ctx.checksum([value[1]] + walked).encode())  # type: ignore[index]
            content = summary.hexdigest()
            kind0 = "multi" if len(items) > 1 else ("dir" if items[0][0] == "path" and
                                                    os.path.isdir(ctx.root / items[0][1][1]) else "file")  # type: ignore[index]
            chown_note = f"--chown={chown}" if chown else ""  # Docker writes it with no blank after
            created_by = " ".join(state.shell + [f"#(nop) {name} {chown_note}{kind0}:{content} in {dest} "])
            extra = f"{chown}\0{chmod}\0{from_state.image_id if from_state else ''}"
            key = self._cache_key(state, created_by, extra)
            if self._try_cache(state, key):
                if probe:
                    self._cache_put(probe, state.image_id)
                return
            workdir = state.config.get("WorkingDir") or "/"
            dest_abs = posixpath.join("/", workdir, dest)
            dir_dest = dest.endswith("/") or dest.endswith("/.") or dest == "."
            with self._rootfs(state) as (stage, merged, upper, lowers):
                # COPY --from keeps the owners it finds (Docker's classic builder); else root
                uid, gid = (-1, -1) if from_state is not None else (0, 0)
                if chown:
                    uid, gid = parse_chown(chown, merged, inst, self.file)
                dest_clean = _clean(dest_abs)
                real_dest = resolve_in(merged, dest_clean)
                if not dir_dest and os.path.isdir(real_dest) and not os.path.islink(real_dest):
                    dir_dest = True
                for kind, value, walked in items:
                    if kind == "heredoc":
                        hname, text = value  # type: ignore[misc]
                        target = posixpath.join(dest_clean, hname) if dir_dest else dest_clean
                        parent = mkdir_all(merged, posixpath.dirname(target), uid, gid)
                        path = parent / posixpath.basename(target)
                        replace_file(path)
                        path.write_text(text)
                        os.chown(path, uid, gid)
                        os.chmod(path, mode if mode is not None else 0o644)
                        continue
                    rel, real_rel = value  # type: ignore[misc]
                    src_path = ctx.root / real_rel if real_rel != "." else ctx.root
                    st = os.lstat(src_path)
                    if stat.S_ISDIR(st.st_mode):
                        existed = os.path.isdir(resolve_in(merged, dest_clean))
                        top = mkdir_all(merged, dest_clean, uid, gid)
                        if not existed:
                            os.chown(top, *((st.st_uid, st.st_gid) if uid < 0 else (uid, gid)))
                            os.chmod(top, mode if mode is not None else stat.S_IMODE(st.st_mode))
                        base = real_rel if real_rel != "." else ""
                        for child in walked:
                            sub = child[len(base) + 1:] if base else child
                            copy_one(ctx.root / child, merged, posixpath.join(dest_clean, sub), uid, gid, mode)
                        continue
                    if add and stat.S_ISREG(st.st_mode) and is_archive(src_path):
                        top = mkdir_all(merged, dest_clean, 0, 0)
                        extract_archive(src_path, top)
                        continue
                    target = posixpath.join(dest_clean, posixpath.basename(rel)) if dir_dest else dest_clean
                    mkdir_all(merged, posixpath.dirname(target), uid, gid)
                    copy_one(src_path, merged, target, uid, gid, mode)
                layer = self._layer_from_upper(stage, upper, lowers)
                self._commit(state, created_by, layer, key)
        if probe:
            self._cache_put(probe, state.image_id)


def _quoted_name(inst: Instruction) -> str:
    m = re.search(r"<<-?([\"']?)[A-Za-z_][A-Za-z0-9_.-]*\1", inst.rest)
    return m.group(0).lstrip("<").lstrip("-") if m else ""


def go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def go_quote_list(items: list[str]) -> str:
    """``fmt.Sprintf("%q", []string{...})``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_rune(n: int) -> str:
    """``%q`` of an int: a quoted rune."""
    if 32 <= n < 127 and chr(n) not in "'\\":
        return f"'{chr(n)}'"
    if n < 128:
        return f"'\\x{n:02x}'"
    return f"'{chr(n)}'"


def full_config(cfg: dict, image_id: str) -> dict:
    """The run config as Docker's builder writes it (every field, Docker's order)."""
    out = {
        "Hostname": "", "Domainname": "", "User": cfg.get("User") or "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False,
    }
    if cfg.get("ExposedPorts"):
        out["ExposedPorts"] = cfg["ExposedPorts"]
    out.update({"Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": cfg.get("Env") or None,
                "Cmd": cfg.get("Cmd")})
    if cfg.get("Healthcheck"):
        out["Healthcheck"] = cfg["Healthcheck"]
    if cfg.get("ArgsEscaped"):
        out["ArgsEscaped"] = True
    out.update({"Image": image_id, "Volumes": cfg.get("Volumes") or None, "WorkingDir": cfg.get("WorkingDir") or "",
                "Entrypoint": cfg.get("Entrypoint"), "OnBuild": cfg.get("OnBuild") or None,
                "Labels": cfg.get("Labels") or None})
    for key in ("StopSignal", "StopTimeout", "Shell"):
        if cfg.get(key):
            out[key] = cfg[key]
    return out


