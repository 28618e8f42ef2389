"""strata login / logout (credentials file, docker's config as fallback) and strata search."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
from pathlib import Path

from transfer_registries import (
    STRATA as STRATA_BIN,
)
from transfer_registries import (
    TOKEN_PASSWORD,
    TOKEN_USER,
    RunningRegistry,
    running_gate,
    strata,
)

from builder import credentials
from builder.transfer_progress import JsonProgress, PlainProgress, TtyProgress


def _login(root: Path, host: str, user: str, password: str,
           env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(strata.__globals__["STRATA"])), "--root", str(root),
                           "login", "-u", user, "--password-stdin", host],
                          input=password + "\n", capture_output=True, text=True, timeout=60,
                          env=env)


def test_login_saves_credentials_0600_and_push_uses_them(
        tmp_path: Path, busybox_rootfs_tar: Path, basic_auth_registry: RunningRegistry) -> None:
    import os
    cfg = tmp_path / "cfg"
    env = {**os.environ, "STRATA_CONFIG": str(cfg), "DOCKER_CONFIG": str(tmp_path / "nodocker")}
    root = tmp_path / "store"
    host = basic_auth_registry.host
    strata(root, "import", str(busybox_rootfs_tar), f"{host}/private/bb:1")
    denied = strata(root, "push", f"{host}/private/bb:1", check=False, env=env)
    assert denied.returncode == 5 and "authentication required" in denied.stderr
    bad = _login(root, host, "alice", "nope", env)
    assert bad.returncode == 5, bad.stderr
    assert not (cfg / "auth.json").exists()
    good = _login(root, host, "alice", "s3cret", env)
    assert good.returncode == 0, good.stderr
    auth_file = cfg / "auth.json"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    saved = json.loads(auth_file.read_text())["auths"][host]["auth"]
    assert base64.b64decode(saved) == b"alice:s3cret"
    strata(root, "push", f"{host}/private/bb:1", env=env)
    strata(tmp_path / "other", "pull", f"{host}/private/bb:1", env=env)
    out = strata(root, "logout", host, env=env)
    assert "Removing login credentials" in out.stdout
    assert host not in json.loads(auth_file.read_text())["auths"]


def test_docker_config_auths_are_read(tmp_path: Path, monkeypatch: object) -> None:
    import pytest
    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
        "reg.example:5000": {"auth": base64.b64encode(b"me:secret:with:colons").decode()}}}))
    mp.setenv("DOCKER_CONFIG", str(docker_dir))
    mp.setenv("STRATA_CONFIG", str(tmp_path / "strata"))
    assert credentials.lookup("docker.io") == ("hub", "pw")
    assert credentials.lookup("reg.example:5000") == ("me", "secret:with:colons")
    assert credentials.lookup("elsewhere") is None
    credentials.store("reg.example:5000", "mine", "x")
    assert credentials.lookup("reg.example:5000") == ("mine", "x")  # strata's file wins


def test_search_uses_strata_search_api(tmp_path: Path, busybox_rootfs_tar: Path,
                                       strata_registry: RunningRegistry) -> None:
    root = tmp_path / "store"
    host = strata_registry.host
    strata(root, "import", str(busybox_rootfs_tar), f"{host}/tools/busybox:1")
    strata(root, "push", f"{host}/tools/busybox:1")
    out = strata(root, "search", "--registry", f"http://{host}", "--format", "json", "busy")
    body = json.loads(out.stdout)
    assert body["api"] == "strata"
    assert "tools/busybox" in json.dumps(body["results"])
    table = strata(root, "search", "--registry", host, "busy").stdout
    assert table.splitlines()[0].split()[0] == "NAME" and "tools/busybox" in table


def test_search_against_a_registry_without_search_is_a_clear_error(
        tmp_path: Path, docker_registry: RunningRegistry) -> None:
    out = strata(tmp_path / "s", "search", "--registry", docker_registry.host, "x", check=False)
    assert out.returncode != 0
    assert "search" in out.stderr and "Traceback" not in out.stderr


def test_progress_views_render_layers(tmp_path: Path) -> None:
    import io
    for cls in (PlainProgress, JsonProgress, TtyProgress):
        buf = io.StringIO()
        view = cls(buf)
        view.update("abc123", "Downloading", 0, 1000)
        view.advance("abc123", "Downloading", 500)
        view.update("abc123", "Pull complete")
        view.update("def456", "Already exists")
        view.close()
        text = buf.getvalue()
        assert "Pull complete" in text and "Already exists" in text
        if cls is TtyProgress:
            assert "\x1b[" in text
        if cls is JsonProgress:
            assert json.loads(text.splitlines()[0])["id"] == "abc123"


async def test_login_then_push_and_pull_through_a_token_service(
        tmp_path: Path, busybox_rootfs_tar: Path, strata_registry: RunningRegistry) -> None:
    import asyncio
    import os

    async def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            STRATA_BIN, "--root", str(tmp_path / "store"), *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "STRATA_CONFIG": str(tmp_path / "cfg"),
                 "DOCKER_CONFIG": str(tmp_path / "nodocker")})
        out, err = await proc.communicate(stdin.encode() if stdin else None)
        assert proc.returncode is not None
        return proc.returncode, err.decode() + out.decode()

    async with running_gate(strata_registry.url) as gate:
        host = f"127.0.0.1:{gate.port}"
        rc, out = await run("import", str(busybox_rootfs_tar), f"{host}/tok/bb:1")
        assert rc == 0, out
        rc, out = await run("push", f"{host}/tok/bb:1")
        assert rc == 5 and "strata login" in out, out
        rc, out = await run("login", "-u", TOKEN_USER, "--password-stdin", host,
                            stdin=TOKEN_PASSWORD)
        assert rc == 0 and "Login Succeeded" in out, out
        rc, out = await run("push", f"{host}/tok/bb:1")
        assert rc == 0, out
        rc, out = await run("rmi", f"{host}/tok/bb:1")
        assert rc == 0, out
        rc, out = await run("pull", f"{host}/tok/bb:1")
        assert rc == 0, out
    assert any("repository:tok/bb:pull,push" in scopes for scopes in gate.token_requests)
