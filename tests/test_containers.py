"""Containers through the ``dockyard`` CLI, as a user runs them: lifecycle, isolation, cleanup."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from support import needs_root

def runtime_available() -> bool:
    try:
        from dockyard.engine.runtime import binary

        binary()
        return True
    except Exception:
        return False


pytestmark = [needs_root, pytest.mark.skipif(not runtime_available(), reason="dockyard-runtime is not built")]


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path))]


@pytest.fixture
def dy(cli, rootfs_tar, tmp_path, monkeypatch):
    """The CLI with a private root and run dir, a busybox image "bb", and a check at the end that
    nothing is left: no container, no mount, no runtime state."""
    run = cli.run_dir
    monkeypatch.setenv("DOCKYARD_RUN", str(run))
    cli("import", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar), "bb")
    yield cli
    leftover = cli("ps", "-aq").stdout.decode().split()
    if leftover:
        cli("rm", "-f", *leftover, check=False)
    assert mounts_under(cli.root) == []
    state = run / "runtime"
    left_state = os.listdir(state) if state.exists() else []
    left_sockets = os.listdir(run / "attach") if (run / "attach").exists() else []
    assert left_state == [] and left_sockets == []
    assert leftover == [], "a test left containers behind"


def text(proc) -> str:
    return proc.stdout.decode()


def test_hello_world_offline(dy):
    proc = dy("run", "--rm", "hello-world")
    assert proc.returncode == 0
    assert "Hello from dockyard!" in text(proc)
    assert dy("images", "--format", "{{.Repository}}:{{.Tag}}", "hello-world").stdout == b"hello-world:latest\n"


def test_exit_codes_and_streams(dy):
    proc = dy("run", "--rm", "bb", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, b"out\n", b"err\n")
    proc = dy("run", "--rm", "bb", "no-such-command", check=False)
    assert proc.returncode == 127
    assert b"no-such-command" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = dy("run", "--rm", "bb", "/etc/passwd", check=False)
    assert proc.returncode == 126
    proc = dy("run", "--rm", "--pull", "never", "nosuchimage", check=False)
    assert proc.returncode == 125
    assert proc.stderr.decode().splitlines() == ["Error response from daemon: No such image: nosuchimage:latest"]
    proc = dy("run", "--rm", "nosuchimage", check=False)  # a pull is tried (the tests' hub is a closed port)
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 125 and lines[0] == "Unable to find image 'nosuchimage:latest' locally"
    assert lines[-1].startswith("Error response from daemon: ") and len(lines) == 2
    for bad in (["-m", "12zz"], ["--cpus", "-1"], ["--ulimit", "nofile=x"], ["--restart", "sometimes"]):
        proc = dy("run", "--rm", *bad, "bb", "true", check=False)
        assert proc.returncode == 125, bad
        assert len(proc.stderr.splitlines()) == 1 and b"Traceback" not in proc.stderr, bad
    proc = dy("kill", "-s", "NOPE", "x", check=False)
    assert proc.returncode == 1 and b"Invalid signal: NOPE" in proc.stderr


def test_config_reaches_the_process(dy):
    out = text(dy("run", "--rm", "-e", "A=1", "-e", "B=two words", "-w", "/tmp", "-h", "box", "-u", "65534:65534",
                  "bb", "sh", "-c", 'echo "$A|$B|$(pwd)|$(hostname)|$(id -u):$(id -g)|$HOME|$PATH"'))
    assert out == "1|two words|/tmp|box|65534:65534|/|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    assert text(dy("run", "--rm", "--entrypoint", "echo", "bb", "a", "b")) == "a b\n"
    assert text(dy("run", "--rm", "-u", "nobody", "bb", "id", "-u")) == "65534\n"


def test_isolation_from_inside(dy):
    script = ("echo pid1=$(cat /proc/1/comm); grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
              "cat /proc/kcore >/dev/null 2>&1 && echo kcore-readable; "
              "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo proc-sys-writable; "
              "touch /sys/x 2>/dev/null && echo sys-writable; ls /dev | tr '\\n' ' '; echo; "
              "ps -o pid | wc -l")
    out = text(dy("run", "--rm", "bb", "sh", "-c", script)).splitlines()
    assert out[0] == "pid1=sh"
    assert out[1:4] == ["CapEff:\t00000000a80425fb", "NoNewPrivs:\t0", "Seccomp:\t2"]
    assert not any(l in out for l in ("kcore-readable", "proc-sys-writable", "sys-writable"))
    devs = set(out[4].split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "mqueue", "fd"} <= devs
    out = text(dy("run", "--rm", "--security-opt", "no-new-privileges", "--cap-drop", "ALL", "bb",
                  "grep", "-E", "CapEff|NoNewPrivs", "/proc/self/status"))
    assert out == "CapEff:\t0000000000000000\nNoNewPrivs:\t1\n"


def test_writes_never_touch_the_image(dy):
    dy("run", "--name", "writer", "bb", "sh", "-c", "echo changed > /etc/passwd; rm /bin/ls; touch /new")
    out = text(dy("run", "--rm", "bb", "sh", "-c", "cat /etc/passwd | head -1; ls /bin/ls; ls /new 2>&1 | head -1"))
    assert out.splitlines()[0].startswith("root:x:0:0")
    assert "/bin/ls" in out.splitlines()[1]
    assert "No such file" in out.splitlines()[2]
    dy("rm", "writer")


def test_lifecycle_like_docker(dy):
    cid = text(dy("create", "--name", "life", "bb", "sleep", "30")).strip()
    assert len(cid) == 64
    assert text(dy("ps", "-a", "--format", "{{.Names}} {{.Status}}")) == "life Created\n"
    proc = dy("create", "--name", "life", "bb", check=False)
    assert proc.returncode == 1 and b'The container name "/life" is already in use' in proc.stderr  # (as docker create)
    assert text(dy("start", "life")) == "life\n"
    assert text(dy("ps", "--format", "{{.Names}} {{.Command}}")) == 'life "sleep 30"\n'
    assert text(dy("inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Name}}", "life")) == "running true /life\n"
    proc = dy("rm", "life", check=False)
    assert proc.returncode == 1 and b"container is running" in proc.stderr
    dy("pause", "life")
    assert text(dy("inspect", "-f", "{{.State.Status}}", "life")) == "paused\n"
    dy("unpause", "life")
    dy("kill", "-s", "TERM", "life")  # sleep as pid 1 ignores TERM: still running
    time.sleep(0.2)
    assert text(dy("inspect", "-f", "{{.State.Running}}", "life")) == "true\n"
    dy("stop", "-t", "1", "life")
    state = json.loads(text(dy("inspect", "life")))[0]["State"]
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 137, False)
    assert text(dy("ps", "-a", "--format", "{{.Status}}")).startswith("Exited (137) ")
    dy("rename", "life", "life2")
    dy("start", "life2")
    dy("kill", "life2")
    assert text(dy("wait", "life2")) == "137\n"
    dy("rm", cid[:10])
    assert text(dy("ps", "-aq")) == ""


def test_logs(dy):
    dy("run", "--name", "talker", "bb", "sh", "-c", "echo one; echo two >&2; sleep 0.2; echo three")
    assert text(dy("logs", "talker")) == "one\nthree\n"
    proc = dy("logs", "talker")
    assert proc.stderr == b"two\n"
    assert text(dy("logs", "--tail", "1", "talker")) == "three\n"
    stamped = text(dy("logs", "-t", "talker")).splitlines()
    assert stamped[0].endswith(" one") and stamped[0][:4].isdigit() and "T" in stamped[0]
    third = stamped[-1].split()[0]  # the time "three" was written (0.2 s after the others)
    assert text(dy("logs", "--since", third, "talker")) == "three\n"
    assert text(dy("logs", "--until", third, "talker")) == "one\n"
    assert text(dy("logs", "--since", "1h", "talker")) == "one\nthree\n"
    assert text(dy("logs", "-f", "talker")) == "one\nthree\n"  # an exited container: -f returns
    dy("rm", "talker")


def test_limits_contain_fork_bomb_and_report_oom(dy):
    # A fork bomb under a limit of 20 pids: its forks fail and it dies; the container lives on.
    # Counting uses shell builtins only (a fork would fail too).
    out = dy("run", "--rm", "--pids-limit", "20", "bb", "sh", "-c",
             'sh -c "while true; do sleep 5 & done" 2>/dev/null; set -- /proc/[0-9]*; echo $#')
    assert 15 <= int(text(out)) <= 20, text(out)
    proc = dy("run", "--name", "hog", "-m", "8m", "--memory-swap", "8m", "bb", "sh", "-c",
              "x=a; while true; do x=$x$x$x$x; done", check=False)
    assert proc.returncode == 137
    state = json.loads(text(dy("inspect", "hog")))[0]["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    dy("rm", "hog")


def test_twenty_concurrent_runs(dy):
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("dockyard")
    env = dy.env
    procs = [subprocess.Popen([str(exe), "run", "--rm", "bb", "echo", str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(20)]
    results = [(p.wait(120), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [r[0] for r in results] == [0] * 20, [r[2] for r in results if r[0]]
    assert sorted(int(r[1]) for r in results) == list(range(20))
    assert text(dy("ps", "-aq")) == ""


def test_diff_commit_export(dy, tmp_path):
    dy("run", "--name", "snap", "bb", "sh", "-c",
       "echo hi > /tmp/f; rm /bin/ls; mkdir -p /a/b; echo x > /a/b/c")
    assert text(dy("diff", "snap")).splitlines() == [
        "A /a", "A /a/b", "A /a/b/c", "C /bin", "D /bin/ls", "C /tmp", "A /tmp/f"]
    image_id = text(dy("commit", "-c", 'CMD ["cat", "/tmp/f"]', "-m", "snapshot", "snap", "bb:snap")).strip()
    assert text(dy("run", "--rm", "bb:snap")) == "hi\n"
    assert dy("run", "--rm", "bb:snap", "ls", check=False).returncode == 127
    assert text(dy("inspect", "-f", "{{.Parent}} {{len .RootFS.Layers}}", "bb:snap")).split()[1] == "2"
    assert text(dy("history", "--format", "{{.Comment}}", "bb:snap")).splitlines()[0] == "snapshot"
    out = tmp_path / "export.tar"
    dy("export", "-o", str(out), "snap")
    import tarfile

    with tarfile.open(out) as tf:
        names = set(tf.getnames())
    assert {"a/b/c", "tmp/f", "bin/busybox"} <= names and "bin/ls" not in names
    dy("rm", "snap")
    dy("rmi", image_id)


def test_exec_top_cp_stats(dy, tmp_path):
    dy("run", "-d", "--name", "busy", "-e", "FROM_RUN=1", "bb", "sleep", "60")
    assert text(dy("exec", "busy", "sh", "-c", "echo $FROM_RUN $(id -u) $(pwd)")) == "1 0 /\n"
    assert text(dy("exec", "-e", "X=2", "-w", "/tmp", "-u", "65534", "busy", "sh", "-c",
                   "echo $X $(id -u) $(pwd)")) == "2 65534 /tmp\n"
    assert dy("exec", "busy", "sh", "-c", "exit 7", check=False).returncode == 7
    assert dy("exec", "busy", "nosuch", check=False).returncode == 126  # a start failure: docker's 126
    top = text(dy("top", "busy")).splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and top[1].endswith("sleep 60")
    (tmp_path / "in.txt").write_text("into the container\n")
    dy("cp", str(tmp_path / "in.txt"), "busy:/tmp/")
    assert text(dy("exec", "busy", "cat", "/tmp/in.txt")) == "into the container\n"
    assert text(dy("exec", "busy", "stat", "-c", "%u", "/tmp/in.txt")) == "0\n"
    dy("cp", "busy:/etc/passwd", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text().startswith("root:x:0:0")
    dy("cp", "busy:/bin", str(tmp_path / "bin"))
    assert (tmp_path / "bin" / "busybox").is_file() and (tmp_path / "bin" / "sh").is_symlink()
    # a path that tries to leave the container's root stays inside it
    dy("exec", "busy", "busybox", "ln", "-s", "/../../../../etc", "/tmp/escape")
    dy("cp", str(tmp_path / "in.txt"), "busy:/tmp/escape/")
    assert text(dy("exec", "busy", "cat", "/etc/in.txt")) == "into the container\n"
    assert not Path("/etc/in.txt").exists()
    stats = text(dy("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "busy"))
    assert stats == "busy 1\n"
    proc = dy("exec", "nosuch", "true", check=False)
    assert proc.returncode == 1 and b"No such container: nosuch" in proc.stderr
    dy("rm", "-f", "busy")
    proc = dy("exec", "busy", "true", check=False)
    assert proc.returncode == 1


def test_cp_follows_docker_cp_rules(dy, tmp_path):
    """Both directions over GET/PUT /containers/{id}/archive, with docker cp's rules for where
    a file or directory lands, "-" for a tar on stdin/stdout, -a and -L."""
    import io
    import tarfile

    dy("run", "-d", "--name", "cpbox", "bb", "sh", "-c", "mkdir -p /d/sub; echo a > /d/a; echo b > /d/sub/b; "
       "ln -s /etc /d/abs; sleep 60")
    time.sleep(0.3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "exdir").mkdir()
    (out / "exfile").write_text("old\n")

    def tree(p: Path) -> list[str]:
        return sorted(str(x.relative_to(p)) + ("@" if x.is_symlink() else "/" if x.is_dir() else "")
                      for x in p.rglob("*"))

    dy("cp", "cpbox:/d/a", str(out / "new"))                       # file -> new name
    dy("cp", "cpbox:/d/a", str(out / "exdir"))                     # file -> into a directory
    dy("cp", "cpbox:/d/a", str(out / "exfile"))                    # file -> over a file
    assert (out / "new").read_text() == (out / "exdir" / "a").read_text() == (out / "exfile").read_text() == "a\n"
    dy("cp", "cpbox:/d", str(out / "newdir"))                      # dir -> new directory of its contents
    dy("cp", "cpbox:/d", str(out / "exdir"))                       # dir -> inside a directory
    dy("cp", "cpbox:/d/.", str(out / "exdir"))                     # dir/. -> its contents into it
    assert tree(out / "newdir") == ["a", "abs@", "sub/", "sub/b"]
    assert tree(out / "exdir") == ["a", "abs@", "d/", "d/a", "d/abs@", "d/sub/", "d/sub/b", "sub/", "sub/b"]
    assert os.readlink(out / "newdir" / "abs") == "/etc"           # a link stays a link
    proc = dy("cp", "cpbox:/d", str(out / "exfile"), check=False)
    assert (proc.returncode, proc.stderr) == (1, b"cannot copy directory\n")
    proc = dy("cp", "cpbox:/d/a", str(out / "nodir") + "/", check=False)
    assert (proc.returncode, proc.stderr) == (1, b"no such directory\n")
    proc = dy("cp", "cpbox:/d/a/", str(out / "x"), check=False)
    assert proc.returncode == 1 and b"not a directory" in proc.stderr and not (out / "x").exists()
    proc = dy("cp", "cpbox:/nosuch", str(out / "x"), check=False)
    assert proc.stderr == b"Error response from daemon: Could not find the file /nosuch in container cpbox\n"
    dy("cp", "-L", "cpbox:/bin/sh", str(out / "sh"))               # -L: the link's target, under the link's name
    assert not (out / "sh").is_symlink()
    assert (out / "sh").read_bytes()[:4] == b"\x7fELF"
    dy("cp", "cpbox:/bin/sh", str(out / "shlink"))
    assert os.readlink(out / "shlink") == "busybox"
    tar = dy("cp", "cpbox:/d", "-").stdout                        # a tar on stdout
    assert sorted(tarfile.open(fileobj=io.BytesIO(tar)).getnames()) == ["d", "d/a", "d/abs", "d/sub", "d/sub/b"]
    host = dy("cp", "cpbox:/etc/hostname", "-").stdout             # the container's own, not the image's
    assert tarfile.open(fileobj=io.BytesIO(host)).extractfile("hostname").read().strip().decode() == \
        text(dy("inspect", "-f", "{{.Config.Hostname}}", "cpbox")).strip()

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_text("f\n")
    (src / "sub" / "g").write_text("g\n")
    os.chown(src / "f", 1234, 1234)
    dy("cp", str(src), "cpbox:/tmp/")                              # dir -> inside a directory
    dy("cp", str(src) + "/.", "cpbox:/tmp/new")                    # contents -> a new directory
    dy("cp", str(src / "f"), "cpbox:/tmp/renamed")                 # file -> new name
    dy("cp", "-a", str(src / "f"), "cpbox:/tmp/kept")              # -a keeps the owner
    listing = text(dy("exec", "cpbox", "sh", "-c", "cd /tmp && find src new renamed kept | sort; "
                                                   "stat -c %u src/f renamed kept"))
    assert listing.split() == ["kept", "new", "new/f", "new/sub", "new/sub/g", "renamed", "src", "src/f",
                               "src/sub", "src/sub/g", "0", "0", "1234"]
    proc = dy("cp", str(src), "cpbox:/etc/passwd", check=False)
    assert (proc.returncode, proc.stderr) == (1, b"cannot copy directory\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("fromstdin")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"xyz"))
    dy("cp", "-", "cpbox:/tmp", input=buf.getvalue())              # a tar on stdin
    assert text(dy("exec", "cpbox", "cat", "/tmp/fromstdin")) == "xyz"
    proc = dy("cp", "-", "cpbox:/etc/passwd", input=buf.getvalue(), check=False)
    assert proc.returncode == 1 and b"extraction point is not a directory" in proc.stderr
    dy("rm", "-f", "cpbox")


def test_logs_follow_across_rotations(dy):
    """``run --log-opt max-size=2k --log-opt max-file=3``: the log is rotated while ``logs -f``
    follows it, and the follower still gets every line, in order, once; afterwards ``logs``
    gives what the three files keep (the last line last) and no fourth file is there."""
    dy("run", "-d", "--name", "rot", "--network", "none", "--log-opt", "max-size=2k", "--log-opt", "max-file=3",
       "bb", "sh", "-c", "sleep 1; for i in $(seq 1 300); do echo line-$i; usleep 3000; done")
    got = dy("logs", "-f", "rot").stdout.decode().split()
    assert got == [f"line-{i}" for i in range(1, 301)], (len(got), got[:3])
    kept = dy("logs", "rot").stdout.decode().split()
    assert kept[-1] == "line-300" and 40 < len(kept) < 90, len(kept)
    path = json.loads(dy("inspect", "rot").stdout)[0]["LogPath"]
    assert os.path.exists(path + ".2") and not os.path.exists(path + ".3")
    err = dy("run", "--rm", "--log-opt", "max-size", "bb", "true", check=False)
    assert err.returncode == 125 and b"invalid key value pair format in log options" in err.stderr, err.stderr
    dy("rm", "rot")


def test_logs_follow_exec_stdin_stats_prune_export(dy):
    import subprocess
    import sys
    import tarfile

    dy("run", "-d", "--name", "ticker", "bb", "sh", "-c",
       "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done")
    proc = dy("logs", "-f", "ticker")                               # follows to the exit, streams apart
    assert (proc.stdout, proc.stderr) == (b"out1\nout2\nout3\n", b"err1\nerr2\nerr3\n")
    dy("run", "-d", "-t", "--name", "ttyer", "bb", "sh", "-c", "echo hi; echo there >&2")
    dy("wait", "ttyer")
    assert dy("logs", "ttyer").stdout == b"hi\r\nthere\r\n"        # a TTY's log is one raw stream
    dy("run", "-d", "--name", "busy", "--label", "keep=1", "bb", "sleep", "60")
    assert dy("exec", "-i", "busy", "sh", "-c", "cat; echo done", input=b"piped\n").stdout == b"piped\ndone\n"
    assert dy("exec", "-d", "busy", "sh", "-c", "echo later > /tmp/later").stdout == b""
    time.sleep(0.3)
    assert text(dy("exec", "busy", "cat", "/tmp/later")) == "later\n"
    deadline = time.monotonic() + 5  # an exec'd process leaves the pids count when it is released, a moment later
    while True:
        rows = sorted(text(dy("stats", "--no-stream", "-a", "--format", "{{.Name}} {{.PIDs}} {{.NetIO}}")).splitlines())
        if rows[0].startswith("busy 1 ") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # a running container's NET I/O is its eth0's real counters (test_sizes_stats.py); a stopped one has none
    assert rows[0].startswith("busy 1 ") and rows[1:] == ["ticker 0 0B / 0B", "ttyer 0 0B / 0B"]
    assert text(dy("ps", "-a", "-f", "status=exited", "-f", "name=t", "--format", "{{.Names}}")).split() == \
        ["ttyer", "ticker"]
    assert text(dy("ps", "-f", "label=keep=1", "--format", "{{.Names}} {{.Labels}} {{.Status}}")).startswith(
        "busy keep=1 Up ")
    proc = dy("ps", "-f", "nope=1", check=False)
    assert (proc.returncode, proc.stderr) == (1, b"Error response from daemon: invalid filter 'nope'\n")
    # export to a pipe, as `docker export c > x.tar` does
    with subprocess.Popen([str(Path(sys.executable).with_name("dockyard")), "export", "busy"], env=dy.env,
                          stdout=subprocess.PIPE) as p:
        with tarfile.open(fileobj=p.stdout, mode="r|") as tf:
            names = {m.name for m in tf}
    assert p.returncode == 0 and {"bin/busybox", "tmp/later"} <= names
    ticker = text(dy("inspect", "-f", "{{.Id}}", "ticker")).strip()
    out = text(dy("container", "prune", "-f", "--filter", "label!=keep", "--filter", "until=0s"))
    assert out.splitlines()[0] == "Deleted Containers:" and ticker in out.split()
    assert out.endswith("\nTotal reclaimed space: 0B\n")
    assert text(dy("ps", "-aq")).split() == [text(dy("inspect", "-f", "{{.Id}}", "busy")).strip()[:12]]
    dy("rm", "-f", "busy")


def test_container_commands_never_load_the_engine(dy, tmp_path):
    """The CLI is a client of the daemon: no container command imports dockyard.engine."""
    import subprocess
    import sys

    dy("run", "-d", "--name", "client", "bb", "sleep", "60")
    (tmp_path / "f").write_text("f")
    check = ("import sys; from dockyard.cli import main; rc = main(sys.argv[1:]); "
             "eng = [m for m in sys.modules if m.startswith('dockyard.engine')]; "
             "sys.exit(f'{rc} {eng}' if eng else rc)")
    for args in (["ps", "-a"], ["logs", "client"], ["top", "client"], ["stats", "--no-stream", "client"],
                 ["exec", "client", "true"], ["diff", "client"], ["cp", str(tmp_path / "f"), "client:/tmp"],
                 ["cp", "client:/tmp/f", str(tmp_path / "g")], ["export", "-o", str(tmp_path / "e.tar"), "client"],
                 ["pause", "client"], ["unpause", "client"], ["restart", "-t", "0", "client"],
                 ["kill", "-s", "NOPE", "client"], ["wait", "nosuch"], ["container", "prune", "-f"]):
        proc = subprocess.run([sys.executable, "-c", check, *args], env=dy.env, capture_output=True)
        assert b"dockyard.engine" not in proc.stderr, (args, proc.stderr)
        assert b"Traceback" not in proc.stderr, (args, proc.stderr)
    dy("rm", "-f", "client")


def test_interactive_tty_in_tmux(dy, tmp_path):
    """-it as a person uses it: a real terminal (tmux), window size, Ctrl-C, resize, detach keys."""
    import shutil
    import subprocess
    import sys

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    exe = Path(sys.executable).with_name("dockyard")
    sock = str(tmp_path / "tmux.sock")
    env_prefix = f"env DOCKYARD_ROOT={dy.root} DOCKYARD_RUN={dy.run_dir}"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-S", sock, *args], capture_output=True, text=True).stdout

    def screen_has(text_: str, timeout: float = 5.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text_ in tmux("capture-pane", "-p", "-t", "t"):
                return True
            time.sleep(0.1)
        return False

    tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30",
         f"{env_prefix} {exe} run -it --name tty1 bb sh; echo EXITED=$?; sleep 30")
    try:
        assert screen_has("/ #"), tmux("capture-pane", "-p", "-t", "t")
        tmux("send-keys", "-t", "t", "tty; stty size", "Enter")
        assert screen_has("/dev/pts/0") and screen_has("30 100")
        tmux("send-keys", "-t", "t", "sleep 100", "Enter")
        time.sleep(0.3)
        tmux("send-keys", "-t", "t", "C-c")
        tmux("send-keys", "-t", "t", "echo after-interrupt", "Enter")
        assert screen_has("\nafter-interrupt")
        tmux("resize-window", "-t", "t", "-x", "80", "-y", "20")
        time.sleep(0.3)
        tmux("send-keys", "-t", "t", "stty size", "Enter")
        assert screen_has("20 80")
        tmux("send-keys", "-t", "t", "C-p", "C-q")  # detach: the container keeps running
        assert screen_has("EXITED=0")
        assert text(dy("inspect", "-f", "{{.State.Running}}", "tty1")) == "true\n"
    finally:
        tmux("kill-server")
    dy("rm", "-f", "tty1")


def test_cli_killed_mid_run_leaves_state_the_next_command_repairs(dy):
    import signal
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("dockyard")
    env = dy.env
    with subprocess.Popen([str(exe), "run", "--name", "orphan", "bb", "sh", "-c", "echo up; sleep 1; exit 9"],
                          env=env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout.readline() == b"up\n"
        proc.send_signal(signal.SIGKILL)
    # The supervisor outlives the CLI: the container runs on, then its exit is recorded.
    assert text(dy("inspect", "-f", "{{.State.Running}}", "orphan")) == "true\n"
    assert text(dy("wait", "orphan")) == "9\n"
    assert text(dy("ps", "-a", "--format", "{{.Names}} {{.Status}}")).startswith("orphan Exited (9)")
    assert mounts_under(dy.root) == []
    dy("rm", "orphan")
    # With --rm the daemon removes it when it exits, though the CLI that asked is gone.
    with subprocess.Popen([str(exe), "run", "--rm", "--name", "orphan2", "bb", "sh", "-c", "echo up; sleep 1"],
                          env=env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout.readline() == b"up\n"
        proc.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 15
    while "orphan2" in text(dy("ps", "-a", "--format", "{{.Names}}")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert text(dy("ps", "-a", "--format", "{{.Names}}")) == ""
    # Killed between create and start: a created container, removable, nothing mounted.
    code = ("import sys; from dockyard.engine import Engine; from dockyard.engine.containers import CreateOptions; "
            "e = Engine(); cid = e.containers.create(CreateOptions(image='bb', cmd=['true'], name='half')); "
            "e.containers._mount_rootfs(e.containers.load(cid)); import os; os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code], env=env)
    assert text(dy("ps", "-a", "--format", "{{.Names}} {{.Status}}")) == "half Created\n"
    assert text(dy("start", "-a", "half")) == ""
    dy("rm", "half")
    assert mounts_under(dy.root) == []


def test_init_reaps_and_forwards(dy):
    out = text(dy("run", "--rm", "--init", "bb", "sh", "-c",
                  "cat /proc/1/comm; echo $$; (sleep 0.1 &); sleep 0.5; set -- /proc/[0-9]*; echo $#"))
    comm, pid, count = out.split()
    assert comm == "dockyard-init" and pid == "2"
    assert int(count) <= 3  # init, sh and the reading: the orphaned sleep was reaped
    assert dy("run", "--rm", "--init", "bb", "sh", "-c", "exit 5", check=False).returncode == 5
    dy("run", "-d", "--init", "--name", "trap", "bb", "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done")
    time.sleep(0.3)
    dy("stop", "-t", "5", "trap")
    assert text(dy("inspect", "-f", "{{.State.ExitCode}}", "trap")) == "42\n"
    dy("rm", "trap")


def test_resolve_user_tolerates_a_malformed_passwd_for_numeric_users(tmp_path):
    from dockyard.engine.spec import resolve_user
    from dockyard.errors import InvalidArgument

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:zero\nok:x:5:6::/home/ok:/bin/sh\n")
    assert (resolve_user(str(tmp_path), "").uid, resolve_user(str(tmp_path), "0").gid) == (0, 0)
    assert resolve_user(str(tmp_path), "ok").home == "/home/ok"
    with pytest.raises(InvalidArgument, match="malformed"):
        resolve_user(str(tmp_path), "root")
    # a link out of the rootfs is resolved inside it
    (tmp_path / "etc" / "passwd").unlink()
    (tmp_path / "etc" / "passwd").symlink_to("/../../../../etc/shadow-that-does-not-exist")
    assert resolve_user(str(tmp_path), "").uid == 0


def test_update_changes_limits_live_and_for_later(dy):
    """``update``: the cgroup of the running container changes at once, inspect shows the new
    values, and they hold for the next start; bad values and unknown containers fail per docker."""
    dy("run", "-d", "--name", "upd", "-m", "64m", "bb", "sleep", "60")
    assert text(dy("update", "-m", "128m", "--memory-swap", "256m", "--cpus", "0.5", "--pids-limit", "50",
                   "--restart", "on-failure:3", "upd")) == "upd\n"
    info = json.loads(text(dy("inspect", "upd")))[0]
    host = info["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (128 << 20, 256 << 20,
                                                                                         500_000_000, 50)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    cgroup = {}
    with open(f"/proc/{info['State']['Pid']}/cgroup") as f:
        for line in f:
            _, controllers, path = line.strip().split(":", 2)
            for c in controllers.split(","):
                cgroup[c] = path
    if "memory" in cgroup:  # cgroup v1 (this machine); v2 is covered by the runtime's fake-tree tests
        def read(controller: str, name: str) -> str:
            return Path(f"/sys/fs/cgroup/{controller}{cgroup[controller]}/{name}").read_text().strip()

        assert read("memory", "memory.limit_in_bytes") == str(128 << 20)
        assert read("pids", "pids.max") == "50"
        assert read("cpu", "cpu.cfs_quota_us") == "50000"
    proc = dy("update", "-m", "2m", "upd", check=False)
    assert proc.returncode == 1 and proc.stderr == b"Error response from daemon: Minimum memory limit allowed is 6MB\n"
    proc = dy("update", "upd", check=False)
    assert proc.stderr == b"you must provide one or more flags when using this command\n"
    proc = dy("update", "-m", "96m", "nosuch", "upd", check=False)
    assert proc.returncode == 1 and proc.stdout == b"upd\n"
    assert proc.stderr == b"Error response from daemon: No such container: nosuch\n"
    dy("stop", "-t", "1", "upd")
    dy("start", "upd")
    pid = json.loads(text(dy("inspect", "upd")))[0]["State"]["Pid"]
    if "memory" in cgroup:
        assert read("memory", "memory.limit_in_bytes") == str(96 << 20)  # kept for the next start
        assert Path(f"/proc/{pid}").exists()
    dy("rm", "-f", "upd")


def test_device_and_sysctl_flags(dy):
    """``run --device HOST[:CONTAINER][:PERMS]`` and ``--sysctl KEY=VALUE`` (the docker CLI's
    readings); a bad value is the CLI's own one-line error, exit 125, and makes nothing."""
    out = text(dy("run", "--rm", "--device", "/dev/null:/dev/mynull:rw", "--sysctl", "net.ipv4.ip_forward=1",
                  "bb", "sh", "-c", "stat -c '%t,%T %F' /dev/mynull; echo hi > /dev/mynull && echo wrote; "
                                    "cat /proc/sys/net/ipv4/ip_forward"))
    assert out == "1,3 character special file\nwrote\n1\n"
    before = text(dy("ps", "-aq"))
    for args, message in ((("--device", "a:b:c:d"), 'invalid argument "a:b:c:d" for "--device" flag: '
                                                    "invalid device specification: a:b:c:d"),
                          (("--device", "/dev/null:/x:rwx"), 'invalid argument "/dev/null:/x:rwx" for "--device" '
                                                             "flag: bad mode specified: rwx"),
                          (("--sysctl", "foo"), "invalid argument \"foo\" for \"--sysctl\" flag: sysctl 'foo' is "
                                                "not allowed"),
                          (("--cpus", "abc"), 'invalid argument "abc" for "--cpus" flag: failed to parse abc as a '
                                              "rational number"),
                          (("--mount", "foo"), 'invalid argument "foo" for "--mount" flag: invalid field \'foo\' '
                                               "must be a key=value pair")):
        proc = dy("run", "--rm", *args, "bb", "true", check=False)
        assert proc.returncode == 125 and proc.stderr.decode() == message + "\n", proc
    assert text(dy("ps", "-aq")) == before


def test_stop_kill_rm_of_many_at_once_report_in_the_order_given(dy):
    """As the docker CLI's parallelOperation: several requests at once, each container's name
    printed in the order given, the errors after them, exit 1 when any failed."""
    names = [f"many{i}" for i in range(6)]
    for name in names:
        dy("run", "-d", "--network", "none", "--name", name, "bb", "sleep", "60")
    try:
        proc = dy("kill", *names[:3], "nosuch", *names[3:], check=False)
        assert proc.returncode == 1
        assert text(proc) == "".join(n + "\n" for n in names)
        assert proc.stderr.decode() == "Error response from daemon: No such container: nosuch\n"
        states = dy("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.decode().split("\n")
        assert sorted(s for s in states if s) == sorted(f"{n} exited" for n in names)
        proc = dy("rm", "-f", "nosuch", *names, check=False)
        assert proc.returncode == 1 and text(proc) == "".join(n + "\n" for n in names)
        assert dy("ps", "-aq").stdout == b""
    finally:
        dy("rm", "-f", *names, check=False)


def _sleepers(*marks: str) -> list[int]:
    """Host PIDs of the `sleep MARK` processes running now."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if len(args) >= 2 and args[0].endswith(b"sleep") and args[1].decode(errors="replace") in marks:
                found.append(int(entry))
    return found


def test_rm_f_and_stop_kill_every_process_of_the_container(dy):
    """`rm -f` and a `stop` past its grace period kill all of a container's processes, not only
    its first: in a PID namespace of its own (the kernel takes the rest with its init) and with
    `--pid host` (the runtime kills the cgroup's), background children and `exec`s alike."""
    marks = {"own": ("31411", "31412", "31413"), "host": ("31421", "31422", "31423")}
    for kind, pid_args in (("own", []), ("host", ["--pid", "host"])):
        a, b, e = marks[kind]
        for verb in ("rm", "stop"):
            name = f"killall-{kind}-{verb}"
            dy("run", "-d", "--network", "none", "--name", name, *pid_args, "bb", "sh", "-c",
               f"trap '' TERM; sleep {a} & sleep {b} & wait")
            dy("exec", "-d", name, "sleep", e)
            deadline = time.monotonic() + 10
            while len(_sleepers(a, b, e)) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)  # (the exec's process starts after its request returns)
            assert len(_sleepers(a, b, e)) == 3, (kind, verb)
            if verb == "rm":
                dy("rm", "-f", name)
            else:
                dy("stop", "-t", "0", name)
                assert dy("inspect", "-f", "{{.State.Running}}", name).stdout == b"false\n"
                dy("rm", name)
            assert _sleepers(a, b, e) == [], (kind, verb)


def test_a_container_row_has_a_revision_that_every_change_moves(tmp_path, rootfs_tar):
    """The container list re-reads only rows whose revision moved: every update moves it, and a
    store made before revisions existed gains them when it is opened."""
    import sqlite3

    from dockyard.engine import Engine
    from dockyard.engine.containers import CreateOptions

    root = tmp_path / "root"
    with Engine(root) as e:
        e.import_image(str(rootfs_tar), "bb")
        cid = e.containers.create(CreateOptions(image="bb", cmd=["true"], name="rev"))
        [(first, rev0)] = e.containers.revisions()
        assert first == cid
        e.containers.rename(cid, "rev2")
        [(_, rev1)] = e.containers.revisions()
        assert rev1 != rev0
    # a version-1 store: no revisions table, no triggers
    db = sqlite3.connect(root / "state.db")
    db.executescript("DROP TRIGGER containers_rev_insert; DROP TRIGGER containers_rev_update; "
                     "DROP TABLE container_revs; PRAGMA user_version=1;")
    db.close()
    with Engine(root) as e:
        assert e.containers.revisions() == [(cid, 0)]
        e.containers.rename(cid, "rev3")
        assert e.containers.revisions() == [(cid, 1)]
        e.containers.remove(cid)
        assert e.containers.revisions() == []
        assert e.store.db.execute("SELECT count(*) FROM container_revs").fetchone()[0] == 0


def test_root_is_mounted_in_the_containers_namespace_only(dy, tmp_path):
    """The overlay is the runtime's, inside the container: the host's mount table gains nothing
    per running container, yet exec, cp and export see the container's files, and --user is
    resolved against them (here an /etc/passwd that only the container's own upper dir holds)."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nbob:x:1234:1234::/home/bob:/bin/sh\n")
    dy("create", "--name", "own", "-u", "bob", "bb", "sh", "-c", "id -u > /tmp/who; sleep 60")
    dy("cp", str(passwd), "own:/etc/passwd")  # a stopped container: into its upper dir
    assert mounts_under(dy.root) == []
    dy("start", "own")
    try:
        assert mounts_under(dy.root) == []
        # (the file is written as the container starts: wait for it in there)
        assert text(dy("exec", "own", "sh", "-c", "until [ -s /tmp/who ]; do sleep 0.05; done; cat /tmp/who")) == "1234\n"
        assert text(dy("exec", "own", "sh", "-c", "grep -c bob /etc/passwd")) == "1\n"
        dy("cp", "own:/tmp/who", str(tmp_path / "who"))
        assert (tmp_path / "who").read_text() == "1234\n"
    finally:
        dy("rm", "-f", "own")
    assert mounts_under(dy.root) == []


def test_exec_exit_code_after_a_cut_stream_comes_with_the_exit_event(dy):
    """The CLI's exec reads the exit code once its stream ends; a stream cut short while the
    process still runs waits for the exec_die event, not a polling loop."""
    from dockyard.cli.containers import _exec_exit_code
    from dockyard.client.transport import Transport

    dy("run", "-d", "--name", "ex", "bb", "sleep", "60")
    api = Transport(f"unix://{dy.run_dir / 'dockyard.sock'}")
    try:
        eid = api.json("POST", "/containers/ex/exec", None, {"Cmd": ["sh", "-c", "sleep 0.5; exit 7"]})["Id"]
        api.json("POST", f"/exec/{eid}/start", None, {"Detach": True})  # (as if its stream had been cut)
        assert api.json("GET", f"/exec/{eid}/json")["Running"]
        t = time.monotonic()
        assert _exec_exit_code(api, eid) == 7
        assert time.monotonic() - t < 5
    finally:
        api.close()
        dy("rm", "-f", "ex")
