"""Step cache keys: golden digests, canonical encoding, and what does or does not move a key.

Golden digests pin the exact key bytes. Changing any of them means the key layout changed: bump
builder.cachekey.KEY_VERSION (which changes every golden) and update them all in one commit, so
old cache records can never be mistaken for new ones.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.cachekey import (
    KEY_VERSION,
    BindMountKey,
    CacheMountKey,
    SecretMountKey,
    canonical_json,
    copy_key,
    from_key,
    linked_key,
    metadata_key,
    referenced_env,
    run_key,
    scratch_key,
    step_key,
    without_proxy_vars,
)
from registry.oci.digest import Digest

P = "sha256:" + "1" * 64
P2 = "sha256:" + "2" * 64
M = "sha256:" + "a" * 64
C = "sha256:" + "c" * 64


# ------------------------------------------------------------------ golden digests


def test_key_version_is_one() -> None:
    """Bumping KEY_VERSION must come with new goldens below."""
    assert KEY_VERSION == 1


def test_step_key_is_sha256_of_the_canonical_document() -> None:
    doc = b'{"inputs":{},"op":{},"parent":null,"v":1}'
    assert step_key(None, {}, {}) == "sha256:" + hashlib.sha256(doc).hexdigest()
    assert step_key(None, {}, {}) == (
        "sha256:45866b3da97a55a9fff76c38bcde780ea09452c3703b6b988214c6559ae9464a"
    )


GOLDEN: list[tuple[str, Any, str]] = [
    ("from", lambda: from_key(M, "linux/amd64"),
     "a88f5f1fbbbf5ed8ec0cce99178fa35cafdc9d00e91030548cf3555d698eec3c"),
    ("scratch", lambda: scratch_key("linux/amd64"),
     "57f5b0a1d451c9b3f6a4b20dfe100ea297a43dba2f1dbc649f0b5359701deeb4"),
    ("run_shell", lambda: run_key(P, command="make -j2", env={"PATH": "/usr/bin", "CC": "gcc"},
                                  platform="linux/amd64"),
     "53a7ed29ae4ead9c2d1abe83704c766ab7922705a56ffd0d78277aaa006b3115"),
    ("run_exec_mounts", lambda: run_key(
        P, command=["make", "install"], env={}, user="app", workdir="/src",
        platform="linux/amd64", network="none",
        mounts=[CacheMountKey(id="ccache", target="/root/.ccache"),
                SecretMountKey(id="tok", target="/run/secrets/tok"),
                BindMountKey(target="/src", checksum="sha256:" + "b" * 64)]),
     "f0ea2c61caff5ffac8d2e46266595317451263e01b99d0f3e1b19d9da7594b45"),
    ("copy", lambda: copy_key(P, sources=["src/", "*.txt"], dest="/app/", sources_checksum=C,
                              chown="1000:1000", chmod="0644"),
     "5309b9c6d1083aca9810252f55fd778a2b6f5db00417a636c35a46c54df86039"),
    ("copy_link", lambda: copy_key(P, sources=["a"], dest="/a", sources_checksum=C, link=True),
     "9d3a7891106bd81ac5b3d34529299502a70f9cdbf748b2a23d3c9187a3beb370"),
    ("env_non_ascii", lambda: metadata_key(P, "env", [["A", "1"], ["B", "é"]]),
     "4ab6cf5137ca1d9844048e993f033a083a05f25a28a3316c070ca39f7964a345"),
]


@pytest.mark.parametrize(("name", "make", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_key(name: str, make: Any, expected: str) -> None:
    assert make() == "sha256:" + expected


# ------------------------------------------------------------------ canonical encoding


def test_canonical_json_sorts_keys_and_keeps_unicode() -> None:
    expected = '{"a":["é",null,true],"b":1}'.encode()
    assert canonical_json({"b": 1, "a": ["é", None, True]}) == expected


@pytest.mark.parametrize("bad", [1.5, b"x", {1, 2}, {1: "a"}, object()])
def test_values_that_could_make_keys_unstable_are_refused(bad: Any) -> None:
    with pytest.raises(TypeError):
        step_key(None, {"x": bad}, {})


def test_tuples_and_lists_encode_the_same() -> None:
    assert step_key(None, {"x": (1, "a")}, {}) == step_key(None, {"x": [1, "a"]}, {})


json_scalars = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.randoms())
def test_key_is_stable_under_mapping_order(op: dict[str, Any], rnd: Any) -> None:
    items = list(op.items())
    rnd.shuffle(items)
    assert step_key(P, dict(items), {"env": dict(reversed(items))}) == step_key(
        P, op, {"env": op})


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=8), st.randoms())
def test_run_key_is_stable_under_env_order(env: dict[str, str], rnd: Any) -> None:
    items = list(env.items())
    rnd.shuffle(items)
    assert run_key(P, command="x", env=dict(items)) == run_key(P, command="x", env=env)


# ------------------------------------------------------------------ what moves a key


def test_parent_changes_the_key() -> None:
    assert run_key(P, command="x", env={}) != run_key(P2, command="x", env={})


def test_from_keys_on_manifest_digest_and_platform() -> None:
    assert from_key(M, "linux/amd64") == from_key(Digest.parse(M), "linux/amd64")
    assert from_key(M, "linux/amd64") != from_key("sha256:" + "b" * 64, "linux/amd64")
    assert from_key(M, "linux/amd64") != from_key(M, "linux/arm64")
    assert from_key(M, "linux/amd64") != scratch_key("linux/amd64")


def test_from_refuses_a_tag() -> None:
    with pytest.raises(Exception, match="digest"):
        from_key("busybox:latest", "linux/amd64")


@pytest.mark.parametrize("name", ["HTTP_PROXY", "https_proxy", "Ftp_Proxy", "no_proxy",
                                  "ALL_PROXY"])
def test_proxy_build_args_do_not_change_run_keys(name: str) -> None:
    base = run_key(P, command="apt-get update", env={"A": "1"})
    assert run_key(P, command="apt-get update", env={"A": "1", name: "http://p:3128"}) == base


def test_env_values_change_run_keys() -> None:
    assert run_key(P, command="x", env={"A": "1"}) != run_key(P, command="x", env={"A": "2"})


def test_shell_form_and_exec_form_differ_and_shell_matters_for_shell_form() -> None:
    shell = run_key(P, command="echo hi", env={})
    assert shell != run_key(P, command=["/bin/sh", "-c", "echo hi"], env={})
    assert shell != run_key(P, command="echo hi", env={}, shell=["/bin/bash", "-c"])


@pytest.mark.parametrize("field", [{"user": "app"}, {"workdir": "/x"}, {"network": "none"},
                                   {"platform": "linux/arm64"}, {"security": "insecure"}])
def test_run_settings_change_the_key(field: dict[str, str]) -> None:
    assert run_key(P, command="x", env={}, **field) != run_key(P, command="x", env={})


def test_secret_mount_key_has_no_room_for_the_secret() -> None:
    """A secret's value or host file can never reach a key: the mount type has no such field."""
    assert set(SecretMountKey.__slots__) == {"id", "target", "env", "required", "mode", "uid",
                                             "gid"}
    # two builds with different secret files/values describe the mount identically
    first = run_key(P, command="cat /run/secrets/t", env={},
                    mounts=[SecretMountKey(id="t", target="/run/secrets/t")])
    second = run_key(P, command="cat /run/secrets/t", env={},
                     mounts=[SecretMountKey(id="t", target="/run/secrets/t")])
    assert first == second
    assert first != run_key(P, command="cat /run/secrets/t", env={},
                            mounts=[SecretMountKey(id="u", target="/run/secrets/t")])


def test_cache_mount_contents_are_not_inputs_but_its_identity_is() -> None:
    base = run_key(P, command="x", env={}, mounts=[CacheMountKey(id="c", target="/c")])
    assert base != run_key(P, command="x", env={},
                           mounts=[CacheMountKey(id="c", target="/c", sharing="locked")])
    assert base != run_key(P, command="x", env={}, mounts=[CacheMountKey(id="d", target="/c")])


def test_bind_mount_keys_on_content_checksum() -> None:
    a = run_key(P, command="x", env={}, mounts=[BindMountKey(target="/s", checksum=C)])
    b = run_key(P, command="x", env={},
                mounts=[BindMountKey(target="/s", checksum="sha256:" + "d" * 64)])
    assert a != b


def test_copy_content_checksum_changes_the_key() -> None:
    a = copy_key(P, sources=["."], dest="/app/", sources_checksum=C)
    assert a != copy_key(P, sources=["."], dest="/app/", sources_checksum="sha256:" + "d" * 64)
    assert a != copy_key(P, sources=["."], dest="/app", sources_checksum=C)
    assert a != copy_key(P, kind="ADD", sources=["."], dest="/app/", sources_checksum=C)
    assert a != copy_key(P, sources=["."], dest="/app/", sources_checksum=C, chmod="755")
    assert a != copy_key(P, sources=["."], dest="/app/", sources_checksum=C, exclude=["*.md"])
    assert a != copy_key(P, sources=["."], dest="/app/", sources_checksum=C, source_from=P2)


def test_copy_link_key_ignores_the_parent_and_linked_key_composes_it() -> None:
    layer_a = copy_key(P, sources=["a"], dest="/a", sources_checksum=C, link=True)
    layer_b = copy_key(P2, sources=["a"], dest="/a", sources_checksum=C, link=True)
    assert layer_a == layer_b
    assert layer_a != copy_key(P, sources=["a"], dest="/a", sources_checksum=C)
    assert linked_key(P, layer_a) != linked_key(P2, layer_a)


def test_metadata_key_depends_on_instruction_and_value() -> None:
    assert metadata_key(P, "CMD", ["a"]) == metadata_key(P, "cmd", ["a"])
    assert metadata_key(P, "CMD", ["a"]) != metadata_key(P, "ENTRYPOINT", ["a"])
    assert metadata_key(P, "CMD", ["a"]) != metadata_key(P, "CMD", ["b"])


# ------------------------------------------------------------------ environment helpers


def test_referenced_env_keeps_only_names_a_word_uses() -> None:
    env = {"VERSION": "1.2", "UNUSED": "x", "HTTP_PROXY": "p", "DIR": "src"}
    used = referenced_env(env, ["app-${VERSION}.tar", "$DIR/", "$HTTP_PROXY"])
    assert used == {"VERSION": "1.2", "DIR": "src"}


def test_build_arg_a_copy_does_not_use_leaves_its_key_alone() -> None:
    words = ["src/${NAME}"]
    first = copy_key(P, sources=["src/app"], dest="/x", sources_checksum=C,
                     extra={"env": referenced_env({"NAME": "app", "OTHER": "1"}, words)})
    second = copy_key(P, sources=["src/app"], dest="/x", sources_checksum=C,
                      extra={"env": referenced_env({"NAME": "app", "OTHER": "2"}, words)})
    third = copy_key(P, sources=["src/app"], dest="/x", sources_checksum=C,
                     extra={"env": referenced_env({"NAME": "app2", "OTHER": "1"}, words)})
    assert first == second
    assert first != third


def test_without_proxy_vars_is_case_insensitive() -> None:
    assert without_proxy_vars({"http_proxy": "a", "Https_Proxy": "b", "KEEP": "c"}) == {
        "KEEP": "c"}


# ------------------------------------------------------------------ with a real context


def test_copy_key_over_a_real_context_ignores_mtime_and_follows_content(tmp_path: Any) -> None:
    import os

    from builder.context import BuildContext

    root = tmp_path / "ctx"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print(1)\n")

    def key() -> str:
        digest = BuildContext(root).checksum(["app"])
        return copy_key(P, sources=["app"], dest="/srv/", sources_checksum=digest)

    first = key()
    os.utime(root / "app" / "main.py", ns=(1, 1))
    assert key() == first
    (root / "app" / "main.py").write_text("print(2)\n")
    assert key() != first
