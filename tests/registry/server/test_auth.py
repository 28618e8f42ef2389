"""Basic authentication from an htpasswd file (auth_htpasswd): the challenge, the error
envelope, every endpoint guarded, the file read again when it changes, bad files refused
with their file:line."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from tooling import free_port
from transfer_registries import wait_for_v2

from registry import auth
from registry.auth import HtpasswdInvalid, load_htpasswd
from registry.server.config import ConfigError, load_config


def _hash(password: str, prefix: bytes = b"$2y$") -> str:
    """An htpasswd -B entry's hash (cost 4: tests need not be slow)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4))
    return (prefix + hashed[4:]).decode()


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text(f"# CI pushers\nalice:{_hash('s3cret')}\n\nbob:{_hash('hunter2', b'$2b$')}\n")
    return path


async def test_every_request_needs_a_users_password(make_reg, htpasswd: Path) -> None:
    reg = await make_reg(auth_htpasswd=htpasswd, auth_realm="ci registry")
    requests: list[tuple[str, str]] = [
        ("GET", "/v2/"), ("GET", "/v2/_catalog"), ("GET", "/v2/a/tags/list"),
        ("HEAD", "/v2/a/manifests/latest"), ("POST", "/v2/a/blobs/uploads/"),
        ("GET", "/v1/_ping"), ("GET", "/v1/search?q=a"), ("GET", "/strata/v1/search?q=a"),
        ("GET", "/v2/no/such/endpoint")]
    for headers in ({}, _basic("alice", "wrong"), _basic("mallory", "s3cret"),
                    {"Authorization": "Bearer abc"}, {"Authorization": "Basic !!"}):
        for method, path in requests:
            resp = await reg.request(method, path, headers=headers)
            assert resp.status == 401, (method, path, headers)
            assert resp.headers["WWW-Authenticate"] == \
                'Basic realm="ci registry", charset="UTF-8"'
            assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
            if method != "HEAD":
                assert (await resp.json())["errors"][0]["code"] == "UNAUTHORIZED"

    for user, password in (("alice", "s3cret"), ("bob", "hunter2")):
        resp = await reg.get("/v2/", headers=_basic(user, password))
        assert resp.status == 200
    data = os.urandom(1000)
    digest = reg.sha(data)
    resp = await reg.post("/v2/team/app/blobs/uploads/", params={"digest": digest}, data=data,
                          headers=_basic("alice", "s3cret"))
    assert resp.status == 201
    resp = await reg.get(f"/v2/team/app/blobs/{digest}", headers=_basic("bob", "hunter2"))
    assert resp.status == 200 and await resp.read() == data
    resp = await reg.post("/v2/team/app/blobs/uploads/", params={"digest": digest}, data=data)
    assert resp.status == 401


async def test_a_refused_request_gets_its_401_instead_of_100_continue(
        make_reg, htpasswd: Path) -> None:
    """Its body is not wanted: the client learns so before sending it."""
    reg = await make_reg(auth_htpasswd=htpasswd)

    async def answer(headers: dict[str, str]) -> tuple[bytes, bytes]:
        """The first line of the answer, and all the connection sends until it closes."""
        reader, writer = await asyncio.open_connection(reg.server.host, reg.server.port)
        try:
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"PATCH /v2/a/blobs/uploads/0123 HTTP/1.1\r\nHost: x\r\n"
                         f"Content-Length: 10\r\nExpect: 100-continue\r\n{head}\r\n"
                         .encode())
            first = await asyncio.wait_for(reader.readline(), 10)
            if first.startswith(b"HTTP/1.1 100"):
                return first, b""
            return first, await asyncio.wait_for(reader.read(), 2)  # (then it closes)
        finally:
            writer.close()

    first, rest = await answer({})
    assert first == b"HTTP/1.1 401 Unauthorized\r\n"
    assert b"Connection: close" in rest and b'"UNAUTHORIZED"' in rest
    assert (await answer(_basic("alice", "s3cret")))[0] == b"HTTP/1.1 100 Continue\r\n"


async def test_a_client_that_sends_its_body_despite_expect_still_reads_the_401(
        make_reg, htpasswd: Path) -> None:
    """The connection ends our side at once, but reads for a moment before it closes:
    closing with the body unread would reset it, and the reset can destroy the answer."""
    reg = await make_reg(auth_htpasswd=htpasswd)
    body = os.urandom(4 << 20)
    reader, writer = await asyncio.open_connection(reg.server.host, reg.server.port)
    try:
        writer.write(f"PATCH /v2/a/blobs/uploads/0123 HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
                     .encode() + body)
        await asyncio.wait_for(writer.drain(), 10)  # (no reset while sending)
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")


async def test_a_password_is_checked_with_bcrypt_once(make_reg, htpasswd: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reg = await make_reg(auth_htpasswd=htpasswd)
    checks: list[bytes] = []
    real = auth._password_matches

    def counting(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return real(password, hashed)

    monkeypatch.setattr(auth, "_password_matches", counting)
    for _ in range(5):
        assert (await reg.get("/v2/", headers=_basic("alice", "s3cret"))).status == 200
        assert (await reg.get("/v2/", headers=_basic("alice", "nope"))).status == 401
    assert checks.count(b"s3cret") == 1 and checks.count(b"nope") == 5
    # an unknown user costs a check too: a 401's timing does not tell who exists
    assert (await reg.get("/v2/", headers=_basic("mallory", "guess"))).status == 401
    assert checks[-1] == b"guess"


async def test_passwords_count_to_bcrypts_72_bytes_as_htpasswd_and_go(
        make_reg, tmp_path: Path) -> None:
    long = "p" * 72
    path = tmp_path / "htpasswd"
    path.write_text(f"token:{_hash(long)}\n")
    reg = await make_reg(auth_htpasswd=path)
    assert (await reg.get("/v2/", headers=_basic("token", long + "-anything"))).status == 200
    assert (await reg.get("/v2/", headers=_basic("token", long[:71]))).status == 401


async def test_too_many_password_checks_waiting_get_429(make_reg, htpasswd: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    reg = await make_reg(auth_htpasswd=htpasswd)
    assert (await reg.get("/v2/", headers=_basic("alice", "s3cret"))).status == 200
    monkeypatch.setattr(auth, "MAX_PENDING_CHECKS", 0)
    resp = await reg.get("/v2/", headers=_basic("bob", "hunter2"))
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    assert (await resp.json())["errors"][0]["code"] == "TOOMANYREQUESTS"
    # a password already checked needs no bcrypt thread
    assert (await reg.get("/v2/", headers=_basic("alice", "s3cret"))).status == 200


async def test_the_file_is_read_again_when_it_changes(make_reg, htpasswd: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(auth, "RELOAD_SECONDS", 0.05)
    reg = await make_reg(auth_htpasswd=htpasswd)
    assert (await reg.get("/v2/", headers=_basic("carol", "pw"))).status == 401
    htpasswd.write_text(f"carol:{_hash('pw')}\n")
    os.utime(htpasswd, ns=(1, 1))  # (a new modification time whatever the clock's grain)
    for _ in range(100):
        if (await reg.get("/v2/", headers=_basic("carol", "pw"))).status == 200:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the new user was never accepted")
    assert (await reg.get("/v2/", headers=_basic("alice", "s3cret"))).status == 401
    htpasswd.write_text("carol:{SHA}not-bcrypt\n")  # broken: the users read before stay
    os.utime(htpasswd, ns=(2, 2))
    with caplog.at_level(logging.ERROR, "registry.auth"):
        await asyncio.sleep(0.5)  # (ten looks at the file)
    assert (await reg.get("/v2/", headers=_basic("carol", "pw"))).status == 200
    errors = [r.getMessage() for r in caplog.records if r.name == "registry.auth"]
    assert len(errors) == 1 and "htpasswd:1" in errors[0] and "NOT applied" in errors[0]


def test_the_user_goes_to_the_json_access_log(tmp_path: Path, htpasswd: Path) -> None:
    port = free_port()
    log = tmp_path / "log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "registry.server", "serve", "--addr", f"127.0.0.1:{port}",
             "--root", str(tmp_path / "root"), "--log-format", "json"],
            stdout=fh, stderr=subprocess.STDOUT,
            env={**os.environ, "STRATA_REGISTRY_AUTH_HTPASSWD": str(htpasswd)})
    try:
        wait_for_v2(f"http://127.0.0.1:{port}", proc, log=log, ok_status=(401,))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/",
                                         headers=_basic("bob", "hunter2"))
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    records: list[dict[str, Any]] = [json.loads(line) for line in log.read_text().splitlines()
                                     if line.startswith('{"ts"') and '"method"' in line]
    assert [(r["status"], r.get("user")) for r in records][-2:] == [(401, None), (200, "bob")]


@pytest.mark.parametrize("text,message", [
    ("alice:$apr1$abc$def\n", r"htpasswd:1: the password of 'alice' is not a bcrypt hash"),
    ("# only a comment\n\n", r"htpasswd: no users"),
    (f"ok:{_hash('x')}\njustaname\n", r"htpasswd:2: expected USER:BCRYPT-HASH"),
    (f"cut:{_hash('x')[:40]}\n", r"htpasswd:1: the password of 'cut' is not a bcrypt hash"),
])
def test_a_file_that_is_not_bcrypt_htpasswd_is_refused_with_its_line(
        tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(text)
    with pytest.raises(HtpasswdInvalid, match=message):
        load_htpasswd(path)
    out = subprocess.run([sys.executable, "-m", "registry.server", "serve", "--root",
                          str(tmp_path / "root"), "--addr", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "STRATA_REGISTRY_AUTH_HTPASSWD": str(path)})
    assert out.returncode == 2 and "auth_htpasswd" in out.stderr, out.stderr
    assert not (tmp_path / "root").exists()


def test_missing_file_and_bad_realm_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(HtpasswdInvalid, match="cannot read it: No such file"):
        load_htpasswd(tmp_path / "none")
    for realm in ('a"b', "tab\there", ""):
        with pytest.raises(ConfigError, match="auth_realm"):
            load_config(env={"STRATA_REGISTRY_AUTH_REALM": realm})
