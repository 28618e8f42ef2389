"""The image commands as a user runs them: output formats, exit codes, save/load in strata."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from store_util import make_rootfs_tar

Strata = Callable[..., subprocess.CompletedProcess[str]]


def _import(strata: Strata, tmp: Path, name: str, files: dict[str, bytes],
            *changes: str) -> str:
    tar = make_rootfs_tar(tmp / f"{name.replace(':', '_').replace('/', '_')}.tar", files)
    args = [a for c in changes for a in ("--change", c)]
    return strata("import", *args, str(tar), name).stdout.strip()


def test_images_lists_repository_tag_id_created_size(strata: Strata, tmp_path: Path) -> None:
    image_id = _import(strata, tmp_path, "app:1", {"a": b"x" * 3000})
    strata("tag", "app:1", "example.com/team/app:2")
    lines = strata("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = sorted(line.split()[:3] for line in lines[1:])
    assert rows == [["app", "1", image_id[7:19]], ["example.com/team/app", "2", image_id[7:19]]]
    entries = json.loads(strata("images", "--format", "json").stdout)
    assert {(e["Repository"], e["Tag"], e["ID"]) for e in entries} == {
        ("app", "1", image_id), ("example.com/team/app", "2", image_id)}
    assert strata("images", "-q").stdout.split() == [image_id[7:19]]


def test_inspect_prints_docker_style_json_and_id(strata: Strata, tmp_path: Path) -> None:
    image_id = _import(strata, tmp_path, "app:1", {"a": b"1"}, 'CMD ["sh"]', "ENV A=b",
                       "WORKDIR /srv", "EXPOSE 8080", "LABEL k=v")
    assert strata("inspect", "--id", "app:1").stdout.strip() == image_id
    [obj] = json.loads(strata("inspect", "app:1").stdout)
    assert obj["Id"] == image_id and obj["RepoTags"] == ["app:1"]
    assert obj["RepoDigests"][0].startswith("app@sha256:")
    assert obj["Config"] == {"Cmd": ["sh"], "Env": ["A=b"], "WorkingDir": "/srv",
                             "ExposedPorts": {"8080/tcp": {}}, "Labels": {"k": "v"}}
    assert obj["RootFS"]["Type"] == "layers" and len(obj["RootFS"]["Layers"]) == 1
    assert obj["Os"] == "linux" and obj["Size"] > 0
    assert strata("inspect", "-f", "{{.Config.WorkingDir}}", "app:1").stdout == "/srv\n"


def test_missing_image_exits_with_not_found(strata: Strata) -> None:
    proc = strata("inspect", "nope:1", check=False)
    assert proc.returncode == 3 and "no such image" in proc.stderr


def test_history_lists_newest_first(strata: Strata, tmp_path: Path) -> None:
    image_id = _import(strata, tmp_path, "app:1", {"a": b"1"})
    lines = strata("history", "app:1").stdout.splitlines()
    assert lines[0].split()[:2] == ["IMAGE", "CREATED"]
    assert lines[1].startswith(image_id[7:19]) and "strata import" in lines[1]
    [row] = json.loads(strata("history", "--format", "json", "app:1").stdout)
    assert row["ID"] == image_id and row["Size"] > 0


def test_rmi_and_prune_print_what_they_removed(strata: Strata, tmp_path: Path) -> None:
    image_id = _import(strata, tmp_path, "app:1", {"a": b"1"})
    strata("tag", "app:1", "app:2")
    assert strata("rmi", "app:1").stdout.strip() == "Untagged: app:1"
    out = strata("rmi", "app:2").stdout.splitlines()
    assert out == ["Untagged: app:2", f"Deleted: {image_id}"]
    _import(strata, tmp_path, "old:1", {"a": b"old"})
    _import(strata, tmp_path, "old:1", {"a": b"new"})
    out = strata("prune").stdout
    assert "Deleted image:" in out and "Total reclaimed space" in out
    assert strata("system", "check").returncode == 0


def test_save_and_load_between_two_stores_keep_digests(strata: Strata, root: Path,
                                                        tmp_path: Path) -> None:
    _import(strata, tmp_path, "app:1", {"a": b"1"})
    manifest = json.loads(strata("inspect", "app:1").stdout)[0]["Descriptor"]["digest"]
    for fmt in ("docker", "oci"):
        archive = tmp_path / f"{fmt}.tar"
        strata("save", "--format", fmt, "-o", str(archive), "app:1")
        other = tmp_path / f"other-{fmt}"
        proc = subprocess.run(
            [*_cli(other), "load", "-i", str(archive)], capture_output=True, text=True,
            check=True)
        assert proc.stdout.strip() == "Loaded image: app:1"
        obj = json.loads(subprocess.run([*_cli(other), "inspect", "app:1"], capture_output=True,
                                        text=True, check=True).stdout)[0]
        assert obj["Descriptor"]["digest"] == manifest


def test_load_reads_a_gzip_compressed_archive_from_stdin(strata: Strata, root: Path,
                                                         tmp_path: Path) -> None:
    _import(strata, tmp_path, "app:1", {"a": b"1"})
    archive = tmp_path / "a.tar"
    strata("save", "-o", str(archive), "app:1")
    strata("rmi", "app:1")
    data = gzip.compress(archive.read_bytes())
    proc = subprocess.run([*_cli(root), "load"], input=data, capture_output=True, check=True)
    assert proc.stdout.decode().strip() == "Loaded image: app:1"


def test_system_df_reports_bytes_saved_by_sharing(strata: Strata, tmp_path: Path) -> None:
    shared = os.urandom(1 << 20)
    _import(strata, tmp_path, "one:1", {"one/shared.bin": shared, "x": b"1"})
    _import(strata, tmp_path, "two:1", {"two/copy.bin": shared, "y": b"2"})
    strata("unpack", "one:1", "two:1")
    usage = json.loads(strata("system", "df", "--format", "json").stdout)
    layers = usage["Layers"]
    assert layers["Count"] == 2
    assert layers["LogicalBytes"] >= 2 << 20
    assert (1 << 20) <= layers["BytesSaved"] < (1 << 20) + 4096
    assert "saved by sharing" in strata("system", "df").stdout


def test_system_check_fails_on_a_corrupted_blob(strata: Strata, root: Path,
                                                tmp_path: Path) -> None:
    _import(strata, tmp_path, "app:1", {"a": b"1" * 100})
    assert strata("system", "check").returncode == 0
    blobs = sorted((root / "oci/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    victim = blobs[-1]
    os.chmod(victim, 0o644)
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    proc = strata("system", "check", check=False)
    assert proc.returncode == 1 and "problem: blob" in proc.stdout


def test_import_from_stdin_with_source_date_epoch_is_reproducible(
        strata: Strata, root: Path, tmp_path: Path) -> None:
    tar = make_rootfs_tar(tmp_path / "r.tar", {"etc/os-release": b"ID=test\n"})
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    ids = []
    for i in range(2):
        proc = subprocess.run([*_cli(tmp_path / f"s{i}"), "import", "-", "r:1"],
                              input=tar.read_bytes(), capture_output=True, check=True,
                              env={**os.environ, **env})
        ids.append(proc.stdout.strip())
        digest = subprocess.run([*_cli(tmp_path / f"s{i}"), "inspect", "-f",
                                 "{{.Descriptor.digest}} {{.Created}}", "r:1"],
                                capture_output=True, text=True, check=True).stdout
        ids.append(digest.encode())
    assert ids[0] == ids[2] and ids[1] == ids[3]
    assert ids[1].decode().split()[1] == "2023-11-14T22:13:20Z"


def _cli(root: Path) -> list[str]:
    return [sys.executable, "-m", "builder.cli", "--root", str(root)]
