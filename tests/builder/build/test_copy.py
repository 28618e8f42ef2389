"""COPY / ADD semantics: destinations, --chown/--chmod, --parents, --exclude, --link, ADD
archives and URLs."""

from __future__ import annotations

import gzip
import http.server
import io
import lzma
import os
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from build_util import Strata

Ctx = Callable[..., Path]


def build_tree(strata: Strata, ctx: Path, tmp_path: Path, name: str = "t") -> Path:
    res = strata.build(ctx, "-t", f"{name}:1")
    assert res.rc == 0, res.err
    return strata.files(f"{name}:1", tmp_path / name)


def test_destination_rules(strata: Strata, context: Ctx, tmp_path: Path) -> None:
    ctx = context("FROM busybox\nWORKDIR /work\nCOPY a.txt rel.txt\nCOPY a.txt dir/\n"
                  "COPY a.txt b.txt multi/\nCOPY a.txt .\nCOPY a.txt /tmp\nCOPY src /copied\n"
                  "COPY *.txt /glob/\n",
                  {"a.txt": "A", "b.txt": "B", "src/x/y": "Y"})
    tree = build_tree(strata, ctx, tmp_path)
    assert (tree / "work/rel.txt").read_text() == "A"
    assert (tree / "work/dir/a.txt").read_text() == "A"
    assert {p.name for p in (tree / "work/multi").iterdir()} == {"a.txt", "b.txt"}
    assert (tree / "work/a.txt").read_text() == "A"
    assert (tree / "tmp/a.txt").read_text() == "A"  # existing directory
    assert (tree / "copied/x/y").read_text() == "Y"  # directory contents, not the dir
    assert sorted(p.name for p in (tree / "glob").iterdir()) == ["a.txt", "b.txt"]
    assert oct((tree / "tmp").stat().st_mode & 0o7777) == "0o1777"


def test_chown_names_resolve_in_the_image_and_chmod_overrides(strata: Strata, context: Ctx,
                                                              tmp_path: Path) -> None:
    ctx = context("FROM busybox\nCOPY --chown=app:app --chmod=0640 f /f1\n"
                  "COPY --chown=1234 f /f2\nCOPY --chown=app d /d/\n",
                  {"f": "x", "d/inner": "y"})
    tree = build_tree(strata, ctx, tmp_path)
    st = os.lstat(tree / "f1")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o640)
    st = os.lstat(tree / "f2")
    assert (st.st_uid, st.st_gid) == (1234, 1234)
    assert os.lstat(tree / "d/inner").st_uid == 1000


def test_unknown_chown_user_fails(strata: Strata, context: Ctx) -> None:
    res = strata.build(context("FROM busybox\nCOPY --chown=ghost f /f\n", {"f": "x"}))
    assert res.rc != 0 and "unable to find user ghost" in res.err


def test_parents_and_exclude(strata: Strata, context: Ctx, tmp_path: Path) -> None:
    ctx = context("FROM busybox\nCOPY --parents a/b/c.txt /p/\n"
                  "COPY --exclude=*.log logs /logs\n",
                  {"a/b/c.txt": "C", "logs/keep.txt": "k", "logs/drop.log": "d"})
    tree = build_tree(strata, ctx, tmp_path)
    assert (tree / "p/a/b/c.txt").read_text() == "C"
    assert sorted(p.name for p in (tree / "logs").iterdir()) == ["keep.txt"]


def test_dockerignore_hides_files(strata: Strata, context: Ctx, tmp_path: Path) -> None:
    ctx = context("FROM busybox\nCOPY . /ctx/\n",
                  {".dockerignore": "secret.txt\n", "secret.txt": "no", "ok.txt": "yes"})
    tree = build_tree(strata, ctx, tmp_path)
    assert (tree / "ctx/ok.txt").exists() and not (tree / "ctx/secret.txt").exists()


def test_link_layer_is_reused_when_the_base_changes(strata: Strata, context: Ctx,
                                                    tmp_path: Path) -> None:
    text = "FROM busybox\nARG B\nRUN echo $B > /b\nCOPY --link big /big\nRUN cat /big > /seen\n"
    ctx = context(text, {"big": "payload\n"})
    assert strata.build(ctx, "--build-arg", "B=1", "-t", "l:0").rc == 0
    res = strata.build(ctx, "--build-arg", "B=2", "-t", "l:1")
    assert res.rc == 0
    tree = strata.files("l:1", tmp_path / "t")
    assert (tree / "seen").read_text() == "payload\n"
    assert (tree / "b").read_text() == "2\n"
    # the --link layer is the very same blob on both bases
    layers = [strata.inspect(t)["RootFS"]["Layers"] for t in ("l:0", "l:1")]
    assert layers[0][2] == layers[1][2] and layers[0][1] != layers[1][1]


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("compress", ["plain", "gzip", "bzip2", "xz", "zstd"])
def test_add_extracts_local_archives(strata: Strata, context: Ctx, tmp_path: Path,
                                     compress: str) -> None:
    import bz2

    import zstandard

    raw = _tar_bytes({"pkg/file.txt": b"inside\n"})
    data = {"plain": lambda b: b, "gzip": gzip.compress, "bzip2": bz2.compress,
            "xz": lzma.compress,
            "zstd": lambda b: zstandard.ZstdCompressor().compress(b)}[compress](raw)
    ctx = context("FROM busybox\nADD archive /opt/\nCOPY archive /raw/archive\n",
                  {"archive": data})
    tree = build_tree(strata, ctx, tmp_path)
    assert (tree / "opt/pkg/file.txt").read_text() == "inside\n"
    assert (tree / "raw/archive").read_bytes() == data  # COPY never extracts


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "file.txt").write_text("downloaded\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_add_fetches_urls_and_checks_the_checksum(strata: Strata, context: Ctx, tmp_path: Path,
                                                  http_server: str) -> None:
    import hashlib

    digest = "sha256:" + hashlib.sha256(b"downloaded\n").hexdigest()
    ctx = context(f"FROM busybox\nADD --checksum={digest} {http_server}/file.txt /dl/\n")
    tree = build_tree(strata, ctx, tmp_path)
    assert (tree / "dl/file.txt").read_text() == "downloaded\n"
    assert (tree / "dl/file.txt").stat().st_mode & 0o777 == 0o600
    bad = context(f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {http_server}/file.txt /x\n")
    res = strata.build(bad)
    assert res.rc != 0 and "digest mismatch" in res.err


def test_add_copies_a_file_that_only_looks_compressed(strata: Strata, context: Ctx,
                                                      tmp_path: Path) -> None:
    fake = b"\x1f\x8b\x08\x00" + bytes(20)
    ctx = context("FROM busybox\nADD notatar.gz /raw/\n", {"notatar.gz": fake})
    tree = build_tree(strata, ctx, tmp_path)
    assert (tree / "raw/notatar.gz").read_bytes() == fake


def test_copy_through_a_symlink_to_a_file_fails_and_keeps_the_file(
        strata: Strata, context: Ctx, tmp_path: Path) -> None:
    """docker refuses to make a directory where a file (or a link to one) stands; strata used
    to delete the link's target and put a directory there."""
    ctx = context("FROM busybox\nRUN echo keep > /target && ln -s /target /link\n"
                  "COPY a.txt /link/a.txt\n", {"a.txt": "x"})
    res = strata.build(ctx, "-t", "cl:1")
    assert res.rc != 0 and "not a directory" in res.err, res.err
    assert "Traceback" not in res.err
