"""Configuration layering and the `strata-registry` process: serve, workers, logs, reindex."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tooling import free_port
from transfer_registries import wait_for_v2

from registry.oci import mediatypes as mt
from registry.server.__main__ import main
from registry.server.config import ConfigError, load_config
from registry.server.params import DIRECT_BODY_MIN
from registry.storage import RootLock


def test_defaults() -> None:
    config = load_config(env={})
    assert config.addr == "127.0.0.1:5000"
    assert config.workers == 1
    assert config.delete_enabled is False
    assert config.log_format == "text"


def test_toml_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text('addr = "127.0.0.1:6000"\nworkers = 3\ndelete_enabled = true\n'
                    'root = "/srv/reg"\n')
    config = load_config(path, env={})
    assert (config.port, config.workers, config.delete_enabled) == (6000, 3, True)
    assert config.root == Path("/srv/reg")
    config = load_config(path, env={"STRATA_REGISTRY_WORKERS": "2",
                                    "STRATA_REGISTRY_DELETE_ENABLED": "false"})
    assert (config.workers, config.delete_enabled) == (2, False)
    config = load_config(path, env={"STRATA_REGISTRY_WORKERS": "2"},
                         overrides={"workers": 5, "addr": None})
    assert config.workers == 5 and config.port == 6000


@pytest.mark.parametrize("text,message", [
    ('workers = 0', "workers"),
    ('log_format = "xml"', "log_format"),
    ('nonsense = 1', "nonsense"),
    ('addr = "nohost"', "addr"),
    ('delete_enabled = "perhaps"', "delete_enabled"),
    ('workers = [', "registry.toml"),
    ('send_timeout_seconds = 0', "send_timeout_seconds"),
    ('send_timeout_seconds = 3e6', "send_timeout_seconds"),
])
def test_bad_config_names_the_option(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path, env={})


def test_bad_env_value_is_config_error() -> None:
    with pytest.raises(ConfigError, match="workers"):
        load_config(env={"STRATA_REGISTRY_WORKERS": "many"})


def test_cli_reports_config_errors_with_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode() if err is not None else ""


def _wait_for_lines(path: Path, needle: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text().count(needle) < count:
        if time.monotonic() > deadline:
            raise AssertionError(path.read_text())
        time.sleep(0.05)


@contextlib.contextmanager
def _two_workers(tmp_path: Path, *extra: str) -> Iterator[tuple[int, Path]]:
    """`serve --workers 2` on a free port, both workers listening: yields the port and the
    log's path, then stops the server and checks that it exited cleanly."""
    port = free_port()
    log_path = tmp_path / "log"
    proc = _serve(tmp_path, port, "--workers", "2", *extra, log=log_path)
    try:
        _wait_for_lines(log_path, "listening on", 2)
        yield port, log_path
    finally:
        _stop(proc)
    assert proc.returncode == 0


def _serve(tmp_path: Path, port: int, *extra: str, log: Path | None = None,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`python -m registry.server serve` on 127.0.0.1:`port` with root tmp_path/root, output
    to `log` (discarded when None); returns once /v2/ answers (the process is stopped if not)."""
    with open(log or os.devnull, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "registry.server", "serve", "--addr", f"127.0.0.1:{port}",
             "--root", str(tmp_path / "root"), *extra],
            stdout=out, stderr=out, env=env)
    try:
        wait_for_v2(f"http://127.0.0.1:{port}", proc)
    except BaseException:
        _stop(proc)
        raise
    return proc


def test_serve_with_two_workers_logs_json_access_lines(tmp_path: Path) -> None:
    with _two_workers(tmp_path, "--log-format", "json") as (port, log_path):
        url = f"http://127.0.0.1:{port}"
        for _ in range(20):
            with urllib.request.urlopen(url + "/v2/") as resp:
                assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        data = b"hello from a worker"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(f"{url}/v2/app/blobs/uploads/?digest={digest}",
                                     data=data, method="POST")
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 201
        for _ in range(10):  # every worker sees the blob
            with urllib.request.urlopen(f"{url}/v2/app/blobs/{digest}") as resp:
                assert resp.read() == data
    err = log_path.read_text()
    assert "Traceback" not in err
    pids = set()
    access = []
    for line in err.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "method" in record:
            access.append(record)
        elif "listening" in record.get("msg", ""):
            pids.add(record["msg"])
    assert len(pids) == 2, err
    assert access, err
    first = access[0]
    assert {"method", "path", "status", "bytes", "duration_ms", "client"} <= set(first)
    assert first["client"] == "127.0.0.1"
    assert any(r["path"].startswith("/v2/app/blobs/") and r["status"] == 200 and
               r["bytes"] == len(data) for r in access)


def test_a_client_that_hangs_up_mid_body_is_logged_as_499_not_500(tmp_path: Path) -> None:
    """A client gone mid-upload is logged without a traceback: 499 (nginx's "client closed
    request") for a small body (aiohttp's) and a pull cut off in the middle; a large body
    (SocketBody), which a half-closed client could still be answered, 400 (as nginx does)."""
    port = free_port()
    log_path = tmp_path / "log"
    proc = _serve(tmp_path, port, log=log_path)
    try:
        for sent, length in ((3, 10), (DIRECT_BODY_MIN // 2, DIRECT_BODY_MIN * 2)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/v2/app/blobs/uploads/", headers={"Content-Length": "0"})
            resp = conn.getresponse()
            resp.read()
            conn.putrequest("PATCH", resp.headers["Location"])
            conn.putheader("Content-Length", str(length))
            conn.endheaders(b"x" * sent)
            conn.close()
        _wait_for_lines(log_path, " 499 ", 1)
        _wait_for_lines(log_path, " 400 ", 1)
        # and a pull cut off in the middle of its sendfile
        data = os.urandom(32 * 1024 * 1024)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/app/blobs/uploads/?digest={digest}", data=data,
            method="POST")
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 201
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/v2/app/blobs/{digest}")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read(65536)
        conn.close()
        _wait_for_lines(log_path, " 499 ", 2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/") as resp:
            assert resp.status == 200
    finally:
        _stop(proc)
    log = log_path.read_text()
    assert "Traceback" not in log and " 500 " not in log, log


def test_long_tokens_and_urls_are_served(tmp_path: Path) -> None:
    """aiohttp answers a bare 400 past 8190 bytes of request line or header field; a 20 KB
    bearer token and a 12 KB URL are normal for registry clients."""
    port = free_port()
    proc = _serve(tmp_path, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v2/?" + "x" * 12_000,
                     headers={"Authorization": "Bearer " + "t" * 20_000})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        conn.close()
    finally:
        _stop(proc)


def test_upload_session_continues_on_any_worker(tmp_path: Path) -> None:
    """Each request opens a new connection, so the kernel spreads them over both workers."""
    with _two_workers(tmp_path) as (port, log_path):
        url = f"http://127.0.0.1:{port}"
        for _ in range(3):
            data = os.urandom(40_000)
            req = urllib.request.Request(f"{url}/v2/multi/blobs/uploads/", method="POST")
            with urllib.request.urlopen(req) as resp:
                location = resp.headers["Location"]
            for start in range(0, len(data), 10_000):
                req = urllib.request.Request(
                    url + location, data=data[start:start + 10_000], method="PATCH",
                    headers={"Content-Range": f"{start}-{start + 9_999}"})
                with urllib.request.urlopen(req) as resp:
                    assert resp.status == 202
                    assert resp.headers["Range"] == f"0-{start + 9_999}"
                    location = resp.headers["Location"]
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            req = urllib.request.Request(f"{url}{location}?digest={digest}", data=b"",
                                         method="PUT")
            with urllib.request.urlopen(req) as resp:
                assert resp.status == 201
            for _ in range(4):
                with urllib.request.urlopen(f"{url}/v2/multi/blobs/{digest}") as resp:
                    assert resp.read() == data


def test_large_chunks_share_one_connection_and_one_worker(tmp_path: Path) -> None:
    """Chunks of 4 MiB or more come straight from the socket; each worker hands the connection
    back to its server afterwards, so the whole upload stays on one keep-alive connection (and
    one worker's live hasher)."""
    with _two_workers(tmp_path) as (port, log_path):
        size = DIRECT_BODY_MIN + 12_345
        data = os.urandom(3 * size)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v2/keep/blobs/uploads/")
        resp = conn.getresponse()
        resp.read()
        location = resp.headers["Location"]
        sock = conn.sock
        for start in range(0, 2 * size, size):
            conn.request("PATCH", location, body=data[start:start + size],
                         headers={"Content-Range": f"{start}-{start + size - 1}"})
            resp = conn.getresponse()
            resp.read()
            assert (resp.status, resp.headers["Range"]) == (202, f"0-{start + size - 1}")
            assert resp.headers["Connection"] is None
            location = resp.headers["Location"]
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        conn.request("PUT", f"{location}?digest={digest}", body=data[2 * size:])
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201
        conn.request("GET", f"/v2/keep/blobs/{digest}")
        resp = conn.getresponse()
        assert resp.read() == data
        assert conn.sock is sock  # one connection from start to end
        conn.close()


def _request(url: str, method: str, data: bytes = b"",
             headers: dict[str, str] | None = None) -> int:
    """The status of one request on a connection of its own."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_conditional_tag_puts_racing_on_two_workers_let_exactly_one_win(
        tmp_path: Path) -> None:
    """`If-None-Match: *` is checked in the write itself: of 24 racing first pushes of one
    tag, each on a new connection (the kernel spreads them over both workers), one gets 201
    and the others 412."""
    with _two_workers(tmp_path) as (port, log_path):
        url = f"http://127.0.0.1:{port}/v2/race"
        config = b"{}"
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        assert _request(f"{url}/blobs/uploads/?digest={digest}", "POST", config) == 201
        manifests = [json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest, "size": len(config)},
            "layers": [], "annotations": {"n": str(i)}}).encode() for i in range(24)]
        with concurrent.futures.ThreadPoolExecutor(len(manifests)) as pool:
            statuses = list(pool.map(lambda body: _request(
                f"{url}/manifests/latest", "PUT", body, {
                    "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                    "If-None-Match": "*"}), manifests))
        assert sorted(statuses) == [201] + [412] * 23
        winner = manifests[statuses.index(201)]
        with urllib.request.urlopen(f"{url}/manifests/latest") as resp:
            assert resp.read() == winner


def test_a_commit_racing_a_cancel_on_two_workers_ends_one_way(tmp_path: Path) -> None:
    """PUT ?digest= and DELETE of one session, sent at once on new connections (so over both
    workers): never a 500, and exactly one of them wins. The cancel waits for the commit's
    writer; once the commit has taken the data, the session is gone (404)."""
    with _two_workers(tmp_path) as (port, _):
        url = f"http://127.0.0.1:{port}"
        outcomes = set()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for _ in range(40):
                data = os.urandom(100_000)
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                req = urllib.request.Request(f"{url}/v2/race/blobs/uploads/", method="POST")
                with urllib.request.urlopen(req) as resp:
                    location = url + resp.headers["Location"]
                assert _request(location, "PATCH", data, {"Content-Range": "0-99999"}) == 202
                put = pool.submit(_request, f"{location}?digest={digest}", "PUT")
                delete = pool.submit(_request, location, "DELETE")
                statuses = (put.result(), delete.result())
                assert statuses in ((201, 404), (404, 204)), statuses
                blob = _request(f"{url}/v2/race/blobs/{digest}", "HEAD")
                assert blob == (200 if statuses[0] == 201 else 404)
                outcomes.add(statuses)
        assert outcomes  # (which one wins is up to the race)


def test_upload_session_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = os.urandom(30_000)
    proc = _serve(tmp_path, port)
    try:
        with urllib.request.urlopen(urllib.request.Request(
                f"{url}/v2/restart/blobs/uploads/", method="POST")) as resp:
            location = resp.headers["Location"]
        with urllib.request.urlopen(urllib.request.Request(
                url + location, data=data[:20_000], method="PATCH",
                headers={"Content-Range": "0-19999"})) as resp:
            location = resp.headers["Location"]
    finally:
        _stop(proc)
    proc = _serve(tmp_path, port)
    try:
        with urllib.request.urlopen(url + location) as resp:
            assert resp.status == 204
            assert resp.headers["Range"] == "0-19999"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with urllib.request.urlopen(urllib.request.Request(
                f"{url}{location}?digest={digest}", data=data[20_000:], method="PUT",
                headers={"Content-Range": "20000-29999"})) as resp:
            assert resp.status == 201
        with urllib.request.urlopen(f"{url}/v2/restart/blobs/{digest}") as resp:
            assert resp.read() == data
    finally:
        _stop(proc)


def test_reindex_command_counts_repositories(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "root"
    _stop(_serve(tmp_path, port, env={**os.environ, "STRATA_REGISTRY_ACCESS_LOG": "false"}))
    out = subprocess.run([sys.executable, "-m", "registry.server", "reindex", "--root", str(root)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "reindexed 0 repositories" in out.stdout


def _gc(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registry.server", "gc", "--root", str(root),
                           *extra], capture_output=True, text=True, timeout=60)


def test_gc_runs_with_the_server_stopped_and_frees_a_deleted_images_layers(
        tmp_path: Path) -> None:
    """Then `--delete-untagged` frees the image a moved tag left behind."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/acme/app"
    root = tmp_path / "root"
    blobs = {name: name.encode() * 1000 for name in ("config", "kept", "gone", "old")}
    digests = {name: "sha256:" + hashlib.sha256(b).hexdigest() for name, b in blobs.items()}

    def manifest(layer: str) -> bytes:
        return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {
            "mediaType": mt.OCI_CONFIG, "digest": digests["config"], "size": 6000},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": digests[layer],
                        "size": len(blobs[layer])}]}).encode()

    proc = _serve(tmp_path, port, "--delete-enabled")
    try:
        for name, data in blobs.items():
            assert _request(f"{url}/blobs/uploads/?digest={digests[name]}", "POST", data) == 201
        for tag, layer in (("keep", "old"), ("keep", "kept"), ("drop", "gone")):
            assert _request(f"{url}/manifests/{tag}", "PUT", manifest(layer),
                            {"Content-Type": mt.OCI_MANIFEST}) == 201
        dropped = "sha256:" + hashlib.sha256(manifest("gone")).hexdigest()
        assert _request(f"{url}/manifests/{dropped}", "DELETE") == 202
        busy = _gc(root)
        assert busy.returncode == 2 and "being served" in busy.stderr
    finally:
        _stop(proc)

    dry = _gc(root, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {
        "repositories": 1, "manifests": 2, "manifests_removed": 0, "untagged": [],
        "links_removed": 1,
        "blobs_removed": 2, "orphans_removed": 0, "bytes_freed": 4000 + len(manifest("gone")),
        "dry_run": True}
    gone_file = root / "blobs" / "sha256" / digests["gone"][7:9] / digests["gone"][7:] / "data"
    assert gone_file.is_file()
    real = _gc(root)
    assert real.returncode == 0, real.stderr
    assert "removed 1 repository links, 2 blobs" in real.stdout
    assert not gone_file.exists()
    untagged = _gc(root, "--delete-untagged")
    assert untagged.returncode == 0, untagged.stderr
    assert "removed 1 untagged manifests, 2 repository links, 2 blobs" in untagged.stdout
    old = "sha256:" + hashlib.sha256(manifest("old")).hexdigest()
    assert untagged.stdout.startswith(f"removed untagged acme/app@{old}\n")

    with RootLock(root, exclusive=True):  # a collection in progress
        refused = subprocess.run(
            [sys.executable, "-m", "registry.server", "serve", "--addr", f"127.0.0.1:{port}",
             "--root", str(root)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "garbage is being collected" in refused.stderr
    proc = _serve(tmp_path, port)
    try:
        assert _request(f"{url}/blobs/{digests['gone']}", "GET") == 404
        assert _request(f"{url}/blobs/{digests['old']}", "GET") == 404
        assert _request(f"{url}/manifests/{old}", "GET",
                        headers={"Accept": mt.OCI_MANIFEST}) == 404
        assert _request(f"{url}/blobs/{digests['kept']}", "GET") == 200
        assert _request(f"{url}/manifests/keep", "GET",
                        headers={"Accept": mt.OCI_MANIFEST}) == 200
    finally:
        _stop(proc)


def test_each_worker_listens_with_a_backlog_of_1024(tmp_path: Path) -> None:
    """Connections wait in the listen backlog while a worker is out of descriptors; asyncio's
    own listen() (128) must not shrink it."""
    with _two_workers(tmp_path) as (port, _log):
        out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                             text=True, check=True).stdout
    listening = [line.split() for line in out.splitlines()]
    assert len(listening) == 2 and all(fields[2] == "1024" for fields in listening), out


def test_a_client_that_stops_reading_a_blob_is_reset_after_the_send_timeout(
        tmp_path: Path) -> None:
    """aiohttp has no write timeout: a client that sent a GET and never read held its
    connection, and its response, for as long as it lived."""
    port = free_port()
    log_path = tmp_path / "log"
    blob = os.urandom(32 << 20)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    env = {**os.environ, "STRATA_REGISTRY_SEND_TIMEOUT_SECONDS": "2"}
    proc = _serve(tmp_path, port, log=log_path, env=env)
    try:
        url = f"http://127.0.0.1:{port}/v2/stalled/blobs"
        assert _request(f"{url}/uploads/?digest={digest}", "POST", blob) == 201
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET /v2/stalled/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(8)  # not reading: a zero window, probed and answered, past the timeout
        received = 0
        with pytest.raises(ConnectionResetError):
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        sock.close()
        assert received < len(blob)
        # the server goes on serving, and a client that reads gets the whole blob
        with urllib.request.urlopen(f"{url}/{digest}") as resp:
            assert hashlib.sha256(resp.read()).hexdigest() == digest[7:]
    finally:
        _stop(proc)
    log = log_path.read_text()
    assert "Traceback" not in log and " 500 " not in log, log


def _low_open_file_limit() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))


def test_idle_connections_close_and_a_descriptor_flood_is_one_log_line(tmp_path: Path) -> None:
    """A connection that never sends a request closed only after aiohttp's hour; with the
    descriptors spent, asyncio logged a traceback per failed accept (97,430 in 12 s)."""
    port = free_port()
    log_path = tmp_path / "log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "registry.server", "serve", "--addr", f"127.0.0.1:{port}",
             "--root", str(tmp_path / "root")], stdout=out, stderr=out,
            env={**os.environ, "STRATA_REGISTRY_IDLE_TIMEOUT_SECONDS": "2"},
            preexec_fn=_low_open_file_limit)
    socks: list[socket.socket] = []
    try:
        wait_for_v2(f"http://127.0.0.1:{port}", proc)
        for _ in range(300):  # more than the server has descriptors for
            socks.append(socket.create_connection(("127.0.0.1", port)))
        socks[0].sendall(b"GET /v2/ HTTP/1.1\r\n")  # a head begun, never finished
        time.sleep(1)
        for sock in socks[:150]:  # the accepted ones are closed by the server within 2 s
            sock.settimeout(10)
            assert sock.recv(100) == b""
        for sock in socks:
            sock.close()
        socks.clear()
        time.sleep(1.5)  # (asyncio retries accept after a second)
        assert _request(f"http://127.0.0.1:{port}/v2/", "GET") == 200
    finally:
        for sock in socks:
            sock.close()
        _stop(proc)
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert 1 <= log.count("new connections wait") <= 2, log[-3000:]


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (100, 300)); "
            "from registry.server.__main__ import raise_open_file_limit; "
            "assert raise_open_file_limit() == 300; "
            "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 300")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_serve_help_lists_every_option() -> None:
    """`serve --help` carries the option table (config.py's doc): none may go missing."""
    import dataclasses

    from registry.server.config import RegistryConfig

    out = subprocess.run([sys.executable, "-m", "registry.server", "serve", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for option in dataclasses.fields(RegistryConfig):
        assert f"\n    {option.name} " in out.stdout, option.name
    assert "STRATA_REGISTRY_<NAME>" in out.stdout
