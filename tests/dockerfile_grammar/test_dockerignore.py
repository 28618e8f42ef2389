""".dockerignore reading, matching, pruning and lookup behave like moby/patternmatcher."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockerfile_grammar.dockerignore import (
    DockerIgnore,
    DockerIgnoreError,
    clean_path,
    compile_glob,
    find_ignore_file,
    read_ignore_lines,
    walk_context,
    walk_entries,
)

# (pattern, path, excluded) — one pattern, parent directories count.
SINGLE_PATTERN_CASES = [
    ("*", "fileutils.go", True),
    ("*.go", "fileutils.go", True),
    ("*.go", "sub/fileutils.go", False),
    ("**", "file", True),
    ("**/", "file", True),
    ("**", "dir/file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir", False),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir", "a/b/dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**file", "dir/afile", True),
    ("**/file", "dir/dir/file", True),
    ("**/file", "dir/dir/afile", False),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a**b", "ab", True),
    ("a**b", "a/x/b", True),
    ("a**b", "axb", False),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    ("a[^b-d]e", "ace", False),
    ("a[!b]e", "a!e", True),  # Go has no "!" negation: "!" is a class member
    ("a[!b]e", "abe", True),
    ("a[!b]e", "aze", False),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a\\\\", "a\\", True),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("docs", "docs/README.md", True),
    ("docs/", "docs/README.md", True),
    ("/docs", "docs/a/b", True),
    ("./docs/../docs", "docs/a", True),
    ("docs", "xdocs", False),
    ("doc", "docs", False),
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp/x", True),
    ("*/temp*", "temp", False),
    ("*/*/temp*", "a/b/temporary.txt", True),
    ("temp?", "tempa", True),
    ("temp?", "temp", False),
]


@pytest.mark.parametrize(("pattern", "path", "excluded"), SINGLE_PATTERN_CASES)
def test_single_pattern_matching(pattern: str, path: str, excluded: bool) -> None:
    assert DockerIgnore.parse(pattern).matches(path) is excluded


# (patterns, path, excluded)
MULTI_PATTERN_CASES = [
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/other.md", True),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3-py3-none-any.whl", False),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    (["*", "!keep"], "keep", False),
    (["*", "!keep"], "keep/inside", False),
    (["*", "!keep"], "other", True),
    (["a", "!a/b", "a/b/c"], "a/b/c/d", True),
    (["a", "!a/b", "a/b/c"], "a/b/x", False),
    ([], "anything", False),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), MULTI_PATTERN_CASES)
def test_last_matching_pattern_wins(patterns: list[str], path: str, excluded: bool) -> None:
    assert DockerIgnore.from_patterns(patterns).matches(path) is excluded


@pytest.mark.parametrize("path", [".", "", "/", "./"])
def test_context_root_is_never_excluded(path: str) -> None:
    assert not DockerIgnore.parse("*\n**\n.").matches(path)


@pytest.mark.parametrize(
    "pattern",
    ["[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[z-a]", "!", " ! "],
)
def test_malformed_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(DockerIgnoreError):
        DockerIgnore.parse(pattern)


def test_reading_trims_cleans_and_drops_comments() -> None:
    text = (
        "\ufefftest1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
        "! /inverted/abs/path\n  # not a comment: indented\r\n"
        "\t spaced/./out/../path  \n!\n! \n"
    )
    assert read_ignore_lines(text) == [
        "test1",
        "test2",
        "a/file/here",
        "lastfile",
        "!inverted/abs/path",
        "# not a comment: indented",
        "spaced/path",
        "!",
        "!",
    ]


def test_indented_hash_line_is_a_pattern() -> None:
    ignore = DockerIgnore.parse("#comment\n #hash")
    assert ignore.matches("#hash")
    assert not ignore.matches("#comment")


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("", "."), ("a//b/./c/..", "a/b"), ("/../a", "/a"), ("../../a", "../../a"), ("//x/", "/x")],
)
def test_clean_path_matches_go(raw: str, cleaned: str) -> None:
    assert clean_path(raw) == cleaned


# --- pruning decisions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "directory", "skippable"),
    [
        (["node_modules"], "node_modules", True),
        (["node_modules"], "src", False),  # not excluded at all
        (["*", "!src"], "docs", True),
        (["*", "!src/main.py"], "src", False),
        (["*", "!src/main.py"], "docs", True),
        (["*", "!**/keep"], "docs", False),
        (["*", "!*/keep"], "docs", False),
        (["*", "!d*/keep"], "docs", False),
        (["*", "!x*/keep"], "docs", True),
        (["*", "!docs"], "docs", False),  # not excluded
        (["build", "!build/**"], "build", False),
        (["build", "!buildx/**"], "build", True),
        (["build", "!bui**"], "build", False),
        (["!build/keep", "build"], "build", True),  # the exception comes first: no effect
        (["docs", "!docs/a/[^x]"], "docs", False),
        (["a/b", "!a/*"], "a/b", False),  # the exception matches a/b itself
        (["a/b", "!a/*/c"], "a/b", False),
        (["a/b", "!a/*"], "a/c", False),  # a/c is not excluded
        (["a", "!a/b/c"], "a/x", True),
        (["a", "!a/b/c"], "a/b", False),
    ],
)
def test_can_skip_dir(patterns: list[str], directory: str, skippable: bool) -> None:
    assert DockerIgnore.from_patterns(patterns).can_skip_dir(directory) is skippable


# --- the context walk ---------------------------------------------------------------------


def _make_tree(root: Path, paths: list[str]) -> None:
    for rel in paths:
        target = root / rel
        if rel.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rel)


@pytest.fixture
def scandir_visits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every directory the walker lists (the real os.scandir still runs)."""
    visits: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: str) -> object:
        visits.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    return visits


def test_walk_prunes_excluded_directories_without_listing_them(
    tmp_path: Path, scandir_visits: list[str]
) -> None:
    _make_tree(
        tmp_path,
        [
            "node_modules/a/b/c.js",
            "node_modules/d/e.js",
            ".git/objects/aa/bb",
            "src/main.py",
            "src/cache/x.pyc",
            "README.md",
        ],
    )
    ignore = DockerIgnore.parse("node_modules\n.git\n**/cache\n")
    assert list(walk_context(tmp_path, ignore)) == ["README.md", "src", "src/main.py"]
    listed = {os.path.relpath(p, tmp_path) for p in scandir_visits}
    assert listed == {".", "src"}


def test_walk_descends_into_excluded_directory_when_an_exception_needs_it(
    tmp_path: Path, scandir_visits: list[str]
) -> None:
    _make_tree(tmp_path, ["docs/a.md", "docs/keep/b.md", "docs/deep/x/y", "other/z"])
    ignore = DockerIgnore.parse("docs\nother\n!docs/keep\n")
    assert list(walk_context(tmp_path, ignore)) == ["docs", "docs/keep", "docs/keep/b.md"]
    listed = {os.path.relpath(p, tmp_path) for p in scandir_visits}
    # docs must be listed to find docs/keep; docs/deep and other are pruned.
    assert listed == {".", "docs", "docs/keep"}


def test_walk_yields_symlinks_without_following_them(tmp_path: Path) -> None:
    _make_tree(tmp_path, ["real/file"])
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    assert list(walk_context(tmp_path, DockerIgnore())) == [
        "dangling",
        "link",
        "real",
        "real/file",
    ]


def test_walk_with_star_and_exception_keeps_only_the_exception(tmp_path: Path) -> None:
    _make_tree(tmp_path, ["a/b/c", "a/d", "e", "f/"])
    ignore = DockerIgnore.parse("*\n!a/b\n")
    assert list(walk_context(tmp_path, ignore)) == ["a", "a/b", "a/b/c"]


def test_walk_entries_below_a_directory_is_walk_context_restricted_to_it(tmp_path: Path) -> None:
    _make_tree(tmp_path, ["docs/a.md", "docs/keep/b.md", "docs/deep/x/y", "other/z"])
    ignore = DockerIgnore.parse("docs\nother\n!docs/keep\n")
    below = [(rel, e.name, e.is_dir()) for rel, e in walk_entries(tmp_path, ignore, "docs")]
    assert below == [("docs/keep", "keep", True), ("docs/keep/b.md", "b.md", False)]
    everything = [rel for rel, _ in walk_entries(str(tmp_path), ignore)]
    assert everything == list(walk_context(tmp_path, ignore))


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*.c", "main.c", True),
        ("a**b", "axyzb", True),  # Go's filepath.Match: ** is two plain stars
        ("**", "anything", True),
        ("file?", "file1", True),
        ("[^a]x", "bx", True),
        ("[^a]x", "ax", False),
        ("[a-c]", "d", False),
        ("\\*", "*", True),
        ("\\*", "x", False),
        ("*", "new\nline", True),
    ],
)
def test_compile_glob_is_go_filepath_match_for_one_component(
    pattern: str, name: str, matches: bool
) -> None:
    assert (compile_glob(pattern).fullmatch(name) is not None) is matches


@pytest.mark.parametrize("pattern", ["[", "[]", "[a", "[z-a]", "x\\", "[-]"])
def test_compile_glob_rejects_what_go_calls_a_bad_pattern(pattern: str) -> None:
    with pytest.raises(DockerIgnoreError):
        compile_glob(pattern)


EXCLUDES = ["a", "b", "a/b", "*", "*/c", "**/c", "a/**", "b*", "?", "[ab]/c", "**", "c/*/a"]
EXCEPTIONS = [
    "!a", "!a/b", "!**/c", "!a/*/c", "!a/**/b", "!?/b", "!c", "![^a]/a", "!b/**", "!*/*/a",
    "!a/[bc]/a", "!b?", "!**",
]  # fmt: skip
PATTERN_LISTS = st.tuples(
    st.lists(st.sampled_from(EXCLUDES), min_size=1, max_size=3),
    st.lists(st.sampled_from(EXCEPTIONS), min_size=1, max_size=2),
    st.lists(st.sampled_from(EXCLUDES + EXCEPTIONS), max_size=2),
).map(lambda parts: parts[0] + parts[1] + parts[2])
TREE_PATHS = st.lists(
    st.lists(st.sampled_from("abc"), min_size=1, max_size=4).map("/".join),
    min_size=3,
    max_size=14,
)


def _brute_force(root: Path, ignore: DockerIgnore) -> set[str]:
    """Every included entry plus its parents, found without any pruning."""
    wanted: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if not ignore.matches(rel):
                parts = rel.split("/")
                wanted.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return wanted


def _ordered_parents_first(paths: list[str]) -> Iterator[bool]:
    seen: set[str] = set()
    for path in paths:
        parent = path.rpartition("/")[0]
        yield not parent or parent in seen
        seen.add(path)


@settings(max_examples=300, deadline=None)
@given(TREE_PATHS, PATTERN_LISTS)
def test_pruned_walk_equals_brute_force(files: list[str], patterns: list[str]) -> None:
    ignore = DockerIgnore.from_patterns(patterns)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel in files:
            target = root / rel
            if target.exists() or any(p.is_file() for p in target.parents if p != root):
                continue  # a file already occupies this path or one of its parents
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x")
        walked = list(walk_context(root, ignore))
        assert len(walked) == len(set(walked))
        assert set(walked) == _brute_force(root, ignore)
        assert all(_ordered_parents_first(walked))


# --- which ignore file applies ------------------------------------------------------------


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("a")
    (tmp_path / "build").mkdir()
    dockerfile = tmp_path / "build" / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    specific = tmp_path / "build" / "app.Dockerfile.dockerignore"
    specific.write_text("b")
    assert find_ignore_file(tmp_path, dockerfile) == specific


def test_context_ignore_file_is_the_fallback(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("a")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert find_ignore_file(tmp_path, tmp_path / "Dockerfile") == tmp_path / ".dockerignore"
    assert find_ignore_file(tmp_path) == tmp_path / ".dockerignore"


def test_default_dockerfile_gets_dockerfile_dockerignore(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("a")
    (tmp_path / "Dockerfile.dockerignore").write_text("b")
    found = find_ignore_file(tmp_path, tmp_path / "Dockerfile")
    assert found == tmp_path / "Dockerfile.dockerignore"


def test_no_ignore_file(tmp_path: Path) -> None:
    assert find_ignore_file(tmp_path, tmp_path / "Dockerfile") is None


def test_directory_named_like_an_ignore_file_is_not_used(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").mkdir()
    assert find_ignore_file(tmp_path) is None
