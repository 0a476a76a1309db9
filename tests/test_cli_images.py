"""The ``dockyard`` image commands, run as a user runs them, and compared with the docker CLI."""

from __future__ import annotations

import json
import subprocess

from support import needs_root, tar_dir

pytestmark = needs_root


def out(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.decode()


def test_import_images_inspect_tag_rmi(cli, rootfs_tar):
    image_id = out(cli("import", "-c", "CMD [\"/bin/sh\"]", "-c", "LABEL team=yard", "-m", "first",
                       str(rootfs_tar), "yard/bb:1")).strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    lines = out(cli("images")).splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["yard/bb", "1", image_id[7:19]]
    assert out(cli("images", "-q")) == image_id[7:19] + "\n"
    assert out(cli("images", "-q", "--no-trunc")) == image_id + "\n"
    assert out(cli("images", "--format", "{{.Repository}}:{{.Tag}}")) == "yard/bb:1\n"
    info = json.loads(out(cli("image", "inspect", "yard/bb:1")))
    assert info[0]["Id"] == image_id and info[0]["Comment"] == "first"
    assert out(cli("inspect", "-f", '{{index .Config.Labels "team"}} {{json .Config.Cmd}}', "yard/bb:1")) == \
        'yard ["/bin/sh"]\n'
    cli("tag", "yard/bb:1", "localhost:5000/bb")
    # Docker's own row order for one image's tags is random (a Go map); compare as a set.
    assert sorted(out(cli("images", "--format", "{{.Repository}}:{{.Tag}}")).splitlines()) == \
        ["localhost:5000/bb:latest", "yard/bb:1"]
    assert out(cli("images", "--filter", "reference=yard/*", "--format", "{{.Repository}}")) == "yard/bb\n"
    assert out(cli("images", "--filter", "label=team=yard", "-q")).count("\n") == 2
    assert out(cli("rmi", "localhost:5000/bb")) == "Untagged: localhost:5000/bb:latest\n"
    removed = out(cli("rmi", "yard/bb:1")).splitlines()
    assert removed[:2] == ["Untagged: yard/bb:1", f"Deleted: {image_id}"]
    assert out(cli("images", "-q")) == ""


def test_errors_are_one_line_with_docker_exit_codes(cli, tmp_path):
    proc = cli("rmi", "nosuch", check=False)
    assert proc.returncode == 1
    assert proc.stderr.decode() == "Error response from daemon: No such image: nosuch:latest\n"
    proc = cli("image", "inspect", "nosuch", check=False)
    assert proc.returncode == 1 and proc.stdout.decode() == "[]\n"
    assert proc.stderr.decode().strip() == "Error response from daemon: No such image: nosuch:latest"
    proc = cli("import", str(tmp_path / "missing.tar"), check=False)
    assert proc.returncode == 1 and len(proc.stderr.decode().splitlines()) == 1
    assert "missing.tar" in proc.stderr.decode()
    proc = cli("tag", "nosuch", "BAD", check=False)
    assert proc.returncode == 1 and len(proc.stderr.decode().splitlines()) == 1
    proc = cli("images", "--filter", "bogus=1", check=False)
    assert proc.stderr.decode() == "Error response from daemon: Invalid filter 'bogus'\n"
    proc = cli("images", "--format", "{{.Nope", check=False)
    assert proc.returncode == 1
    assert proc.stderr.decode() == "template parsing error: template: :1: unclosed action\n"
    proc = cli("tag", "x", "BAD", check=False)
    assert proc.stderr.decode() == ('Error parsing reference: "BAD" is not a valid repository/tag: invalid reference '
                                    'format: repository name (library/BAD) must be lowercase\n')
    assert "Traceback" not in proc.stderr.decode()


def test_load_save_stdin_stdout(cli, rootfs_tar, tmp_path):
    cli("import", str(rootfs_tar), "pipe:1")
    saved = cli("save", "pipe:1").stdout
    assert saved[257:262] == b"ustar"
    cli("rmi", "pipe:1")
    assert out(cli("load", input=saved)) == "Loaded image: pipe:1\n"
    assert out(cli("load", "-q", input=saved)) == ""
    cli("save", "-o", str(tmp_path / "o.tar"), "--format", "oci-archive", "pipe:1")
    cli("rmi", "pipe:1")
    assert out(cli("load", "-i", str(tmp_path / "o.tar"))) == "Loaded image: pipe:1\n"


def test_history_and_prune_and_df(cli, rootfs, tmp_path):
    cli("import", "-m", "msg", str(tar_dir(rootfs, tmp_path / "a.tar")))
    lines = out(cli("history", out(cli("images", "-q")).strip())).splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[1].endswith("msg")
    df = out(cli("system", "df")).splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "1", "0"]
    pruned = out(cli("image", "prune", "-f"))
    assert pruned.startswith("Deleted Images:\ndeleted: sha256:")
    assert "Total reclaimed space:" in pruned
    assert out(cli("images", "-aq")) == ""


# -- side by side with the docker CLI on the same image --------------------------------------------


def test_listing_matches_docker(dockerd, docker_busybox, cli, tmp_path):
    archive = tmp_path / "bb.tar"
    dockerd.docker("tag", docker_busybox, "dysame:v1")
    try:
        dockerd.docker("save", "-o", str(archive), "dysame:v1")
        cli("load", "-i", str(archive))
        for args in (
            ["images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}", "dysame"],
            ["images", "--digests", "--format", "{{.Repository}} {{.Digest}} {{.ID}}", "dysame"],
            ["images", "-q", "dysame"],
            ["image", "inspect", "-f", "{{.Id}} {{json .RootFS}} {{.Size}} {{.Os}}/{{.Architecture}}", "dysame:v1"],
            ["image", "inspect", "-f", "{{json .Config}}", "dysame:v1"],
            ["history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "dysame:v1"],
        ):
            theirs = dockerd.docker(*args).stdout.decode()
            assert out(cli(*args)) == theirs, args
    finally:
        dockerd.docker("rmi", "dysame:v1", check=False)
