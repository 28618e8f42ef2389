"""COPY/ADD source selection on real context trees: .dockerignore, wildcards, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from context_treeutil import CountingHasher, Dir, Link, make_tree

from builder.context import BuildContext, ContextError, EntryKind, SourceMatch
from builder.errors import InvalidArgument, NotFound


def names(matches: list[SourceMatch]) -> list[tuple[str, str, list[str]]]:
    return [(m.name, m.entry.relpath, [e.relpath for e in m.entries]) for m in matches]


@pytest.fixture
def ctx_root(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "ctx", {
        "Dockerfile": "FROM scratch\n",
        "a.txt": "A",
        "b.txt": "B",
        "c.md": "C",
        "src/main.c": "int main;",
        "src/util.c": "int util;",
        "src/include/util.h": "h",
        "docs/keep.md": "keep",
        "docs/drop.md": "drop",
        "build/out.o": "obj",
    })


# ------------------------------------------------------------------ plain paths


def test_plain_file_and_leading_slash_name_the_same_entry(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    assert names(ctx.select(["a.txt"])) == [("a.txt", "a.txt", ["a.txt"])]
    assert names(ctx.select(["/a.txt"])) == [("a.txt", "a.txt", ["a.txt"])]
    assert names(ctx.select(["./src/../a.txt"])) == [("a.txt", "a.txt", ["a.txt"])]


def test_directory_source_selects_its_whole_subtree_sorted(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    [match] = ctx.select(["src/"])
    assert match.entry.kind is EntryKind.DIR
    assert [e.relpath for e in match.entries] == [
        "src", "src/include", "src/include/util.h", "src/main.c", "src/util.c"]


def test_dot_selects_the_whole_context(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    [match] = ctx.select(["."])
    assert match.entry.relpath == ""
    assert [e.relpath for e in match.entries][1:] == [e.relpath for e in ctx.iter_files()]


def test_missing_source_is_not_found_with_the_source_text(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    with pytest.raises(NotFound, match='"/missing.txt": not found'):
        ctx.select(["missing.txt"])
    with pytest.raises(NotFound, match='"/a.txt/x": not found'):
        ctx.select(["a.txt/x"])


@pytest.mark.parametrize("source", ["../x", "../ctx/a.txt", "src/../../x", "/../a.txt", ".."])
def test_source_climbing_out_of_the_context_is_refused(ctx_root: Path, source: str) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    with pytest.raises(ContextError, match="forbidden path outside the build context") as info:
        ctx.select([source])
    assert isinstance(info.value, InvalidArgument)


# ------------------------------------------------------------------ .dockerignore


def test_dockerignore_hides_excluded_files_and_directories(ctx_root: Path) -> None:
    (ctx_root / ".dockerignore").write_text("build\n*.md\nsrc/include\n")
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    with pytest.raises(NotFound, match='"/build/out.o": not found'):
        ctx.select(["build/out.o"])
    with pytest.raises(NotFound):
        ctx.select(["c.md"])
    [src] = ctx.select(["src"])
    assert [e.relpath for e in src.entries] == ["src", "src/main.c", "src/util.c"]
    included = [e.relpath for e in ctx.iter_files()]
    assert "build" not in included and "c.md" not in included
    assert "docs/keep.md" in included  # *.md only matches at the top level


def test_exception_reenters_an_excluded_directory(ctx_root: Path) -> None:
    (ctx_root / ".dockerignore").write_text("docs\n!docs/keep.md\n")
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    # docker: COPY docs /x/ copies keep.md only; COPY docs/drop.md is not found
    assert names(ctx.select(["docs"])) == [("docs", "docs", ["docs", "docs/keep.md"])]
    assert names(ctx.select(["do*"])) == [("docs", "docs", ["docs", "docs/keep.md"])]
    with pytest.raises(NotFound):
        ctx.select(["docs/drop.md"])


def test_per_dockerfile_ignore_file_wins_over_the_context_one(ctx_root: Path) -> None:
    (ctx_root / ".dockerignore").write_text("a.txt\n")
    (ctx_root / "app.Dockerfile").write_text("FROM scratch\n")
    (ctx_root / "app.Dockerfile.dockerignore").write_text("b.txt\n")
    ctx = BuildContext.open(ctx_root, ctx_root / "app.Dockerfile")
    assert names(ctx.select(["a.txt"]))[0][0] == "a.txt"
    with pytest.raises(NotFound):
        ctx.select(["b.txt"])
    plain = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    with pytest.raises(NotFound):
        plain.select(["a.txt"])


def test_malformed_dockerignore_is_a_context_error(ctx_root: Path) -> None:
    (ctx_root / ".dockerignore").write_text("[z-a]\n")
    with pytest.raises(ContextError, match=".dockerignore"):
        BuildContext.open(ctx_root, ctx_root / "Dockerfile")


# ------------------------------------------------------------------ wildcards


@pytest.mark.parametrize(("source", "expected"), [
    ("*.txt", ["a.txt", "b.txt"]),
    ("?.md", ["c.md"]),
    ("[ab].txt", ["a.txt", "b.txt"]),
    ("[^a].txt", ["b.txt"]),
    ("[a-b].txt", ["a.txt", "b.txt"]),
    ("src/*.c", ["src/main.c", "src/util.c"]),
    ("*/*.c", ["src/main.c", "src/util.c"]),
    ("*/include/*", ["src/include/util.h"]),
    ("s*", ["src"]),
    ("/*.md", ["c.md"]),
])
def test_wildcards_follow_go_filepath_match(
    ctx_root: Path, source: str, expected: list[str]
) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    assert [m.name for m in ctx.select([source])] == expected


def test_star_does_not_cross_directories(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    assert [m.name for m in ctx.select(["*.c"])] == []


def test_wildcard_matching_nothing_selects_nothing_unless_refused(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    assert ctx.select(["*.none"]) == []  # docker copies nothing and succeeds
    with pytest.raises(NotFound, match="wildcard"):
        ctx.select(["*.none"], allow_empty_wildcard=False)


def test_wildcards_skip_ignored_entries(ctx_root: Path) -> None:
    (ctx_root / ".dockerignore").write_text("b.txt\n")
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    assert [m.name for m in ctx.select(["*.txt"])] == ["a.txt"]


def test_bad_wildcard_pattern_is_a_context_error(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    with pytest.raises(ContextError, match="invalid wildcard"):
        ctx.select(["a["])


def test_sources_keep_their_order(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    assert [m.name for m in ctx.select(["c.md", "a.txt"])] == ["c.md", "a.txt"]


# ------------------------------------------------------------------ symlinks


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    make_tree(tmp_path / "outside", {"secret.txt": "TOP SECRET", "dir/f": "OUT"})
    return make_tree(tmp_path / "ctx", {
        "Dockerfile": "FROM scratch\n",
        "a.txt": "A",
        "dir/f": "F",
        "etc/hostname": "in-context",
        "to_a": Link("a.txt"),
        "to_dir": Link("dir"),
        "abs_etc": Link("/etc/hostname"),
        "rel_out": Link("../outside/secret.txt"),
        "abs_out": Link(str(tmp_path / "outside" / "secret.txt")),
        "abs_out_dir": Link(str(tmp_path / "outside" / "dir")),
        "dangling": Link("/nonexistent"),
        "tree/inner": Link("../outside/secret.txt"),
    })


def test_symlink_source_is_followed_and_keeps_its_own_name(linked: Path) -> None:
    ctx = BuildContext.open(linked, linked / "Dockerfile")
    # docker: COPY to_a /x/ creates /x/to_a, a regular file holding A
    assert names(ctx.select(["to_a"])) == [("to_a", "a.txt", ["a.txt"])]
    assert names(ctx.select(["to_dir"])) == [("to_dir", "dir", ["dir", "dir/f"])]
    assert names(ctx.select(["to_dir/f"])) == [("to_dir/f", "dir/f", ["dir/f"])]


def test_absolute_symlink_target_resolves_inside_the_context(linked: Path) -> None:
    ctx = BuildContext.open(linked, linked / "Dockerfile")
    [match] = ctx.select(["abs_etc"])
    assert match.entry.relpath == "etc/hostname"
    assert match.entry.path == linked / "etc" / "hostname"


@pytest.mark.parametrize("source", ["rel_out", "abs_out", "abs_out_dir/f", "dangling"])
def test_symlink_pointing_outside_is_not_found_not_read(linked: Path, source: str) -> None:
    hasher = CountingHasher()
    ctx = BuildContext.open(linked, linked / "Dockerfile", hasher=hasher)
    with pytest.raises(NotFound, match=f'"/{source}": not found'):
        ctx.checksum([source])
    assert hasher.calls == 0


def test_wildcard_over_links_errors_on_one_that_escapes(linked: Path) -> None:
    """docker: COPY link* fails when one matched link leads outside (its target is missing)."""
    ctx = BuildContext.open(linked, linked / "Dockerfile")
    with pytest.raises(NotFound):
        ctx.select(["abs_*"])
    assert [m.entry.relpath for m in ctx.select(["to_*"])] == ["a.txt", "dir"]


def test_links_inside_a_copied_directory_are_entries_never_followed(linked: Path) -> None:
    hasher = CountingHasher()
    outside = os.stat(linked.parent / "outside" / "secret.txt").st_ino
    ctx = BuildContext.open(linked, linked / "Dockerfile", hasher=hasher)
    [match] = ctx.select(["."])
    by_path = {e.relpath: e for e in match.entries}
    assert by_path["tree/inner"].kind is EntryKind.SYMLINK
    assert by_path["tree/inner"].link_target == "../outside/secret.txt"
    ctx.checksum(["."])
    assert hasher.calls == 4  # Dockerfile, a.txt, dir/f, etc/hostname: nothing outside
    assert outside not in hasher.inodes


def test_content_outside_the_context_never_changes_a_checksum(linked: Path) -> None:
    ctx = BuildContext.open(linked, linked / "Dockerfile")
    before = ctx.checksum(["."])
    (linked.parent / "outside" / "secret.txt").write_text("CHANGED SECRET")
    (linked.parent / "outside" / "dir" / "f").write_text("CHANGED")
    assert BuildContext.open(linked, linked / "Dockerfile").checksum(["."]) == before


def test_excluded_symlink_cannot_be_followed(linked: Path) -> None:
    (linked / ".dockerignore").write_text("to_dir\n")
    ctx = BuildContext.open(linked, linked / "Dockerfile")
    with pytest.raises(NotFound, match="excluded"):
        ctx.select(["to_dir/f"])


def test_symlink_to_an_excluded_file_is_not_found(linked: Path) -> None:
    (linked / ".dockerignore").write_text("a.txt\n")
    ctx = BuildContext.open(linked, linked / "Dockerfile")
    with pytest.raises(NotFound):
        ctx.select(["to_a"])


def test_directory_entries_carry_modes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"d": Dir(0o750), "d/x": "x"})
    ctx = BuildContext(root)
    [match] = ctx.select(["d"])
    assert match.entry.mode == 0o750 and match.entries[1].mode == 0o644


# ------------------------------------------------------------------ COPY --exclude


def test_exclude_prunes_inside_a_copied_directory(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    [src] = ctx.select(["src"], exclude=["*.c"])
    assert [e.relpath for e in src.entries] == ["src", "src/include", "src/include/util.h"]
    [src] = ctx.select(["src"], exclude=["include"])
    assert [e.relpath for e in src.entries] == ["src", "src/main.c", "src/util.c"]


def test_exclude_is_relative_to_the_matched_source(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    [whole] = ctx.select(["."], exclude=["src/*.c", "**/*.md"])
    rels = [e.relpath for e in whole.entries]
    assert "src/main.c" not in rels and "docs/keep.md" not in rels and "c.md" not in rels
    assert "src/include/util.h" in rels and "a.txt" in rels


def test_exclude_never_drops_a_matched_source_itself(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    assert [m.name for m in ctx.select(["*.txt"], exclude=["a.txt"])] == ["a.txt", "b.txt"]


def test_exclude_exception_keeps_the_excluded_parent_directory(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    [src] = ctx.select(["src"], exclude=["include", "*.c", "!include/util.h"])
    assert [e.relpath for e in src.entries] == ["src", "src/include", "src/include/util.h"]


def test_exclude_changes_the_checksum_only_through_what_it_drops(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    before = ctx.checksum(["src"], exclude=["*.c"])
    assert before != ctx.checksum(["src"])
    (ctx_root / "src/main.c").write_text("changed")
    assert BuildContext.open(ctx_root).checksum(["src"], exclude=["*.c"]) == before


def test_bad_exclude_pattern_is_a_context_error(ctx_root: Path) -> None:
    ctx = BuildContext.open(ctx_root, ctx_root / "Dockerfile")
    with pytest.raises(ContextError, match="--exclude"):
        ctx.select(["src"], exclude=["[z-a]"])
