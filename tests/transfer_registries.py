"""Registry processes on loopback, shared by every test that needs one.

`start_strata_registry` and `start_docker_registry` (Debian's docker-registry, CNCF distribution
2.8), each optionally with htpasswd Basic auth (bcrypt) or TLS, return a RunningRegistry;
`wait_for_v2` polls a server's /v2/ until it answers. Per-test fixtures
`strata_registry`, `docker_registry` and `basic_auth_registry` are imported by conftests that
want them. Ports come from tooling.free_port.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import bcrypt
import pytest

if TYPE_CHECKING:
    from builder.images import ImageStore
    from registry.oci import Descriptor
from aiohttp import web
from tooling import LoopbackPki, free_port

from registry.client import RegistryClient
from registry.oci import Descriptor, Digest, canonical_bytes, mediatypes

_COMBINED = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) ')
STRATA = str(Path(sys.executable).parent / "strata")


def strata(root: Path, *args: str, check: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([STRATA, "--root", str(root), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "STRATA_CONFIG": str(root) + "-cfg",
                                            **(env or {})})
    if check:
        assert proc.returncode == 0, f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


STRATA_REGISTRY = str(Path(sys.executable).parent / "strata-registry")


@dataclass
class RunningRegistry:
    host: str
    log: Path
    proc: subprocess.Popen[bytes]
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def get_json(self, path: str, accept: str | None = None) -> Any:
        """GET `path` (e.g. /v2/...) and decode the JSON body."""
        req = urllib.request.Request(self.url + path)
        if accept:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request logged so far."""
        time.sleep(0.7)  # strata-registry flushes its access log every 0.5 s
        out: list[tuple[str, str, int]] = []
        for line in self.log.read_text(errors="replace").splitlines():
            combined = _COMBINED.search(line)
            if combined:  # docker-registry's access log (Apache combined format)
                out.append((combined[1], combined[2], int(combined[3])))
                continue
            if not line.startswith("{"):
                continue
            try:
                rec: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if "method" in rec:  # strata-registry
                out.append((rec["method"], rec["path"], int(rec["status"])))
            elif "http.request.method" in rec:  # docker-registry
                out.append((rec["http.request.method"], rec["http.request.uri"],
                            int(rec.get("http.response.status", 0))))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for_v2(url: str, proc: subprocess.Popen[bytes], *, log: Path | None = None,
                ok_status: tuple[int, ...] = (200,), cafile: str | None = None,
                client_cert: tuple[Path, Path] | None = None) -> None:
    """Poll `url`/v2/ until it answers (200, or an HTTP error in `ok_status`) or fail if `proc`
    exits (showing `log`) or 30 s pass. `cafile` is the CA that signs an https server;
    `client_cert` the (certificate, key) it asks for, if it does."""
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    if ctx is not None and client_cert is not None:
        ctx.load_cert_chain(*client_cert)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            output = log.read_text() if log is not None else ""
            raise AssertionError(f"registry exited with {proc.returncode}: {output}")
        try:
            with urllib.request.urlopen(f"{url}/v2/", timeout=1, context=ctx):
                return
        except urllib.error.HTTPError as exc:
            if exc.code in ok_status:
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("registry did not start")
        time.sleep(0.1)


def write_htpasswd(path: Path, user: str, password: str) -> Path:
    """An htpasswd file with one bcrypt entry (as `htpasswd -B` writes it)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()
    path.write_text(f"{user}:{hashed}\n")
    return path


def start_strata_registry(base: Path, *, workers: int = 1, tls: LoopbackPki | None = None,
                          client_ca: bool = False,
                          htpasswd: tuple[str, str] | None = None,
                          env: dict[str, str] | None = None) -> RunningRegistry:
    """strata-registry storing under `base`, deletes enabled, JSON access log; `workers` > 1
    serves the port with that many processes (`--workers N`). `tls` serves https with its
    server certificate, and `client_ca` asks clients for a certificate its CA signed.
    `htpasswd` (user, password) turns on Basic auth; `env` adds STRATA_REGISTRY_* settings."""
    port = free_port()
    log = base / "registry.log"
    argv = [STRATA_REGISTRY, "serve", "--addr", f"127.0.0.1:{port}", "--root",
            str(base / "root"), "--delete-enabled", "--log-format", "json"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    environ = {**os.environ, **(env or {})}
    if tls is not None:
        environ.update(STRATA_REGISTRY_TLS_CERTIFICATE=str(tls.cert),
                       STRATA_REGISTRY_TLS_KEY=str(tls.key))
        if client_ca:
            environ["STRATA_REGISTRY_TLS_CLIENT_CA"] = str(tls.ca)
    if htpasswd is not None:
        environ["STRATA_REGISTRY_AUTH_HTPASSWD"] = str(
            write_htpasswd(base / "htpasswd", *htpasswd))
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=environ)
    reg = RunningRegistry(f"127.0.0.1:{port}", log, proc, "http" if tls is None else "https")
    wait_for_v2(reg.url, proc, log=log, ok_status=(200,) if htpasswd is None else (401,),
                cafile=None if tls is None else str(tls.ca),
                client_cert=(tls.client_cert, tls.client_key) if tls and client_ca else None)
    return reg


def start_docker_registry(base: Path, htpasswd: tuple[str, str] | None = None, *,
                          tls: tuple[Path, Path, Path] | None = None) -> RunningRegistry:
    """docker-registry storing under `base`; `htpasswd` (user, password) turns on Basic auth,
    `tls` (CA, certificate, key PEM files) serves https with a certificate the CA signed."""
    port = free_port()
    auth = ""
    if htpasswd is not None:
        write_htpasswd(base / "htpasswd", *htpasswd)
        auth = f"auth:\n  htpasswd:\n    realm: strata-test\n    path: {base / 'htpasswd'}\n"
    tls_config = ""
    if tls is not None:
        tls_config = f"  tls:\n    certificate: {tls[1]}\n    key: {tls[2]}\n"
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n  formatter: json\n"
        "storage:\n  filesystem:\n    rootdirectory: " + str(base / "data") + "\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + tls_config + auth)
    log = base / "registry.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=fh,
                                stderr=subprocess.STDOUT, env={**os.environ})
    reg = RunningRegistry(f"127.0.0.1:{port}", log, proc, "https" if tls else "http")
    wait_for_v2(reg.url, proc, log=log, ok_status=(200, 400, 401),
                cafile=str(tls[0]) if tls else None)
    return reg


# --------------------------------------------------------------------------- fixtures
# One registry per test; a conftest.py brings them in scope with
# `from transfer_registries import strata_registry, docker_registry, basic_auth_registry`.


def _sub(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path


@pytest.fixture
def strata_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A strata-registry process on a free loopback port."""
    reg = start_strata_registry(_sub(tmp_path, "strata-registry"))
    yield reg
    reg.stop()


@pytest.fixture
def docker_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """Debian's docker-registry (CNCF distribution) on a free loopback port."""
    reg = start_docker_registry(_sub(tmp_path, "distribution"))
    yield reg
    reg.stop()


@pytest.fixture(params=["docker-registry", "strata-registry"])
def basic_auth_registry(request: pytest.FixtureRequest,
                        tmp_path: Path) -> Iterator[RunningRegistry]:
    """docker-registry, then strata-registry, requiring Basic auth as alice / s3cret."""
    base = _sub(tmp_path, f"{request.param}-auth")
    if request.param == "docker-registry":
        reg = start_docker_registry(base, ("alice", "s3cret"))
    else:
        reg = start_strata_registry(base, htpasswd=("alice", "s3cret"))
    yield reg
    reg.stop()


# --------------------------------------------------------------------------- client helpers


def _reader(data: bytes):  # type: ignore[no-untyped-def]
    def read_range(start: int, length: int) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            view = data[start:start + length]
            for i in range(0, len(view), 1 << 16):
                yield view[i:i + 1 << 16]
        return gen()
    return read_range


def _desc(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type, Digest.from_bytes(data), len(data))


async def _push_image(client: RegistryClient, repo: str, tag: str,
                      layer: bytes) -> tuple[Descriptor, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    cdesc = _desc(config, mediatypes.OCI_CONFIG)
    ldesc = _desc(layer, mediatypes.OCI_LAYER_GZIP)
    for d, data in ((cdesc, config), (ldesc, layer)):
        await client.push_blob(repo, d, _reader(data))
    manifest = canonical_bytes({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                                "config": cdesc.to_json(), "layers": [ldesc.to_json()]})
    await client.put_manifest(repo, tag, mediatypes.OCI_MANIFEST, manifest)
    return _desc(manifest, mediatypes.OCI_MANIFEST), manifest


# --------------------------------------------------------------------------- in-process servers


@contextlib.asynccontextmanager
async def serving(app: web.Application, port: int) -> AsyncIterator[None]:
    """Serve `app` on 127.0.0.1:`port` in the running event loop until the block ends."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def forward(request: web.Request, upstream: str) -> web.Response:
    """Replay `request` against `upstream` (a base URL) and answer with its response, bytes
    untouched (no decompression); hop-by-hop and credential headers are not passed on."""
    body = await request.read()
    headers = {k: v for k, v in request.headers.items()
               if k.lower() not in ("host", "authorization", "content-length",
                                    "transfer-encoding")}
    async with aiohttp.ClientSession(auto_decompress=False) as session, \
            session.request(request.method, upstream + request.path_qs,
                            data=body or None, headers=headers,
                            allow_redirects=False) as resp:
        payload = await resp.read()
        out = web.Response(status=resp.status,
                           body=payload if request.method != "HEAD" else None)
        for k, v in resp.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "date",
                                 "server", "content-encoding"):
                out.headers[k] = v
        if request.method == "HEAD" and "Content-Length" in resp.headers:
            out.headers["Content-Length"] = resp.headers["Content-Length"]
        return out


# --------------------------------------------------------------------------- token service


TOKEN_USER, TOKEN_PASSWORD = "bob", "hunter2"


class TokenGate:
    """Token endpoint `/token` plus a gate in front of the upstream registry's /v2/."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tokens: dict[str, set[str]] = {}  # token -> granted scopes
        self.token_requests: list[list[str]] = []
        self.port = free_port()

    async def token(self, request: web.Request) -> web.Response:
        scopes = request.query.getall("scope", [])
        self.token_requests.append(scopes)
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{TOKEN_USER}:{TOKEN_PASSWORD}".encode()).decode()
        if auth != expected:
            return web.json_response({"details": "bad credentials"}, status=401)
        token = secrets.token_hex(8)
        self.tokens[token] = set(scopes)
        return web.json_response({"token": token, "expires_in": 300})

    def _needed_scope(self, request: web.Request) -> str:
        path = request.path.removeprefix("/v2/")
        for marker in ("/blobs/", "/manifests/", "/tags/"):
            if marker in path:
                name = path.split(marker)[0]
                action = "pull" if request.method in ("GET", "HEAD") else "pull,push"
                return f"repository:{name}:{action}"
        return ""

    async def gate(self, request: web.Request) -> web.StreamResponse:
        scope = self._needed_scope(request)
        auth = request.headers.get("Authorization", "")
        granted = self.tokens.get(auth.removeprefix("Bearer "), None)
        if not auth.startswith("Bearer ") or granted is None or (scope and scope not in granted):
            challenge = (f'Bearer realm="http://127.0.0.1:{self.port}/token",'
                         f'service="gate"' + (f',scope="{scope}"' if scope else ""))
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "token required"}]},
                status=401, headers={"WWW-Authenticate": challenge})
        return await forward(request, self.upstream)


@contextlib.asynccontextmanager
async def running_gate(upstream: str) -> AsyncIterator[TokenGate]:
    """A TokenGate serving on loopback in the running event loop."""
    gate = TokenGate(upstream)
    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/token", gate.token)
    app.router.add_route("*", "/v2/{tail:.*}", gate.gate)
    async with serving(app, gate.port):
        yield gate


def store_artifact(store: ImageStore, payload: bytes) -> tuple[bytes, Descriptor, Descriptor]:
    """Write a one-layer OCI artifact (empty config, `payload` as its layer) into `store`'s
    content; returns (manifest bytes, config descriptor, layer descriptor)."""
    from builder.content import write_bytes
    from registry.oci import Descriptor, canonical_bytes, mediatypes

    empty = write_bytes(store.content, mediatypes.EMPTY_JSON)
    blob = write_bytes(store.content, payload)
    config = Descriptor(mediatypes.OCI_EMPTY, empty.digest, empty.size)
    layer = Descriptor("application/vnd.example.cache.layer", blob.digest, blob.size)
    data = canonical_bytes({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                            "artifactType": "application/vnd.example.cache.v1",
                            "config": config.to_json(), "layers": [layer.to_json()]})
    return data, config, layer
