"""PEP 517 backend: maturin builds the extension; this adds dockyard's native executables.

maturin packs one pyo3 library per wheel and cannot ship a Rust binary beside it
(PyO3/maturin#368).  dockyard needs real executables: the per-container supervisor and the OCI
runtime (``dockyard-runtime``) must not be a Python interpreter, for memory and for containerd.
So this thin backend lets maturin build the wheel, then builds the binaries with cargo and adds
them to the wheel as ``dockyard/bin/<name>`` (mode 0755), rewriting RECORD.  ``pip install .``
stays the one install step.  Everything else is maturin's own hook, re-exported unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import maturin
from maturin import *  # noqa: F403  (re-export every other PEP 517 hook)

ROOT = Path(__file__).resolve().parent.parent
# (cargo package, binary name): each is built in release mode and shipped in dockyard/bin/.
BINARIES = [("dockyard-runtime", "dockyard-runtime")]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _build_binaries() -> list[tuple[str, Path]]:
    built = []
    for package, binary in BINARIES:
        if not (ROOT / "rust" / package.removeprefix("dockyard-")).exists():
            continue
        subprocess.run(["cargo", "build", "--release", "-p", package, "--bin", binary],
                       cwd=ROOT, check=True)
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        built.append((binary, target / "release" / binary))
    return built


def _add_to_wheel(wheel: Path, files: list[tuple[str, Path]]) -> None:
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        record_name = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        record = src.read(record_name).decode().splitlines()
        for item in src.infolist():
            if item.filename != record_name:
                dst.writestr(item, src.read(item.filename))
        for name, path in files:
            data = path.read_bytes()
            arcname = f"dockyard/bin/{name}"
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
            record.insert(-1 if record and record[-1].startswith(record_name) else len(record),
                          f"{arcname},{_record_hash(data)},{len(data)}")
        record = [r for r in record if not r.startswith(record_name + ",")] + [f"{record_name},,"]
        dst.writestr(record_name, "\n".join(record) + "\n")
    os.replace(tmp, wheel)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001, ANN201
    name = maturin.build_wheel(wheel_directory, config_settings, metadata_directory)
    files = _build_binaries()
    if files:
        _add_to_wheel(Path(wheel_directory) / name, files)
    return name
