"""Volumes and mounts through the ``dockyard`` CLI: the volume commands, -v/--mount/--tmpfs/
--volumes-from, Docker's copy-up and anonymous-volume rules, and inspect's Mounts, with the same
commands run against a real dockerd where one is installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from test_network import dyn, fails, inspect, make_image, text  # noqa: F401  (dyn is a fixture)


def vol_names(dy) -> list[str]:
    return text(dy("volume", "ls", "-q")).split()


def test_volume_commands(dyn):
    assert text(dyn("volume", "create", "--label", "a=1", "--label", "b", "data1")) == "data1\n"
    assert text(dyn("volume", "create", "data2")) == "data2\n"
    assert text(dyn("volume", "create", "data2")) == "data2\n"  # existing: a no-op, as docker
    anon = text(dyn("volume", "create")).strip()
    assert len(anon) == 64
    (v,) = json.loads(text(dyn("volume", "inspect", "data1")))
    assert set(v) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert (v["Driver"], v["Labels"], v["Name"], v["Scope"]) == ("local", {"a": "1", "b": ""}, "data1", "local")
    assert v["Mountpoint"] == str(dyn.root / "volumes" / "data1" / "_data") and os.path.isdir(v["Mountpoint"])
    assert text(dyn("volume", "ls")).splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert sorted(vol_names(dyn)) == sorted([anon, "data1", "data2"])
    assert text(dyn("volume", "ls", "-q", "--filter", "label=a=1")) == "data1\n"
    assert text(dyn("volume", "ls", "--filter", "name=data", "--format", "{{.Name}}:{{.Driver}}")) == "data1:local\ndata2:local\n"
    assert text(dyn("volume", "inspect", "-f", "{{.Name}} {{.Labels.a}}", "data1")) == "data1 1\n"
    assert "volume name is too short" in fails(dyn("volume", "create", "a", check=False), 1)
    err = fails(dyn("volume", "create", "bad/name", check=False), 1)
    assert '"bad/name" includes invalid characters for a local volume name' in err
    assert "get nope: no such volume" in fails(dyn("volume", "inspect", "nope", check=False), 1)
    assert "get nope: no such volume" in fails(dyn("volume", "rm", "nope", check=False), 1)
    dyn("volume", "rm", "-f", "nope")
    assert text(dyn("volume", "rm", "data2")) == "data2\n"
    # API 1.42+ (docker 23+): prune takes anonymous volumes only; -a the named ones too
    out = text(dyn("volume", "prune", "-f"))
    assert out.startswith("Deleted Volumes:\n") and out.splitlines()[1:3] == [anon, ""]
    assert vol_names(dyn) == ["data1"]
    out = text(dyn("volume", "prune", "-f", "-a"))
    assert out.startswith("Deleted Volumes:\ndata1\n")
    assert vol_names(dyn) == []
    assert not (dyn.root / "volumes" / "data1").exists()


def test_named_volume_copy_up_persistence_and_in_use(dyn):
    dyn("run", "--rm", "-v", "store:/www", "bb", "sh", "-c", "cat /www/index.html; echo added > /www/new")
    # The new volume started with a copy of the image's /www; the data outlives the container.
    data = Path(json.loads(text(dyn("volume", "inspect", "store")))[0]["Mountpoint"])
    assert sorted(os.listdir(data)) == ["index.html", "new"]
    assert text(dyn("run", "--rm", "-v", "store:/mnt:ro", "bb", "sh", "-c", "cat /mnt/new; touch /mnt/x 2>&1; true")) \
        == "added\ntouch: /mnt/x: Read-only file system\n"
    # An existing (non-empty) volume is never overwritten by copy-up.
    (data / "index.html").write_text("mine\n")
    assert text(dyn("run", "--rm", "-v", "store:/www", "bb", "cat", "/www/index.html")) == "mine\n"
    dyn("create", "--name", "user1", "-v", "store:/data", "bb", "true")
    err = fails(dyn("volume", "rm", "store", check=False), 1)
    assert "volume is in use" in err and inspect(dyn, "user1")["Id"] in err
    assert text(dyn("volume", "prune", "-f")) == "Total reclaimed space: 0B\n"
    dyn("rm", "user1")
    assert (data / "new").read_text() == "added\n"
    dyn("volume", "rm", "store")


def test_binds_and_missing_sources(dyn, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from host\n")
    out = text(dyn("run", "--rm", "-v", f"{host}:/h", "bb", "sh", "-c", "cat /h/in; echo back > /h/out"))
    assert out == "from host\n" and (host / "out").read_text() == "back\n"
    proc = dyn("run", "--rm", "--mount", f"type=bind,src={host},dst=/h,readonly", "bb", "touch", "/h/x", check=False)
    assert proc.returncode == 1 and b"Read-only file system" in proc.stderr
    # --mount refuses a missing source (and creates nothing); -v makes the directory, as docker.
    missing = tmp_path / "missing"
    err = fails(dyn("run", "--rm", "--mount", f"type=bind,src={missing},dst=/m", "bb", "true", check=False))
    assert f"bind source path does not exist: {missing}" in err
    assert text(dyn("ps", "-aq")) == "" and not missing.exists()
    dyn("run", "--rm", "-v", f"{missing}:/m", "bb", "true")
    assert missing.is_dir()
    for bad, message in [(["-v", "relative:/x:zz"], "invalid mode: zz"), (["-v", "vol:relative"], "mount path must be absolute"),
                         (["--mount", "type=nfs,dst=/x"], "mount type unknown"),
                         (["--mount", "type=volume,src=v"], "target is required"),
                         (["-v", "/a:/x", "-v", "/b:/x"], "Duplicate mount point: /x")]:
        err = fails(dyn("run", "--rm", *bad, "bb", "true", check=False))
        assert message in err, (bad, err)
    assert text(dyn("ps", "-aq")) == "" and vol_names(dyn) == []


def test_anonymous_volumes_from_image_and_rm_v(dyn, tmp_path):
    make_image(dyn, tmp_path, "withvol", ('VOLUME ["/www", "/cache"]',))
    cid = text(dyn("create", "--name", "keep", "withvol", "cat", "/www/index.html")).strip()
    mounts = inspect(dyn, cid)["Mounts"]
    assert sorted(m["Destination"] for m in mounts) == ["/cache", "/www"]
    assert all(m["Type"] == "volume" and len(m["Name"]) == 64 and m["Driver"] == "local" for m in mounts)
    names = {m["Name"] for m in mounts}
    assert text(dyn("start", "-a", "keep")) == "hello from the container\n"  # copied up from the image
    dyn("rm", "keep")
    assert names <= set(vol_names(dyn))  # plain rm keeps them, as docker
    dyn("volume", "rm", *names)
    cid = text(dyn("create", "withvol", "true")).strip()
    names = {m["Name"] for m in inspect(dyn, cid)["Mounts"]}
    dyn("rm", "-v", cid)
    assert not names & set(vol_names(dyn))
    dyn("run", "--rm", "-v", "named:/cache", "withvol", "true")  # --rm: anonymous ones go, named stay
    assert vol_names(dyn) == ["named"]
    dyn("volume", "rm", "named")


def test_tmpfs_volumes_from_and_mounts_shape(dyn, tmp_path):
    out = text(dyn("run", "--rm", "--tmpfs", "/t1:size=1m", "--mount", "type=tmpfs,dst=/t2,tmpfs-size=2m", "bb",
                   "sh", "-c", "grep -E ' /t[12] ' /proc/mounts"))
    assert "tmpfs /t1 tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k" in out
    assert "tmpfs /t2 tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k" in out
    host = tmp_path / "h"
    host.mkdir()
    dyn("create", "--name", "src", "-v", "shared:/shared", "-v", f"{host}:/host:ro", "bb", "true")
    mounts = {m["Destination"]: m for m in inspect(dyn, "src")["Mounts"]}
    assert mounts["/shared"] == {"Type": "volume", "Name": "shared", "Source": str(dyn.root / "volumes/shared/_data"),
                                 "Destination": "/shared", "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    assert mounts["/host"] == {"Type": "bind", "Source": str(host), "Destination": "/host", "Mode": "ro", "RW": False,
                               "Propagation": "rprivate"}
    dyn("run", "--rm", "--volumes-from", "src", "bb", "sh", "-c", "echo hi > /shared/f")
    out = text(dyn("run", "--rm", "--volumes-from", "src:ro", "bb", "sh", "-c", "cat /shared/f; touch /shared/g 2>&1; true"))
    assert out == "hi\ntouch: /shared/g: Read-only file system\n"
    hc = inspect(dyn, "src")["HostConfig"]
    assert hc["Binds"] == ["shared:/shared", f"{host}:/host:ro"]
    dyn("rm", "src")
    dyn("volume", "rm", "shared")


def test_same_commands_as_dockerd(dyn, dockerd, docker_busybox, tmp_path):
    """Volume inspect and a container's Mounts have docker's keys and values."""
    dockerd.docker("volume", "prune", "-f")  # the dockerd is shared with other test files
    host = tmp_path / "h"
    host.mkdir()
    outs = {}
    for tool, run in (("docker", dockerd.docker), ("dockyard", dyn)):
        image = docker_busybox if tool == "docker" else "bb"
        run("volume", "create", "--label", "k=v", "cmpvol")
        cid = run("create", "--network", "none", "-v", "cmpvol:/data", "-v", f"{host}:/h:ro",
                  "--mount", "type=volume,dst=/anon", image, "true").stdout.decode().strip()
        vol = json.loads(run("volume", "inspect", "cmpvol").stdout)[0]
        mounts = json.loads(run("inspect", cid).stdout)[0]["Mounts"]
        busy = run("volume", "rm", "cmpvol", check=False)
        run("rm", "-v", cid)
        run("volume", "rm", "cmpvol")
        outs[tool] = (vol, mounts, busy.returncode, run("volume", "ls", "-q").stdout)
    (dv, dm, dcode, dls), (yv, ym, ycode, yls) = outs["docker"], outs["dockyard"]
    assert set(dv) == set(yv) and dv["Labels"] == yv["Labels"] and dv["Scope"] == yv["Scope"]
    assert dcode == ycode == 1 and dls == yls == b""

    def shape(ms: list[dict]) -> list[tuple]:
        return sorted((m["Type"], m["Destination"], m.get("Mode"), m["RW"], m.get("Propagation"), sorted(m),
                       m.get("Name") == "cmpvol", len(m.get("Name", "")) == 64) for m in ms)

    assert shape(dm) == shape(ym)


def test_dangling_filter_and_prune_keep_used(dyn):
    dyn("volume", "create", "used")
    dyn("volume", "create", "--label", "keep=yes", "spare")
    dyn("volume", "create", "junk")
    dyn("create", "--name", "holder", "-v", "used:/u", "bb", "true")
    assert text(dyn("volume", "ls", "-q", "--filter", "dangling=true")) == "junk\nspare\n"
    assert text(dyn("volume", "ls", "-q", "--filter", "dangling=false")) == "used\n"
    assert "Invalid filter 'colour'" in fails(dyn("volume", "ls", "--filter", "colour=red", check=False), 1)
    assert text(dyn("volume", "prune", "-f")) == "Total reclaimed space: 0B\n"  # named ones stay without -a
    out = text(dyn("volume", "prune", "-f", "-a", "--filter", "label!=keep=yes"))
    assert out.splitlines()[:2] == ["Deleted Volumes:", "junk"]
    assert vol_names(dyn) == ["spare", "used"]
    dyn("rm", "holder")
    dyn("volume", "prune", "-f", "--all")
    assert vol_names(dyn) == []


def test_image_volumes_like_dockerd(dyn, dockerd, tmp_path):
    """An image's VOLUME: an anonymous volume with the image's content, shown in Mounts as
    docker does, gone with rm -v."""
    from support import make_busybox_rootfs, tar_dir

    root = make_busybox_rootfs(tmp_path / "volroot")
    (root / "seed").mkdir()
    (root / "seed" / "a.txt").write_text("seeded\n")
    tar = tar_dir(root, tmp_path / "volimg.tar")
    outs = {}
    for tool, run in (("docker", dockerd.docker), ("dockyard", dyn)):
        run("import", "-c", 'VOLUME ["/seed"]', "-c", 'CMD ["/bin/sh"]', str(tar), "volimg")
        cid = run("create", "--network", "none", "volimg", "cat", "/seed/a.txt").stdout.decode().strip()
        out = run("start", "-a", cid).stdout.decode()
        (m,) = json.loads(run("inspect", cid).stdout)[0]["Mounts"]
        name = m["Name"]
        before = name in run("volume", "ls", "-q").stdout.decode().split()
        run("rm", "-v", cid)
        after = name in run("volume", "ls", "-q").stdout.decode().split()
        run("rmi", "volimg")
        outs[tool] = (out, m["Type"], m["Destination"], m["Mode"], m["RW"], m["Propagation"], m["Driver"], sorted(m),
                      len(name), before, after)
    assert outs["dockyard"] == outs["docker"]


def test_bad_mounts_like_dockerd(dyn, dockerd, docker_busybox, tmp_path):
    """The same bad -v/--mount/--tmpfs/--volumes-from values: the same exit code and message."""
    cases = [["--mount", "type=tmpfs,src=x,dst=/t"], ["--mount", "type=bind,dst=/t"], ["-v", "a:b:c:d"],
             ["--volumes-from", "nope"], ["--mount", "type=nfs,dst=/x"], ["--mount", "type=volume,src=v"],
             ["-v", "vol:relative"], ["-v", "/a:/x", "-v", "/b:/x"], ["-v", "vol:/x:zz"],
             ["--mount", "type=bind,src=rel,dst=/x"], ["--mount", f"type=bind,src={tmp_path}/missing,dst=/x"]]
    for args in cases:
        outs = {}
        for tool, run in (("docker", dockerd.docker), ("dockyard", dyn)):
            proc = run("run", "--rm", "--network", "none", *args, docker_busybox if tool == "docker" else "bb", "true",
                       check=False)
            msg = proc.stderr.decode().strip().splitlines()[0]
            outs[tool] = (proc.returncode, msg.removeprefix("docker: ").removeprefix("Error response from daemon: "))
        assert outs["dockyard"] == outs["docker"], args
    assert text(dyn("ps", "-aq")) == "" and vol_names(dyn) == []


def test_volume_commands_like_dockerd(dyn, dockerd, docker_busybox):
    steps = [["volume", "create", "--label", "a=1", "cmp1"], ["volume", "create", "cmp1"], ["volume", "create", "cmp2"],
             ["volume", "create", "x"], ["volume", "create", "bad/name"], ["volume", "ls"],
             ["volume", "ls", "-q", "--filter", "label=a"], ["volume", "ls", "--format", "{{.Name}} {{.Driver}}"],
             ["volume", "ls", "--filter", "colour=red"], ["volume", "inspect", "-f", "{{.Name}} {{.Labels}}", "cmp1"],
             ["volume", "inspect", "nope"], ["volume", "rm", "nope"], ["volume", "rm", "-f", "nope"],
             ["volume", "rm", "cmp2"], ["volume", "prune", "-f"], ["volume", "ls", "-q"]]
    dockerd.docker("volume", "prune", "-f")  # (docker build leaves anonymous volumes in the shared dockerd)
    outs = {}
    for tool, run in (("docker", dockerd.docker), ("dockyard", dyn)):
        outs[tool] = []
        for args in steps:
            if tool == "dockyard" and args[:2] == ["volume", "prune"]:
                # the reference dockerd (20.10) speaks API 1.41, where prune takes named volumes
                # too; dockyard speaks 1.45, where that takes -a, as with a docker 23+ daemon
                args = [*args, "-a"]
            proc = run(*args, check=False)
            err = proc.stderr.decode().strip().splitlines()
            outs[tool].append((proc.returncode, proc.stdout.decode(), err[0] if err else ""))
    diffs = [(a, o, t) for a, o, t in zip(steps, outs["dockyard"], outs["docker"]) if o != t]
    assert diffs == [], "\n".join(map(repr, diffs))
