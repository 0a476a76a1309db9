"""docker-py 6.1.3's own integration suite against dockyard's daemon (issue 23).

tools/dockerpy/run.py --check fetches the suite (docker-py's sdist on PyPI, cached outside the
repository with its own virtualenv), starts a private dockyard daemon, makes the suite's images
from a busybox rootfs and runs it at API 1.41; every test on tools/dockerpy/expected.txt (the
tests that pass against a private dockerd here, recorded by run.py --record) must pass.  Skipped,
with the reason, when the sdist or its packages cannot be fetched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import is_root, need

RUNNER = Path(__file__).resolve().parent.parent / "tools" / "dockerpy" / "run.py"


@pytest.mark.skipif(not is_root(), reason="the daemon runs containers: needs root")
def test_dockerpy_integration_suite(tmp_path):
    need("busybox")
    results = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(RUNNER), "--check", "--results", str(results)],
                          capture_output=True, text=True, timeout=3600)
    out = proc.stdout + proc.stderr
    if proc.returncode == 3:
        pytest.skip("docker-py's sdist or its packages could not be fetched: " + out.strip().splitlines()[-1])
    summary = [line for line in out.splitlines() if line.startswith(("docker-py ", "FAILED (listed)"))
               or "listed tests pass" in line]
    print("\n".join(summary))
    assert proc.returncode == 0, "\n".join(summary) or out[-4000:]
    outcomes = json.loads(results.read_text())
    listed = [line.strip() for line in (RUNNER.parent / "expected.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert listed and all(outcomes.get(t, ["missing"])[0] == "passed" for t in listed)
