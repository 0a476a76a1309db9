"""The ``hello-world`` image, made by dockyard itself: no download, no binary from elsewhere.

Its one file, ``/hello``, is a static ELF executable written here byte by byte: a ``write(1, msg,
len)`` and an ``exit(0)`` system call followed by the message.  The layer is a tar made with the
standard library, so the image is the same bytes (and the same image ID) on every machine of an
architecture.
"""

from __future__ import annotations

import io
import os
import struct
import tarfile

MESSAGE = b"""
Hello from dockyard!
This message shows that your installation appears to be working correctly.

To generate this message, dockyard took the following steps:
 1. The dockyard client looked up the "hello-world" image in the local store.
    (dockyard makes that image itself: no download needed.)
 2. dockyard created a new container from that image which runs the
    executable that produces the output you are currently reading.
 3. dockyard streamed that output to the dockyard client, which sent it
    to your terminal.

To try something more ambitious, you can import a root filesystem and run a shell:
 $ tar -C rootfs -c . | dockyard import - myimage
 $ dockyard run -it myimage sh

"""

CREATED = "2024-01-01T00:00:00Z"
BASE = 0x400000


def _x86_64(msg: bytes) -> bytes:
    # mov eax,1; mov edi,1; lea rsi,[rip+msg]; mov edx,len; syscall; mov eax,60; xor edi,edi; syscall
    code = b"\xb8\x01\x00\x00\x00" + b"\xbf\x01\x00\x00\x00"
    lea_len = 7
    rest = b"\xba" + struct.pack("<I", len(msg)) + b"\x0f\x05" + b"\xb8\x3c\x00\x00\x00" + b"\x31\xff" + b"\x0f\x05"
    rel = len(rest)  # msg starts right after the code, relative to the end of the lea
    code += b"\x48\x8d\x35" + struct.pack("<i", rel) + rest
    assert len(code) == 10 + lea_len + len(rest)
    return code


MACHINES = {"x86_64": (62, _x86_64)}


def elf(msg: bytes = MESSAGE, machine: str | None = None) -> bytes:
    """A minimal static ELF64 executable printing ``msg`` to stdout and exiting 0."""
    machine = machine or os.uname().machine
    if machine not in MACHINES:
        from ..errors import DockyardError

        raise DockyardError(f"the built-in hello-world image is not available for {machine}")
    e_machine, make = MACHINES[machine]
    header_size, phdr_size = 64, 56
    code = make(msg)
    body = code + msg
    entry = BASE + header_size + phdr_size
    total = header_size + phdr_size + len(body)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, e_machine, 1, entry, header_size, 0, 0,
                               header_size, phdr_size, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, total, total, 0x1000)
    return ehdr + phdr + body


def layer_tar() -> bytes:
    """The image's one layer: ``/hello``, mode 0755, owned by root, fixed mtime."""
    data = elf()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("hello")
        info.size, info.mode, info.mtime = len(data), 0o755, 1704067200
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ensure(engine) -> str:
    """Register ``hello-world:latest`` in the store if it is not there; return its image ID."""
    import hashlib

    from ..errors import ImageNotFound
    from .images import LayerSource, NewImage
    from .store import dumps

    try:
        return engine.images.resolve("hello-world")
    except ImageNotFound:
        pass
    layer = layer_tar()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    from .images import _go_arch

    config = {
        "architecture": _go_arch(),
        "config": {"Cmd": ["/hello"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "created": CREATED,
        "history": [{"created": CREATED, "created_by": "dockyard: COPY hello / (built in)"},
                    {"created": CREATED, "created_by": 'dockyard: CMD ["/hello"]', "empty_layer": True}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with engine.store.staging() as stage:
        path = stage / "hello.tar"
        path.write_bytes(layer)
        records = engine.images.extract_layers(stage, [LayerSource(str(path), expected_diff_id=diff_id, own=True)])
        image_id, _ = engine.images.register(
            NewImage(dumps(config).encode(), ["docker.io/library/hello-world:latest"]), records)
    return image_id
