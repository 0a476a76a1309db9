"""A build whose base image is only in a registry pulls it first, as docker's builder does."""

from __future__ import annotations

import pytest

from support import Served, needs_root

pytestmark = needs_root


@pytest.fixture
def registry(tmp_path):
    served = Served(tmp_path / "registry")
    yield served
    served.stop()


def test_from_and_copy_from_pull_a_missing_base(engine, rootfs_tar, registry, tmp_path, monkeypatch):
    from dockyard.build.builder import BuildOptions, Builder
    from dockyard.registry.push import push

    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "config.json"))
    name = f"{registry.addr}/team/base:1"
    image_id = engine.import_image(str(rootfs_tar), name)
    push(engine, name)
    engine.images.remove(name)  # now only the registry has it
    lines: list[str] = []
    dockerfile = f"FROM {name}\nRUN echo built > /built\nCOPY --from={name} /etc/passwd /copied\n"
    built = Builder(engine, BuildOptions(context=None, dockerfile=dockerfile, tags=["child:1"]),
                    out=lines.append).build()
    assert engine.images.resolve(name) == image_id
    assert any("pulling" in line for line in lines)
    layers = engine.images.inspect("child:1")["RootFS"]["Layers"]
    assert engine.images.inspect(built)["Id"] == built and len(layers) == 3
    missing = f"{registry.addr}/team/nothing:1"
    from dockyard.errors import DockyardError

    with pytest.raises(DockyardError, match="pull access denied"):
        Builder(engine, BuildOptions(context=None, dockerfile=f"FROM {missing}\n"), out=lines.append).build()
