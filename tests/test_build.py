"""Dockerfile builds: dockyard's results next to a real Docker's (classic builder) for the same files.

Each comparison builds one Dockerfile with ``DOCKER_BUILDKIT=0 docker build --network none`` on
the private dockerd and with dockyard's builder, from the same base image tar, then compares:
the image config, the history (created_by, empty layers), the exported file tree (content,
mode, owner; mtimes for copied files) and the RUN output.  Engine-only tests cover the cache,
failures, interruption, heredocs and the CLI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import extract_with_tar, make_busybox_rootfs, needs_root, tar_dir, tree

from dockyard.build import BuildOptions, Builder
from dockyard.build.errors import BuildError, DockerfileError

pytestmark = needs_root
BASE = "dybuild:base"
IGNORE = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev", "/proc", "/sys", "/.dockerenv", "/etc/mtab")


@pytest.fixture(scope="session")
def base_tar(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("buildbase")
    root = make_busybox_rootfs(work / "rootfs")
    for applet in ("find", "sort", "tar", "ln", "pwd", "seq", "head"):
        (root / "bin" / applet).symlink_to("busybox")
    return tar_dir(root, work / "base.tar")


@pytest.fixture(scope="session")
def docker_base(dockerd, base_tar) -> str:
    dockerd.docker("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    return BASE


@pytest.fixture
def bengine(engine, base_tar):
    engine.import_image(str(base_tar), BASE, changes=['CMD ["/bin/sh"]'])
    yield engine
    for c in engine.containers.all():
        engine.containers.remove(c["id"], force=True)


def write_tree(root: Path, files: dict[str, str | bytes | tuple]) -> Path:
    """``{"rel": "text" | b"bytes" | ("text", mode) | ("link", target)}`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, value in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, tuple) and value[0] == "link":
            path.symlink_to(value[1])
            continue
        mode = None
        if isinstance(value, tuple):
            value, mode = value
        path.write_bytes(value if isinstance(value, bytes) else value.encode())
        if mode is not None:
            os.chmod(path, mode)
    return root


def build(engine, ctx: Path | None, dockerfile: str | None = None, **kw) -> tuple[str, list[str]]:
    lines: list[str] = []
    text = dockerfile if dockerfile is not None else (ctx / "Dockerfile").read_text()  # type: ignore[operator]
    iid = Builder(engine, BuildOptions(ctx, text, **kw), lines.append).build()
    return iid, lines


def docker_build(dockerd, ctx: Path, tag: str, args: list[str] = ()) -> subprocess.CompletedProcess:
    env = dict(dockerd.env, DOCKER_BUILDKIT="0")
    # --no-cache: Docker's cache ignores mtimes, so a hit from an earlier test would differ in them
    return subprocess.run(["docker", "build", "--no-cache", "--network", "none", "-t", tag, *args, str(ctx)], env=env,
                          capture_output=True, text=True, timeout=600)


def norm_history(created_by: str) -> str:
    return re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:H", created_by)


def docker_tree(dockerd, tag: str, dest: Path) -> dict:
    cid = dockerd.docker("create", tag, "x").stdout.decode().strip()
    try:
        dockerd.docker("export", "-o", str(dest.with_suffix(".tar")), cid)
    finally:
        dockerd.docker("rm", cid)
    return tree(extract_with_tar(dest.with_suffix(".tar"), dest), IGNORE)


def our_tree(engine, iid: str, dest: Path) -> dict:
    dest.mkdir()
    engine.images.flatten(iid, dest)
    return tree(dest, IGNORE)


def compare(dockerd, engine, ctx: Path, tmp: Path, tag: str, args: list[str] = (), **kw) -> dict:
    """Build ``ctx`` with both; assert config, history and tree agree; return both outputs."""
    made_by_run = set(kw.pop("run_made", ()))
    proc = docker_build(dockerd, ctx, tag, args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    iid, lines = build(engine, ctx, tags=[tag], **kw)
    # config
    dcfg = json.loads(dockerd.docker("image", "inspect", tag).stdout)[0]
    ours = engine.images.inspect(iid)
    for key in ("User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "Volumes", "WorkingDir", "Entrypoint",
                "OnBuild", "Labels", "StopSignal", "Shell"):
        assert (dcfg["Config"].get(key) or None) == (ours["Config"].get(key) or None), key
    assert dcfg["Author"] == ours["Author"]
    assert len(dcfg["RootFS"]["Layers"]) == len(ours["RootFS"]["Layers"])
    # history
    dh = dockerd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}\t{{.Size}}", tag).stdout.decode().splitlines()
    oh = [f"{h['CreatedBy']}\t{h['Size']}" for h in engine.images.history(iid)]
    assert [norm_history(h.split("\t")[0]) for h in dh] == [norm_history(h.split("\t")[0]) for h in oh]
    # file trees: everything equal; mtimes only where neither side ran a command
    dt, ot = docker_tree(dockerd, tag, tmp / f"{tag}-docker"), our_tree(engine, iid, tmp / f"{tag}-ours")
    assert sorted(dt) == sorted(ot)
    for path in dt:
        d, o = dt[path], ot[path]
        if any(path == p or path.startswith(p + "/") for p in made_by_run):
            d, o = d[:-1], o[:-1]
        assert d == o, path
    return {"docker": proc.stdout, "ours": lines, "iid": iid, "docker_tree": dt, "our_tree": ot}


def run_output(lines: list[str] | str) -> list[str]:
    if isinstance(lines, str):
        lines = lines.splitlines()
    return [l for l in lines if l.startswith("out:")]


# -- comparisons with Docker -----------------------------------------------------------------------------

EVERY_INSTRUCTION = """\
FROM dybuild:base
MAINTAINER someone <a@b.c>
ARG A1=one
ENV E1=$A1 E2="two words" E3=${A1:-x}-${NOPE:-y}-${A1:+z} E4='$A1' E5=\\$A1
ENV OLD legacy value
LABEL l1=$E1 "l 2"="v 2" multi="a \\
b"
EXPOSE 80 8000-8001/udp 53/udp
VOLUME /data ["/v2"]
USER nobody
USER root
WORKDIR /w
WORKDIR sub
WORKDIR /w
COPY a.txt link /w/
COPY a.txt relative.txt
COPY dir ./fromdot/
COPY dir .
COPY dir /w/dir2
COPY --chown=65534:65534 dir/b /owned
COPY dir/* /globbed/
ADD arch.tgz /ex/
ADD a.txt /added
ADD plain.tar /plain/
RUN echo out:run-$A1-$E2-$E4 && echo out:$E5 > /w/r && rm /w/a.txt && mkdir -p /w/dd && touch /w/dd/f
RUN true
RUN ["/bin/sh", "-c", "echo out:exec-form $E1"]
SHELL ["/bin/sh", "-e", "-c"]
RUN echo out:shell-changed
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=1m30s --retries=3 CMD echo ok
ONBUILD RUN echo out:triggered
ENTRYPOINT ["/bin/sh", "-c"]
CMD echo hi
"""


def every_instruction_context(tmp: Path) -> Path:
    ctx = write_tree(tmp / "ctx", {
        "Dockerfile": EVERY_INSTRUCTION, "a.txt": "a\n", "dir/b": ("b\n", 0o600), "dir/sub/c": ("c\n", 0o755),
        "link": ("link", "a.txt"), "arch/f": "in archive\n",
    })
    with tarfile.open(ctx / "arch.tgz", "w:gz") as tf:
        info = tarfile.TarInfo("f")
        data = b"in archive\n"
        info.size, info.uid, info.gid, info.mode, info.mtime = len(data), 123, 456, 0o640, 1_600_000_000
        import io

        tf.addfile(info, io.BytesIO(data))
    with tarfile.open(ctx / "plain.tar", "w") as tf:
        tf.add(ctx / "a.txt", "inner/a.txt")
    return ctx


def test_every_instruction_matches_docker(dockerd, docker_base, bengine, tmp_path):
    ctx = every_instruction_context(tmp_path)
    res = compare(dockerd, bengine, ctx, tmp_path, "every", run_made=("/w/r", "/w/dd", "/data", "/v2", "/["))
    assert run_output(res["ours"]) == run_output(res["docker"]) == [
        "out:run-one-two words-$A1", "out:exec-form one", "out:shell-changed"]
    assert res["our_tree"]["/ex/f"][2:4] == (123, 456)  # archive owners kept
    assert res["our_tree"]["/owned"][2:4] == (65534, 65534)


MULTI_STAGE = """\
ARG BASE=dybuild:base
ARG VERSION=1.0
FROM ${BASE} AS builder
ARG VERSION
ARG ONLY_HERE=here
ENV STAGE=builder
RUN echo "out:version=$VERSION only=$ONLY_HERE stage=$STAGE base=$BASE" | tee /info
COPY src/ /src/
COPY . /ctx/
COPY src/*.go /globbed/
RUN mkdir -p /tmp/gone/x && echo y > /tmp/gone/x/y && echo z > /tmp/z
RUN rm -rf /tmp/gone && rm /tmp/z && echo "root:x:0:" > /etc/group && echo "app:x:1234:" >> /etc/group
RUN echo "app:x:1234:1234::/:/bin/sh" >> /etc/passwd
COPY --chown=app:app keep /owned/
USER app
RUN id > /tmp/id.txt; echo out:uid=$(id -u)
USER root
WORKDIR /work
RUN pwd > here && echo out:pwd=$(pwd)

FROM dybuild:base AS unused
RUN echo out:should-not-run > /nope

FROM dybuild:base
ARG VERSION
RUN echo "out:final version=$VERSION stage=$STAGE base=$BASE" | tee /final
COPY --from=builder /info /work/ /from-builder/
COPY --from=builder /tmp/id.txt /id.txt
COPY --from=0 /src/deep /deep
COPY --from=dybuild:base /etc/passwd /passwd.base
"""


def multi_stage_context(tmp: Path) -> Path:
    return write_tree(tmp / "ctx", {
        "Dockerfile": MULTI_STAGE, "src/a.go": "1", "src/b.go": "2", "src/deep/er/c.go": "3",
        "src/deep/er/c_test.go": "t", "logs/x.log": "l", "logs/important.log": "i", "keep/k": "k", "root.key": "s",
        "sub/nested.key": "n", "README.md": "r",
        ".dockerignore": "# comment\n*.key\n**/*_test.go\nlogs\n!logs/important.log\nREADME*\nDockerfile\n.dockerignore\n",
    })


def test_multi_stage_args_and_dockerignore_match_docker(dockerd, docker_base, bengine, tmp_path):
    ctx = multi_stage_context(tmp_path)
    res = compare(dockerd, bengine, ctx, tmp_path, "multi", run_made=("/final", "/from-builder", "/id.txt"))
    want = ["out:version=1.0 only=here stage=builder base=", "out:uid=1234", "out:pwd=/work",
            "out:final version=1.0 stage= base="]
    assert run_output(res["ours"]) == want
    assert [l for l in run_output(res["docker"]) if "should-not-run" not in l] == want
    assert not any("should-not-run" in l for l in res["ours"])  # the unused stage is skipped
    assert res["our_tree"]["/id.txt"][2:4] == (1234, 1234)  # COPY --from keeps owners


def test_multi_stage_target_and_build_args_match_docker(dockerd, docker_base, bengine, tmp_path):
    ctx = multi_stage_context(tmp_path)
    res = compare(dockerd, bengine, ctx, tmp_path, "target", ["--target", "builder", "--build-arg", "VERSION=2.5",
                                                            "--build-arg", "ONLY_HERE=over"],
                  target="builder", build_args={"VERSION": "2.5", "ONLY_HERE": "over"},
                  run_made=("/info", "/tmp", "/work", "/etc/group", "/etc/passwd"))
    assert run_output(res["ours"])[0] == "out:version=2.5 only=over stage=builder base="
    assert "/ctx/README.md" not in res["our_tree"] and "/ctx/root.key" not in res["our_tree"]
    assert "/ctx/sub/nested.key" in res["our_tree"] and "/ctx/logs/important.log" in res["our_tree"]
    assert "/ctx/logs/x.log" not in res["our_tree"] and "/ctx/src/deep/er/c_test.go" not in res["our_tree"]
    assert "/ctx/Dockerfile" not in res["our_tree"] and "/ctx/.dockerignore" not in res["our_tree"]


def test_whiteouts_and_opaque_dirs_match_docker(dockerd, docker_base, bengine, tmp_path):
    df = ("FROM dybuild:base\nRUN mkdir -p /d/sub && echo 1 > /d/sub/f && echo 2 > /d/g && echo 3 > /keep\n"
          "RUN rm -rf /d/sub && rm /d/g && rm /etc/group && rm -rf /root && mkdir /d/sub && echo new > /d/sub/n\n"
          "RUN rm -rf /d && mkdir /d && echo only > /d/only\n")
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": df})
    res = compare(dockerd, bengine, ctx, tmp_path, "wh", run_made=("/d", "/keep"))
    assert "/etc/group" not in res["our_tree"] and "/root" not in res["our_tree"]
    assert sorted(p for p in res["our_tree"] if p.startswith("/d")) == ["/d", "/d/only"]


def test_env_scoping_and_onbuild_triggers_match_docker(dockerd, docker_base, bengine, tmp_path):
    parent = write_tree(tmp_path / "parent", {"Dockerfile": (
        "FROM dybuild:base\nENV P=parent\nARG NOT_INHERITED=x\n"
        "ONBUILD RUN echo out:trigger P=$P C=$C > /trigger && cat /trigger\nONBUILD COPY f /from-child\n")})
    compare(dockerd, bengine, parent, tmp_path, "onparent")
    child = write_tree(tmp_path / "child", {"f": "child file\n", "Dockerfile": (
        "FROM onparent\nENV C=child\nRUN echo out:P=$P C=$C N=$NOT_INHERITED\n")})
    res = compare(dockerd, bengine, child, tmp_path, "onchild", run_made=("/trigger",))
    assert run_output(res["ours"]) == ["out:trigger P=parent C=", "out:P=parent C=child N="]
    assert [l.strip() for l in run_output(res["docker"])] == ["out:trigger P=parent C=", "out:P=parent C=child N="]
    assert not bengine.images.inspect(res["iid"])["Config"].get("OnBuild")


def test_scratch_default_path_and_entrypoint_resets_cmd_match_docker(dockerd, docker_base, bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"f": ("x\n", 0o755), "Dockerfile": (
        "FROM scratch\nCOPY f /bin/f\nCMD [\"/bin/f\"]\n"
        "FROM dybuild:base\nCMD [\"a\"]\nENTRYPOINT [\"/bin/echo\"]\n"
        "FROM dybuild:base\nENTRYPOINT [\"/bin/echo\"]\nCMD [\"kept\"]\nLABEL x=1\n")})
    compare(dockerd, bengine, ctx, tmp_path, "scr")
    for target, cmd in (("0", ["/bin/f"]),):
        del target
        dfile = "FROM scratch\nCOPY f /bin/f\nCMD [\"/bin/f\"]\n"
        iid, _ = build(bengine, ctx, dfile)
        cfg = bengine.images.inspect(iid)["Config"]
        assert cfg["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        assert cfg["Cmd"] == cmd


def test_proxy_args_are_predefined_match_docker(dockerd, docker_base, bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": (
        "FROM dybuild:base\nRUN echo out:proxy=$HTTP_PROXY no=$NO_PROXY\nARG NO_PROXY\n"
        "RUN echo out:proxy=$HTTP_PROXY no=$NO_PROXY\n")})
    args = ["--build-arg", "HTTP_PROXY=http://p:3128", "--build-arg", "NO_PROXY=local"]
    res = compare(dockerd, bengine, ctx, tmp_path, "proxy", args,
                  build_args={"HTTP_PROXY": "http://p:3128", "NO_PROXY": "local"})
    want = ["out:proxy=http://p:3128 no=local", "out:proxy=http://p:3128 no=local"]
    assert run_output(res["ours"]) == want and run_output(res["docker"]) == want
    history = [h["CreatedBy"] for h in bengine.images.history(res["iid"])]
    assert history[0].startswith("|1 NO_PROXY=local /bin/sh -c") and history[2].startswith("|0 /bin/sh -c")


def test_stage_from_stage_and_more_metadata_match_docker(dockerd, docker_base, bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": (
        "FROM dybuild:base AS first\nENV FIRST=1\nHEALTHCHECK CMD [\"true\"]\nRUN mkdir /out && echo a > /out/a.txt "
        "&& echo b > /out/b.txt && echo c > /out/c.log\n"
        "FROM first AS second\nENV SECOND=$FIRST-2\nHEALTHCHECK NONE\nSTOPSIGNAL 9\nLABEL empty= \"quoted\"='x y'\n"
        "RUN echo out:second FIRST=$FIRST SECOND=$SECOND\n"
        "FROM second\nCOPY --from=first /out/*.txt /txt/\nUSER 65534:65534\nRUN echo out:user $(id -u):$(id -g)\n")})
    res = compare(dockerd, bengine, ctx, tmp_path, "stages", run_made=("/out", "/txt"))
    assert run_output(res["ours"]) == ["out:second FIRST=1 SECOND=1-2", "out:user 65534:65534"]
    assert sorted(p for p in res["our_tree"] if p.startswith("/txt")) == ["/txt", "/txt/a.txt", "/txt/b.txt"]


def test_labels_from_the_command_line_match_docker(dockerd, docker_base, bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM dybuild:base\nLABEL a=1\n"})
    res = compare(dockerd, bengine, ctx, tmp_path, "lbl", ["--label", "b=2 $x", "--label", "a=over"],
                  labels={"b": "2 $x", "a": "over"})
    assert bengine.images.inspect(res["iid"])["Config"]["Labels"] == {"a": "over", "b": "2 $x"}


def test_tar_context_on_stdin_ignores_only_build_files_like_docker(dockerd, docker_base, bengine, cli, base_tar,
                                                                   tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"a.key": "k", "keep": "x", ".dockerignore": "*.key\nDockerfile\n",
                                        "Dockerfile": "FROM dybuild:base\nCOPY . /c/\n"})
    tar = tmp_path / "ctx.tar"
    subprocess.run(["tar", "-C", str(ctx), "-cf", str(tar), "."], check=True)
    env = dict(dockerd.env, DOCKER_BUILDKIT="0")
    proc = subprocess.run(["docker", "build", "--network", "none", "-t", "tarctx", "-"], env=env,
                          input=tar.read_bytes(), capture_output=True)
    assert proc.returncode == 0, proc.stderr
    want = sorted(p for p in docker_tree(dockerd, "tarctx", tmp_path / "d") if p.startswith("/c/"))
    cli("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    iid = cli("build", "-q", "-", input=tar.read_bytes()).stdout.decode().strip()
    out = tmp_path / "ours.tar"
    cid = cli("create", iid, "x").stdout.decode().strip()
    cli("export", "-o", str(out), cid)
    got = sorted(p for p in tree(extract_with_tar(out, tmp_path / "o"), IGNORE) if p.startswith("/c/"))
    assert got == want == ["/c/.dockerignore", "/c/a.key", "/c/keep"]


def test_run_limits_match_docker(dockerd, docker_base, cli, base_tar, tmp_path):
    """``build --shm-size --ulimit --memory`` through the daemon, as the classic builder: the RUN
    containers have that /dev/shm, those ulimits and that memory limit (cgroup v1's file)."""
    probe = ("RUN (df -k /dev/shm | tail -1; ulimit -n; ulimit -Hn; "
             "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo no-v1) > /limits\n")
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM dybuild:base\n" + probe})
    flags = ["--shm-size", "16m", "--ulimit", "nofile=300:400", "-m", "64m"]
    proc = docker_build(dockerd, ctx, "limits", flags)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = dockerd.docker("run", "--rm", "--network", "none", "limits", "cat", "/limits").stdout.decode()
    cli("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    iid = cli("build", "-q", *flags, str(ctx)).stdout.decode().strip()
    got = cli("run", "--rm", "--network", "none", iid, "cat", "/limits").stdout.decode()
    assert got == want and " 16384 " in got and "300\n400\n" in got, (got, want)
    bad = cli("build", "-q", "--shm-size", "lots", str(ctx), check=False)
    assert bad.returncode == 125 and "invalid argument \"lots\" for \"--shm-size\" flag" in bad.stderr.decode()


def test_failing_run_matches_docker_message(dockerd, docker_base, bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM dybuild:base\nRUN echo out:before; exit 3\n"})
    proc = docker_build(dockerd, ctx, "fails")
    assert proc.returncode != 0
    want = "The command '/bin/sh -c echo out:before; exit 3' returned a non-zero code: 3"
    assert want in proc.stdout + proc.stderr
    lines: list[str] = []
    with pytest.raises(BuildError) as info:
        Builder(bengine, BuildOptions(ctx, (ctx / "Dockerfile").read_text()), lines.append).build()
    assert str(info.value) == want
    assert "out:before" in lines
    assert bengine.containers.all() == []


# -- engine-only behaviour -----------------------------------------------------------------------------

def test_cache_hits_misses_and_no_cache(bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"a": "1", "b": "2", "Dockerfile": (
        "FROM dybuild:base\nENV X=1\nRUN echo out:ran\nCOPY a /a\nRUN echo out:after-a\nCOPY b /b\n")})
    first, lines1 = build(bengine, ctx)
    assert run_output(lines1) == ["out:ran", "out:after-a"]
    again, lines2 = build(bengine, ctx)
    assert again == first and run_output(lines2) == [] and lines2.count(" CACHED") == 5
    (ctx / "b").write_text("changed")
    third, lines3 = build(bengine, ctx)
    assert third != first and lines3.count(" CACHED") == 4 and run_output(lines3) == []
    (ctx / "a").write_text("changed")
    _, lines4 = build(bengine, ctx)
    assert run_output(lines4) == ["out:after-a"]
    _, lines5 = build(bengine, ctx, no_cache=True)
    assert run_output(lines5) == ["out:ran", "out:after-a"] and " CACHED" not in lines5
    _, lines6 = build(bengine, ctx, build_args={"X": "2"})  # an undeclared arg changes nothing
    assert lines6.count(" CACHED") == 5


def test_build_arg_changes_the_cache_key_of_run(bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM dybuild:base\nARG V=1\nRUN echo out:v=$V\n"})
    _, a = build(bengine, ctx)
    _, b = build(bengine, ctx, build_args={"V": "2"})
    _, c = build(bengine, ctx, build_args={"V": "2"})
    assert run_output(a) == ["out:v=1"] and run_output(b) == ["out:v=2"] and run_output(c) == []


def test_heredocs_build(bengine, tmp_path):
    df = ("FROM dybuild:base\nARG WHO=world\nRUN <<EOF\necho out:hello $WHO\necho out:second line\nEOF\n"
          "COPY <<-END /greeting\n\thello $WHO\n\tEND\nCOPY <<'RAW' /raw\n$WHO\nRAW\n"
          "RUN cat <<A > /a.txt && echo out:$(cat /a.txt)\nfrom heredoc\nA\n")
    iid, lines = build(bengine, None, df)
    assert run_output(lines) == ["out:hello world", "out:second line", "out:from heredoc"]
    t = our_tree(bengine, iid, tmp_path / "t")
    assert (tmp_path / "t" / "greeting").read_text() == "hello world\n"
    assert (tmp_path / "t" / "raw").read_text() == "$WHO\n"
    assert t["/greeting"][1] == 0o644


def test_heredoc_with_a_shebang_runs_as_a_script(bengine, tmp_path):
    df = "FROM dybuild:base\nRUN <<EOF\n#!/bin/busybox sh\necho out:script $0\necho made > /made\nEOF\n"
    iid, lines = build(bengine, None, df)
    assert run_output(lines) == ["out:script /dev/pipes/EOF"]
    t = our_tree(bengine, iid, tmp_path / "t")
    assert "/made" in t and not any(p.startswith("/dev/pipes") for p in t)


def test_copy_chmod_and_named_chown(bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"f": "x", "d/g": "y", "Dockerfile": (
        "FROM dybuild:base\nCOPY --chmod=751 f /f\nCOPY --chown=nobody:nogroup --chmod=600 d /d/\n"
        "COPY --chown=nobody f /nobody-f\n")})
    with pytest.raises(BuildError, match="can't find gid for group nobody"):
        build(bengine, ctx)
    (ctx / "Dockerfile").write_text("FROM dybuild:base\nCOPY --chmod=751 f /f\nCOPY --chown=nobody:nogroup --chmod=600 d /d/\n")
    iid, _ = build(bengine, ctx)
    t = our_tree(bengine, iid, tmp_path / "t")
    assert t["/f"][1] == 0o751 and t["/d/g"][1:4] == (0o600, 65534, 65534)


def test_errors_have_positions_and_leave_nothing_behind(bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM dybuild:base\nRUN true\nCOPY missing /x\n"})
    with pytest.raises(BuildError, match="file not found in build context"):
        build(bengine, ctx)
    with pytest.raises(DockerfileError) as info:
        build(bengine, ctx, "FROM dybuild:base\nENV A=${B\n", dockerfile_name="my.Dockerfile")
    assert str(info.value).startswith("my.Dockerfile:2:7: ") and "missing '}'" in str(info.value)
    with pytest.raises(DockerfileError, match="failed to reach build target nope"):
        build(bengine, ctx, target="nope")
    # a base that is not local is pulled: from a closed loopback port, so the pull fails at once
    with pytest.raises(BuildError, match="pull access denied for 127.0.0.1:1/not-here:1"):
        build(bengine, ctx, "FROM 127.0.0.1:1/not-here:1\n")
    assert bengine.containers.all() == []
    assert not [l for l in Path("/proc/self/mounts").read_text().splitlines() if str(bengine.root) in l]
    assert list((bengine.root / "tmp").iterdir()) == []


def test_interrupted_build_leaves_no_container_mount_or_tag(bengine, tmp_path):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM dybuild:base\nRUN echo out:start; sleep 30\n"})

    def out(line: str) -> None:
        if line == "out:start":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Builder(bengine, BuildOptions(ctx, (ctx / "Dockerfile").read_text(), tags=["half:made"]), out).build()
    assert bengine.containers.all() == []
    assert not [l for l in Path("/proc/self/mounts").read_text().splitlines() if str(bengine.root) in l]
    assert "half:made" not in json.dumps(bengine.images.summaries(all_=True))
    assert list((bengine.root / "tmp").iterdir()) == []


def test_add_archive_formats(bengine, tmp_path):
    src = write_tree(tmp_path / "src", {"x/y": "why"})
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for name, mode in (("a.tar", "w"), ("a.tgz", "w:gz"), ("a.tar.bz2", "w:bz2"), ("a.tar.xz", "w:xz")):
        with tarfile.open(ctx / name, mode) as tf:
            tf.add(src / "x", "x")
    (ctx / "Dockerfile").write_text("FROM dybuild:base\n" + "".join(
        f"ADD {n} /{i}/\n" for i, n in enumerate(("a.tar", "a.tgz", "a.tar.bz2", "a.tar.xz"))))
    iid, _ = build(bengine, ctx)
    t = our_tree(bengine, iid, tmp_path / "t")
    for i in range(4):
        assert f"/{i}/x/y" in t


# -- the CLI ---------------------------------------------------------------------------------------------

def test_cli_build_context_dir_tar_stdin_and_dockerfile_stdin(cli, base_tar, tmp_path):
    cli("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    ctx = write_tree(tmp_path / "ctx", {"f": "file\n", "Dockerfile": "FROM dybuild:base\nCOPY f /f\nRUN echo out:hi\n",
                                        "other.Dockerfile": "FROM dybuild:base\nRUN echo out:other\n"})
    proc = cli("build", "-t", "one:1", "--iidfile", str(tmp_path / "iid"), str(ctx))
    out = proc.stdout.decode()
    assert "Step 1/3 : FROM dybuild:base" in out and "Step 3/3 : RUN echo out:hi" in out and "out:hi" in out
    assert "Successfully tagged one:1" in out
    iid = (tmp_path / "iid").read_text()
    assert iid.startswith("sha256:") and f"Successfully built {iid[7:19]}" in out
    quiet = cli("build", "-q", str(ctx)).stdout.decode()
    assert quiet == iid + "\n"
    assert "out:other" in cli("build", "-f", str(ctx / "other.Dockerfile"), str(ctx)).stdout.decode()
    tar = tmp_path / "ctx.tar"
    subprocess.run(["tar", "-C", str(ctx), "-cf", str(tar), "."], check=True)
    assert cli("build", "-q", "-", input=tar.read_bytes()).stdout.decode() == iid + "\n"
    piped = cli("build", "-t", "piped", "-", input=b"FROM dybuild:base\nRUN echo out:piped\n").stdout.decode()
    assert "out:piped" in piped
    bad = cli("build", "-", input=b"FROM dybuild:base\nBOGUS x\n", check=False)
    assert bad.returncode == 1 and bad.stderr.decode() == "Dockerfile:2:1: unknown instruction: BOGUS\n"
    fail = cli("build", "-", input=b"FROM dybuild:base\nRUN false\n", check=False)
    assert fail.returncode == 1
    assert fail.stderr.decode() == "The command '/bin/sh -c false' returned a non-zero code: 1\n"
    assert cli("ps", "-aq").stdout.decode() == ""


def test_cli_sigterm_stops_the_build_and_cleans_up(cli, base_tar, tmp_path):
    import signal
    import time

    cli("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM dybuild:base\nRUN echo out:start; sleep 60\n"})
    env = cli.env
    exe = Path(sys.executable).with_name("dockyard")
    with subprocess.Popen([str(exe), "build", "-t", "never:1", str(ctx)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        deadline = time.time() + 60
        seen = b""
        while b"out:start" not in seen and time.time() < deadline:
            seen += proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
    assert cli("ps", "-aq").stdout.decode() == ""
    assert "never" not in cli("images").stdout.decode()
    assert not [l for l in Path("/proc/self/mounts").read_text().splitlines() if str(cli.root) in l]


def test_cli_cached_rebuild_hits_and_misses_on_content_through_the_daemon(cli, base_tar, tmp_path):
    """Through the CLI and the daemon (a fresh context extracted for each build): a rebuild hits
    every step; a COPY'd file with new content of the same size and mtime misses from its COPY
    on; putting the content back hits again."""
    cli("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    ctx = write_tree(tmp_path / "ctx", {"src/a.txt": "aaaa\n", "src/b.txt": "bbbb\n", "c.ini": "c\n", "Dockerfile": (
        "FROM dybuild:base\nENV X=1\nCOPY src/ /src/\nRUN cat /src/a.txt\nCOPY c.ini /\nRUN echo out:done\n")})

    def rebuild() -> tuple[str, str]:
        out = cli("build", "--iidfile", str(tmp_path / "iid"), str(ctx)).stdout.decode()
        return (tmp_path / "iid").read_text(), out

    first, out1 = rebuild()
    assert "\naaaa\n" in out1 and "\nout:done\n" in out1 and "Using cache" not in out1
    again, out2 = rebuild()
    assert again == first and out2.count(" ---> Using cache\n") == 5 and "\nout:done\n" not in out2
    st = os.stat(ctx / "src" / "a.txt")
    (ctx / "src" / "a.txt").write_text("AAAA\n")  # same size, same mtime: only the content differs
    os.utime(ctx / "src" / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    changed, out3 = rebuild()
    assert changed != first and out3.count(" ---> Using cache\n") == 1 and "\nAAAA\n" in out3 and "\nout:done\n" in out3
    (ctx / "src" / "a.txt").write_text("aaaa\n")
    back, out4 = rebuild()
    assert back == first and out4.count(" ---> Using cache\n") == 5


def test_cli_context_tar_members(tmp_path):
    """The CLI's context tar (made as the request reads it): what Python's tarfile reads back,
    with docker's CLI's rules: owners 0:0, whole-second mtimes, directories with a slash, hard
    links after their first name, long and non-UTF-8 names in pax headers, sockets left out,
    ``.dockerignore`` applied."""
    import socket

    from dockyard.build.command import open_context

    ctx = write_tree(tmp_path / "ctx", {"a.txt": "hello\n", "sub/deep/x": "x", "skip/me": "no", "link": ("link", "a.txt"),
                                        "d" * 120 + "/f": "long", ".dockerignore": "skip\n", "Dockerfile": "FROM x\n"})
    os.link(ctx / "a.txt", ctx / "hard.txt")
    (ctx / os.fsdecode(b"bad\xff.txt")).write_bytes(b"b")
    (ctx / "big.bin").write_bytes(os.urandom(3 << 20))
    os.chown(ctx / "a.txt", 1234, 5678)
    os.utime(ctx / "a.txt", (1_600_000_000.7, 1_600_000_000.7))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ctx / "sock"))
    try:
        body, name = open_context(str(ctx), None)
        chunks = []
        while chunk := body.read(1 << 20):
            chunks.append(chunk)
    finally:
        sock.close()
    assert name == "Dockerfile" and max(len(c) for c in chunks) <= 1 << 20
    import io

    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tf:
        members = {m.name: m for m in tf}
        data = {m.name: tf.extractfile(m).read() for m in members.values() if m.isreg()}
    assert sorted(members) == sorted([".dockerignore", "Dockerfile", "a.txt", "big.bin", os.fsdecode(b"bad\xff.txt"),
                                      "d" * 120, "d" * 120 + "/f", "hard.txt", "link", "sub", "sub/deep", "sub/deep/x"])
    assert all(m.uid == 0 and m.gid == 0 and not m.uname for m in members.values())
    assert members["a.txt"].mtime == 1_600_000_000 and data["a.txt"] == b"hello\n"
    assert members["hard.txt"].islnk() and members["hard.txt"].linkname == "a.txt"
    assert members["link"].issym() and members["link"].linkname == "a.txt"
    assert members["sub"].isdir() and data["d" * 120 + "/f"] == b"long"
    assert data["big.bin"] == (ctx / "big.bin").read_bytes()


def test_cli_context_file_gone_while_sent_is_refused_whole(cli, base_tar, tmp_path, monkeypatch):
    """A file that cannot be read while the context streams: docker's CLI line, and the daemon
    builds nothing from the part that was sent."""
    from dockyard.build import command, context
    from dockyard.cli import Session

    cli("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    ctx = write_tree(tmp_path / "ctx", {"a": "a", "Dockerfile": "FROM dybuild:base\nCOPY a /a\n"})
    monkeypatch.setenv("DOCKYARD_ROOT", str(cli.root))
    monkeypatch.setenv("DOCKYARD_RUN", str(cli.run_dir))
    walk = context.walk
    for extra in (["0-gone"], ["zz-gone"]):  # before any byte was sent, and after the rest
        monkeypatch.setattr(context, "walk", lambda root, ignore, rel="", extra=extra: (
            extra + walk(root, ignore, rel) if extra[0].startswith("0") else walk(root, ignore, rel) + extra))
        session = Session()
        try:
            with pytest.raises(BuildError, match=f"^error checking context: No such file or directory: .*/{extra[0]}$"):
                command.run_build(session, str(ctx), ["gone:1"], None, [], "", False, [], True, None, "auto", "none")
        finally:
            session.close()
    assert "gone" not in cli("images").stdout.decode()


def test_copy_never_writes_through_image_symlinks_to_the_host(bengine, tmp_path):
    host = tmp_path / "host-canary"
    host.mkdir()
    os.chmod(host, 0o700)
    ctx = write_tree(tmp_path / "ctx", {"d/f": "payload", "f": "file", "Dockerfile": (
        f"FROM dybuild:base\nRUN mkdir -p {host} && ln -s {host} /evil && ln -s {host}/x /evilfile\n"
        "COPY d /evil/\nCOPY d /evil\nCOPY f /evilfile\nCOPY f /evil/f2\n")})
    iid, _ = build(bengine, ctx)
    assert list(host.iterdir()) == [] and (host.stat().st_mode & 0o777) == 0o700
    t = our_tree(bengine, iid, tmp_path / "t")
    assert f"{host}/f" in t and f"{host}/f2" in t  # followed inside the image, as Docker does
    assert t["/evilfile"][0] == 0o120000 and t[f"{host}/x"][0] == 0o100000  # a file dest is followed too


def test_add_archive_keeps_modes_and_refuses_escapes(bengine, tmp_path):
    import io

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with tarfile.open(ctx / "modes.tar", "w") as tf:
        for name, mode in (("suid", 0o4755), ("gw", 0o664)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = 1, mode
            tf.addfile(info, io.BytesIO(b"x"))
    with tarfile.open(ctx / "evil.tar", "w") as tf:
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    import gzip

    (ctx / "note.gz").write_bytes(gzip.compress(b"not a tar"))
    (ctx / "Dockerfile").write_text("FROM dybuild:base\nADD modes.tar /m/\nADD note.gz /n/\n")
    iid, _ = build(bengine, ctx)
    t = our_tree(bengine, iid, tmp_path / "t")
    assert t["/m/suid"][1] == 0o4755 and t["/m/gw"][1] == 0o664
    assert "/n/note.gz" in t  # compressed but not a tar: copied as it is
    (ctx / "Dockerfile").write_text("FROM dybuild:base\nADD evil.tar /e/\n")
    with pytest.raises(BuildError, match="cannot extract evil.tar"):
        build(bengine, ctx)
    assert not (tmp_path / "escape").exists()


def test_cli_options(cli, base_tar, tmp_path):
    cli("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": (
        "FROM dybuild:base AS one\nARG FROM_ENV\nARG SET\nRUN echo out:env=$FROM_ENV set=$SET\n"
        "FROM one AS two\nRUN echo out:two\n")})
    env_proc = subprocess.run(
        [str(Path(sys.executable).with_name("dockyard")), "build", "--progress", "plain", "-t", "a:1", "-t", "b:2",
         "--build-arg", "FROM_ENV", "--build-arg", "SET=x", "--label", "k=v", "--target", "one", str(ctx)],
        env=dict(cli.env, FROM_ENV="from-env"), capture_output=True, text=True)
    assert env_proc.returncode == 0, env_proc.stderr
    assert "out:env=from-env set=x" in env_proc.stdout and "out:two" not in env_proc.stdout
    assert "Successfully tagged a:1" in env_proc.stdout and "Successfully tagged b:2" in env_proc.stdout
    inspect = json.loads(cli("inspect", "a:1").stdout)[0]
    assert inspect["Config"]["Labels"] == {"k": "v"} and "b:2" in inspect["RepoTags"]
    quiet = cli("build", "--progress", "quiet", "--no-cache", "-f", "-", str(ctx),
                input=b"FROM dybuild:base\nRUN echo out:quiet\n").stdout.decode()
    assert quiet.startswith("sha256:") and "out:quiet" not in quiet and len(quiet.split()) == 1
    warn = cli("build", "--build-arg", "UNUSED=1", "-", input=b"FROM dybuild:base\nENV A=1\n").stdout.decode()
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in warn
    missing = cli("build", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "unable to prepare context" in missing.stderr.decode()


def test_run_gets_the_default_path_when_the_base_has_no_path(bengine, tmp_path):
    bengine.import_image(str(_base_tar_of(bengine, tmp_path)), "nopath:1", changes=["ENV ONLY=1"])
    iid, lines = build(bengine, None, "FROM nopath:1\nRUN echo out:$PATH $ONLY\n")
    assert run_output(lines) == ["out:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin 1"]
    assert bengine.images.inspect(iid)["Config"]["Env"] == [
        "ONLY=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def _base_tar_of(engine, tmp_path: Path) -> Path:
    dest = tmp_path / "flat"
    dest.mkdir()
    engine.images.flatten(BASE, dest)
    return tar_dir(dest, tmp_path / "flat.tar")


METADATA = ["ENV", "LABEL", "ARG", "EXPOSE", "VOLUME", "USER", "WORKDIR", "STOPSIGNAL", "CMD", "ENTRYPOINT",
            "SHELL", "HEALTHCHECK", "ONBUILD", "MAINTAINER", "COPY", "ADD"]


def test_random_instructions_build_or_fail_cleanly(engine, base_tar, tmp_path):
    """Parseable but odd arguments to every non-RUN instruction: an image or a DockyardError."""
    import string

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from dockyard.errors import DockyardError

    engine.import_image(str(base_tar), BASE)
    ctx = write_tree(tmp_path / "ctx", {"f": "x", "d/g": "y"})
    words = st.one_of(st.sampled_from(["f", "d", "/x/", "$A", "${A:-1}", "=", "a=b", "--chown=1:2", "[\"a\"]", "80/tcp",
                                       "NONE", "CMD", "--interval=1s", "SIGKILL", "'q'", "\"q", "*", ".", "..", "--from=0"]),
                      st.text(string.ascii_letters + string.digits + "/=$:{}-'\" .*", max_size=6))
    line = st.tuples(st.sampled_from(METADATA), st.lists(words, min_size=1, max_size=4)).map(
        lambda t: t[0] + " " + " ".join(t[1]))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(line, max_size=5))
    def check(lines):
        text = "FROM dybuild:base\nARG A=1\n" + "\n".join(lines) + "\n"
        try:
            Builder(engine, BuildOptions(ctx, text)).build()
            outcomes["built"] += 1
        except DockyardError as exc:
            assert str(exc)
            outcomes["error"] += 1

    outcomes = {"built": 0, "error": 0}
    check()
    assert outcomes["built"] > 10 and outcomes["error"] > 10, outcomes
    assert not [l for l in Path("/proc/self/mounts").read_text().splitlines() if str(engine.root) in l]


def test_network_host_is_passed_to_run(bengine, tmp_path):
    # other tests add and remove host interfaces meanwhile: the host's namespace has more than lo
    iid, lines = build(bengine, None, "FROM dybuild:base\nRUN echo out:$(ls /sys/class/net)\n", network="host")
    assert len(run_output(lines)[0].split()) > 1, lines
    _, lines = build(bengine, None, "FROM dybuild:base\nRUN echo out:$(ls /sys/class/net) none\n")
    assert run_output(lines) == ["out:lo none"]


def test_click_free_entry_point(cli, base_tar, tmp_path):
    cli("import", "-c", 'CMD ["/bin/sh"]', str(base_tar), BASE)
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "FROM dybuild:base\nRUN echo out:fast\n"})
    env = cli.env
    run = [sys.executable, "-m", "dockyard.build.command"]
    proc = subprocess.run(run + ["-t", "fast:1", str(ctx)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "out:fast" in proc.stdout and "Successfully tagged fast:1" in proc.stdout
    again = subprocess.run(run + ["-q", str(ctx)], env=env, capture_output=True, text=True)
    assert again.stdout.strip() == json.loads(cli("inspect", "fast:1").stdout)[0]["Id"]
    bad = subprocess.run(run + ["-"], env=env, capture_output=True, text=True, input="FROM dybuild:base\nNOPE\n")
    assert bad.returncode == 1 and bad.stderr == "Dockerfile:2:1: unknown instruction: NOPE\n"
    helped = subprocess.run(run + ["--help"], env=env, capture_output=True, text=True)  # falls back to click
    assert helped.returncode == 0 and "--build-arg" in helped.stdout


@pytest.mark.parametrize("seed", range(24))
def test_random_dockerignore_matches_docker(dockerd, docker_base, bengine, tmp_path, seed):
    """Random trees and random .dockerignore files: `COPY . /c/` sees what Docker's sees."""
    import random

    rnd = random.Random(seed)
    names = ["a", "b", "keep", "x.txt", "y.md", "cc", "d.txt"]
    files = {}
    for _ in range(14):
        depth = rnd.randint(1, 3)
        files["/".join(rnd.choice(names[:4]) for _ in range(depth - 1)) + ("/" if depth > 1 else "")
              + rnd.choice(names)] = "x"
    # a path cannot be both a file and a directory
    files = {p: v for p, v in files.items() if not any(o.startswith(p + "/") for o in files)}
    vocab = ["*.txt", "a", "a/*", "**/b", "!a/keep", "*/cc", "?", "[ab]", "/x.txt", "a/**/y.md", "!**/*.md",
             "b/*/d.txt", "**/keep", "!b", "*", "!*.txt", "keep/", "a/b/..", "#a", "", "keep", "!keep/x.txt",
             "!a/b", "b/**", "**/*.md", "!a/keep/y.md", "a/?/cc", "*/*/*"]
    ignore = "\n".join(rnd.sample(vocab, rnd.randint(1, 5)))
    ctx = write_tree(tmp_path / "ctx", dict(files, **{".dockerignore": ignore + "\n",
                                                      "Dockerfile": "FROM dybuild:base\nCOPY . /c/\n"}))
    proc = docker_build(dockerd, ctx, f"ign{seed}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = sorted(p for p in docker_tree(dockerd, f"ign{seed}", tmp_path / "d") if p.startswith("/c/"))
    iid, _ = build(bengine, ctx)
    got = sorted(p for p in our_tree(bengine, iid, tmp_path / "o") if p.startswith("/c/"))
    assert got == want, (ignore, sorted(files), sorted(set(got) - set(want)), sorted(set(want) - set(got)))


@pytest.mark.parametrize("seed", range(40))
def test_random_expansion_matches_docker(dockerd, docker_base, bengine, tmp_path, seed):
    """ENV/LABEL/ARG/WORKDIR/USER/EXPOSE lines made of quoting and expansion pieces: the config
    (or the failure) matches Docker's."""
    import random

    from dockyard.errors import DockyardError

    rnd = random.Random(1000 + seed)
    pieces = ["$A", "${A}", "${A:-d}", "${N:-d e}", "${A:+set}", "${N:+x}", '"q $A"', "'s $A'", "\\$A", "\\\\", "x",
              "y z", '"a\\"b"', "\\ ", "$", "${N}", "'", '"', "{", "}", "=", "$A$A", "a${A}b", "\\n", "~"]

    def word() -> str:
        return "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 3)))

    lines = ["ARG A=arg"]
    for _ in range(4):
        kind = rnd.choice(["ENV", "LABEL", "ENVLEG", "ARG", "WORKDIR", "USER", "EXPOSE"])
        if kind == "ENV":
            lines.append(f"ENV K{rnd.randint(0, 3)}={word()} A={word()}")
        elif kind == "LABEL":
            lines.append(f"LABEL l{rnd.randint(0, 3)}={word()}")
        elif kind == "ENVLEG":
            lines.append(f"ENV L{rnd.randint(0, 3)} {word()} {word()}")
        elif kind == "ARG":
            lines.append(f"ARG A={word()}")
        elif kind == "WORKDIR":
            lines.append(f"WORKDIR /w/{word()}")
        elif kind == "USER":
            lines.append(f"USER {word()}")
        else:
            lines.append(f"EXPOSE {rnd.choice(['80', '$P', '${P:-81}', '8000-8001/udp'])}")
    text = "FROM dybuild:base\nARG P=\"82 83\"\n" + "\n".join(lines) + "\n"
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": text})
    proc = docker_build(dockerd, ctx, f"exp{seed}")
    try:
        iid, _ = build(bengine, ctx)
    except DockyardError as exc:
        assert proc.returncode != 0, (text, str(exc), proc.stdout)
        return
    assert proc.returncode == 0, (text, proc.stdout + proc.stderr)
    dcfg = json.loads(dockerd.docker("image", "inspect", f"exp{seed}").stdout)[0]["Config"]
    ours = bengine.images.inspect(iid)["Config"]
    for key in ("Env", "Labels", "WorkingDir", "User", "ExposedPorts"):
        assert (dcfg.get(key) or None) == (ours.get(key) or None), (text, key)


@pytest.mark.parametrize("seed", range(40))
def test_random_copy_matches_docker(dockerd, docker_base, bengine, tmp_path, seed):
    """COPY/ADD with random sources, destinations (trailing slashes, relative to WORKDIR, onto
    existing files and directories) and owners: same tree, or a failure on both sides."""
    import random

    from dockyard.errors import DockyardError

    rnd = random.Random(2000 + seed)
    srcs = ["a", "b", "dir", "dir/", "dir/*", "*.txt", "dir/sub", "dir/sub/d", "ln", "dir/../a", "./b", "e.txt"]
    dests = ["/x", "/x/", "x", "x/", ".", "/", "/a", "/dir2/sub/", "/etc/", "/bin/sh", "/tmp", "y/z"]
    lines = [f"WORKDIR {rnd.choice(['/', '/w', '/w/v'])}"]
    for _ in range(3):
        n = rnd.choice([1, 1, 2])
        flag = rnd.choice(["", "", "--chown=7:8 ", "--chown=65534 "])
        lines.append(f"{rnd.choice(['COPY', 'ADD'])} {flag}{' '.join(rnd.sample(srcs, n))} {rnd.choice(dests)}")
    text = "FROM dybuild:base\n" + "\n".join(lines) + "\n"
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": text, "a": "A", "b": ("B", 0o755), "dir/c": "C",
                                        "dir/sub/d": ("D", 0o600), "e.txt": "E", "ln": ("link", "a")})
    proc = docker_build(dockerd, ctx, f"cp{seed}")
    try:
        iid, _ = build(bengine, ctx)
    except DockyardError as exc:
        assert proc.returncode != 0, (text, str(exc), proc.stdout)
        return
    assert proc.returncode == 0, (text, proc.stdout + proc.stderr)
    dt = docker_tree(dockerd, f"cp{seed}", tmp_path / "d")
    ot = our_tree(bengine, iid, tmp_path / "o")
    assert sorted(dt) == sorted(ot), (text, sorted(set(dt) ^ set(ot)))
    for path in dt:
        assert dt[path] == ot[path], (text, path)


@pytest.mark.parametrize("seed", range(30))
def test_random_arg_scoping_matches_docker(dockerd, docker_base, bengine, tmp_path, seed):
    """Meta ARGs, redeclared ARGs, --build-arg, ENV over ARG, across two stages: the RUN output
    and the RUN history (``|N K=V`` prefixes) match Docker's."""
    import random

    rnd = random.Random(3000 + seed)
    names = ["A", "B", "C", "HTTP_PROXY"]

    def decl() -> str:
        k = rnd.choice(names)
        return rnd.choice([f"ARG {k}", f"ARG {k}={rnd.choice(['x', '$A', '${B:-d}', ''])}", f"ENV {k}=env-{k}"])

    meta = [f"ARG {k}={v}" for k, v in (("A", "meta-a"), ("B", "meta-b")) if rnd.random() < 0.7]
    stage = lambda: [decl() for _ in range(rnd.randint(0, 3))] + [
        "RUN echo out:A=$A B=$B C=$C P=$HTTP_PROXY"]
    text = "\n".join(meta + ["FROM dybuild:base AS one"] + stage() + ["FROM dybuild:base"] + stage()
                     + ["COPY --from=one /etc/group /g"]) + "\n"  # stage one is needed: docker builds all
    build_args = {k: f"cli-{k}" for k in names if rnd.random() < 0.4}
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": text})
    flags = [x for k, v in build_args.items() for x in ("--build-arg", f"{k}={v}")]
    proc = docker_build(dockerd, ctx, f"arg{seed}", flags)
    assert proc.returncode == 0, (text, proc.stdout + proc.stderr)
    iid, lines = build(bengine, ctx, build_args=build_args, no_cache=True)  # docker's side is --no-cache too
    assert run_output(lines) == [l.strip() for l in run_output(proc.stdout)], text
    dh = dockerd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", f"arg{seed}").stdout.decode().splitlines()
    oh = [h["CreatedBy"] for h in bengine.images.history(iid)]
    assert [norm_history(h) for h in dh] == [norm_history(h) for h in oh], text


@pytest.mark.parametrize("seed", range(40))
def test_random_metadata_matches_docker(dockerd, docker_base, bengine, tmp_path, seed):
    """CMD/ENTRYPOINT/SHELL/HEALTHCHECK/STOPSIGNAL/VOLUME/ONBUILD/MAINTAINER in random orders and
    forms: config and history match Docker's, or both fail."""
    import random

    from dockyard.errors import DockyardError

    rnd = random.Random(4000 + seed)
    options = {
        "CMD": ["echo hi", '["a", "b c"]', "[]", "x  y", '["only"]'],
        "ENTRYPOINT": ["/bin/echo", '["/bin/echo", "-n"]', 'sh -c "x"'],
        "SHELL": ['["/bin/sh", "-e", "-c"]', '["/bin/busybox", "sh", "-c"]'],
        "STOPSIGNAL": ["SIGKILL", "9", "TERM", "SIGRTMIN+3"],
        "VOLUME": ["/v", '["/a", "/b"]', "/c /d"],
        "ONBUILD": ["RUN echo x", "ENV A=1", "COPY a b"],
        "MAINTAINER": ["me", "a b <c@d>"],
        "LABEL": ["a=1", 'b="2 3" c=4', "d e f"],
        "EXPOSE": ["1", "2/udp", "3-4/tcp", "5/sctp"],
        "USER": ["nobody", "1:2", "root"],
    }
    flags = ["--interval=1m30s", "--timeout=500ms", "--retries=65", "--start-period=2h", "--retries=0",
             "--interval=1.5s"]

    def one() -> str:
        kind = rnd.choice(list(options) + ["HEALTHCHECK", "HEALTHCHECK NONE"])
        if kind == "HEALTHCHECK":
            return " ".join(["HEALTHCHECK", *rnd.sample(flags, rnd.randint(0, 2)), rnd.choice(["CMD true", 'CMD ["x", "y"]'])])
        if kind == "HEALTHCHECK NONE":
            return kind
        return f"{kind} {rnd.choice(options[kind])}"

    text = "FROM dybuild:base\n" + "\n".join(one() for _ in range(rnd.randint(2, 6))) + "\n"
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": text})
    proc = docker_build(dockerd, ctx, f"meta{seed}")
    try:
        iid, _ = build(bengine, ctx)
    except DockyardError as exc:
        assert proc.returncode != 0, (text, str(exc), proc.stdout)
        return
    assert proc.returncode == 0, (text, proc.stdout + proc.stderr)
    d = json.loads(dockerd.docker("image", "inspect", f"meta{seed}").stdout)[0]
    ours = bengine.images.inspect(iid)
    for key in ("Cmd", "Entrypoint", "Shell", "Healthcheck", "StopSignal", "Volumes", "OnBuild", "Labels",
                "ExposedPorts", "User"):
        assert (d["Config"].get(key) or None) == (ours["Config"].get(key) or None), (text, key)
    assert d["Author"] == ours["Author"], text
    dh = dockerd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", f"meta{seed}").stdout.decode().splitlines()
    assert dh == [h["CreatedBy"] for h in bengine.images.history(iid)], text


@pytest.mark.parametrize("seed", range(16))
def test_random_filesystem_changes_match_docker(dockerd, docker_base, bengine, tmp_path, seed):
    """RUN steps that add, replace, delete, move, chmod and re-create files and directories over
    several layers (whiteouts, opaque directories): the same final tree and layer count as Docker."""
    import random

    rnd = random.Random(5000 + seed)
    paths = ["/d", "/d/e", "/d/e/f", "/d/g", "/h", "/etc/x", "/root", "/tmp/t", "/bin/true"]
    ops = [
        lambda p: f"mkdir -p {p}", lambda p: f"echo {rnd.randint(0, 9)} > {p}",
        lambda p: f"rm -rf {p}", lambda p: f"chmod {rnd.choice(['700', '644', '4755'])} {p}",
        lambda p: f"mv {p} {rnd.choice(paths)}.moved", lambda p: f"ln -sf /x {p}.ln",
        lambda p: f"rm -rf {p} && mkdir -p {p}/new", lambda p: "true",
    ]
    runs = ["; ".join(rnd.choice(ops)(rnd.choice(paths)) + " 2>/dev/null" for _ in range(rnd.randint(1, 3))) + "; true"
            for _ in range(rnd.randint(2, 5))]
    text = "FROM dybuild:base\n" + "".join(f"RUN {r}\n" for r in runs)
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": text})
    proc = docker_build(dockerd, ctx, f"fs{seed}")
    assert proc.returncode == 0, (text, proc.stdout + proc.stderr)
    iid, _ = build(bengine, ctx)
    dt = docker_tree(dockerd, f"fs{seed}", tmp_path / "d")
    ot = our_tree(bengine, iid, tmp_path / "o")
    assert sorted(dt) == sorted(ot), (text, sorted(set(dt) ^ set(ot)))
    for path in dt:
        assert dt[path][:-1] == ot[path][:-1], (text, path)  # not mtimes: RUN made them
    d = json.loads(dockerd.docker("image", "inspect", f"fs{seed}").stdout)[0]
    assert len(d["RootFS"]["Layers"]) == len(bengine.images.inspect(iid)["RootFS"]["Layers"]), text


def test_prune_cache_forgets_entries(bengine, tmp_path):
    from dockyard.build import prune_cache

    df = "FROM dybuild:base\nENV A=1\nRUN echo out:ran\n"
    build(bengine, None, df)
    _, lines = build(bengine, None, df)
    assert run_output(lines) == []
    pruned = prune_cache(bengine)
    assert len(pruned["CachesDeleted"]) == 2
    _, lines = build(bengine, None, df)
    assert run_output(lines) == ["out:ran"]
