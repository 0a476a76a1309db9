"""The shim's --delete-on-exit: nothing of the container is left for the engine to delete."""

from __future__ import annotations

import json
import os
import subprocess
import time

from bundle import docker_config, write_bundle


def test_delete_on_exit(runtime_bin, tmp_path, rootfs):
    bundle = write_bundle(tmp_path / "b", rootfs, docker_config(["sh", "-c", "echo bye"]))
    state_root = tmp_path / "state"
    exit_file = tmp_path / "exit.json"
    cid = f"doe-{os.getpid()}"
    proc = subprocess.run([str(runtime_bin), "--root", str(state_root), "shim", "--bundle", str(bundle), "--id", cid,
                           "--log", str(tmp_path / "log"), "--exit-file", str(exit_file), "--delete-on-exit"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    deadline = time.time() + 10
    while not exit_file.exists() and time.time() < deadline:
        time.sleep(0.02)
    assert json.loads(exit_file.read_text())["exit_code"] == 0
    # the runtime no longer knows the container: its state dir (and cgroup) went before the exit file
    assert not (state_root / cid).exists()
    state = subprocess.run([str(runtime_bin), "--root", str(state_root), "state", cid], capture_output=True)
    assert state.returncode != 0
