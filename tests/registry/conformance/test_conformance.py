"""The OCI distribution-spec conformance suite, ported by hand to pytest.

Ported from github.com/opencontainers/distribution-spec, folder conformance/ (Ginkgo v2 suite),
read at these commits: setup.go and 03_discovery_test.go at b5f09ebe541c, 01_pull_test.go at
47008ca930b5, 02_push_test.go at 11b8e3fba7d2, 04_management_test.go at 3c7a4ac8186f, image.go
at 3ec8a56d897b (JSON shapes), 00_conformance_suite_test.go at 81bb239e0c8e (workflow order).
Every `g.Specify` of those four workflows (but the few left out below) is one case of
`test_conformance`, in the suite's order, named after what it checks: 79 checks per target.
The older split files (01_base_api_route_test.go at 668a6a9230f2; 02..09_*_test.go and
05_referrers.go at 4c5b810d62df, 3af85efc56ec, 3849c1fdaa5d, 2560a81092d7) add three checks
the classic files lack, ported in place: the base route (`base_get_v2_is_200`), a closing PUT
that carries the last chunk (`push_chunked_put_with_final_chunk_is_201`, with a blob of its
own so the registry cannot hold it already) and a GET of the first listed tag
(`discovery_get_manifest_of_first_listed_tag_is_200`).

The suite's environment variables are fixed choices:

- OCI_ROOT_URL: a registry process of its own on loopback per target (below).
- OCI_NAMESPACE: one repository per workflow, `oci-conformance/{pull,push,discovery,
  management}`, so workflows never see each other's tags (the Go suite runs all four in one
  repository, one after another, each cleaning up after itself: same tags and counts).
- OCI_CROSSMOUNT_NAMESPACE: `oci-conformance/crossmount`.
- OCI_TEST_PULL, OCI_TEST_PUSH, OCI_TEST_CONTENT_DISCOVERY, OCI_TEST_CONTENT_MANAGEMENT: all on.
  This version has no switch of its own for referrers: they are part of content discovery.
- OCI_AUTOMATIC_CROSSMOUNT=1: strata-registry mounts a blob named by `?mount=` without `from`
  when some repository still links it (README, blob uploads). The check runs against a
  repository that does not hold the blob yet (`oci-conformance/crossmount-automatic`), so only
  the registry finding the blob by itself can answer 201.
- OCI_DELETE_MANIFEST_BEFORE_BLOBS: unset (true): teardowns delete manifests first.
- OCI_USERNAME/OCI_PASSWORD/OCI_AUTH_SCOPE unset (no auth); OCI_TAG_NAME, OCI_TAG_LIST,
  OCI_BLOB_DIGEST, OCI_MANIFEST_DIGEST unset, so every setup step pushes its own content.
- OCI_DEBUG, OCI_REPORT_DIR, OCI_HIDE_SKIPPED_WORKFLOWS: no equivalent (pytest reports).

Targets (module-scoped, one registry each): strata-registry with 1 worker, with `--workers 2`,
and Debian's docker-registry (CNCF distribution 2.8.2, the project's anchor), to show the
checks test the spec and not strata. The anchor fails exactly the checks in
`ANCHOR_KNOWN_FAILURES`; a listed check that passes there fails the test, so the list stays true.

State: as in the Go suite, the steps of a workflow hand values on (a session URL, the last
answer, a tag count) and a step that fails does not stop the next ones. `WorkflowRun` runs a
workflow's steps once per target, in order, up to the one a test asks for, and keeps each
step's outcome, so any single case can run alone and the run is deterministic.

Deliberate differences (tests here never skip, and a conditional Go check must still assert):
- Deletes are enabled on every target, so where the suite also accepts "deletes disabled"
  (405 on DELETE, 200 on the GET after it, the `blobDeleteAllowed` skip) only the enabled
  path is accepted. Other alternatives the suite accepts (201 or 202, 200 or 404, 400
  `UNSUPPORTED` for a refused tag delete, 404 for content already gone) are kept.
- Cross-mount: the suite checks the mounted blob when the mount answered 201 and the session
  when it answered 202; `push_crossmount_mounted_blob_is_readable` asserts whichever applies,
  and `push_crossmount_nonexistent_blob_yields_session` mounts a blob no repository has,
  which must fall back to a session as its name says. The "automatic cross-mount disabled,
  202" check is left out (OCI_AUTOMATIC_CROSSMOUNT is 1).
- `last` on the tag list: the Go check never reads the second page (it asserts the first page
  contains its own last element); the port asserts the second page is the full listing's
  continuation after `last`, at most `n` tags.
- Configs carry a fixed author per workflow instead of a random one, and the random blobs come
  from a seeded generator: every target gets fresh storage, so digests need not be unique.

Left out: the steps that only read OCI_TAG_NAME / OCI_TAG_LIST when setup is turned off
("Get tag name from environment", "Populate registry with test tags (no push)"); the variants
for OCI_DELETE_MANIFEST_BEFORE_BLOBS=0; and from the older split files, the checks a later
spec revision reversed (07_error_codes: a tag DELETE must return an error body; 08: a tag
DELETE MUST fail and the manifest stays) and the ones the classic files repeat (05_referrers.go
is the same references setup and queries, with an older `OCI-Filters-Applied` value).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import random
import tarfile
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from transfer_registries import RunningRegistry, start_docker_registry, start_strata_registry

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_JSON_TYPE = "application/vnd.oci.empty.v1+json"
OCTET_STREAM = "application/octet-stream"
USER_AGENT = "distribution-spec-conformance-tests"

NAMESPACE_ROOT = "oci-conformance"
CROSSMOUNT_NAMESPACE = f"{NAMESPACE_ROOT}/crossmount"
AUTOMATIC_CROSSMOUNT_NAMESPACE = f"{NAMESPACE_ROOT}/crossmount-automatic"
TEST_TAG = "tagtest0"
EMPTY_LAYER_TAG = "emptylayer"
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
INVALID_MANIFEST = b"blablabla"
DUMMY_DIGEST = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
ANNOTATION_KEY = "org.opencontainers.conformance.test"
ARTIFACT_TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
ARTIFACT_TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
ARTIFACT_TYPE_INDEX = "application/vnd.food.stand"
ERROR_CODES = frozenset({
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_UNVERIFIED",
    "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "TAG_INVALID", "UNAUTHORIZED", "DENIED",
    "UNSUPPORTED"})

ANCHOR = "docker-registry"
STRATA_WORKERS = {"strata-registry-1-worker": 1, "strata-registry-2-workers": 2}
TARGETS = (*STRATA_WORKERS, ANCHOR)

# The checks distribution 2.8.2 fails, each with the reason (found by running it).
_NO_REFERRERS_API = "no referrers API: GET /v2/NAME/referrers/DIGEST is 404"
_NO_TAG_PAGINATION = "the tag list ignores `n` and `last` and is not in lexical order"
ANCHOR_KNOWN_FAILURES: dict[str, str] = {
    "pull_error_body_is_oci_json": "GET of manifest `sha256:totallywrong` is 500 UNKNOWN",
    "push_chunked_out_of_order_chunk_is_416": "a PATCH's Content-Range is not checked: 202",
    "push_chunked_retry_of_previous_chunk_is_416":
        "a PATCH to a stale session URL is 404 BLOB_UPLOAD_INVALID and cancels the upload",
    "push_chunked_status_of_stale_session_is_204_with_range":
        "the stale retry cancelled the upload: its status is 404",
    "push_crossmount_automatic_without_from_is_201":
        "mounts only with `from`; `?mount=` alone opens a session (202)",
    "discovery_setup_references": "no OCI-Subject header: a manifest's subject is ignored",
    "discovery_tags_limited_by_n": _NO_TAG_PAGINATION,
    "discovery_tags_start_after_last": _NO_TAG_PAGINATION,
    "discovery_referrers_of_unknown_digest_is_empty_index": _NO_REFERRERS_API,
    "discovery_referrers_of_subject_lists_all_five": _NO_REFERRERS_API,
    "discovery_referrers_filtered_by_artifact_type": _NO_REFERRERS_API,
    "discovery_referrers_of_missing_subject_lists_its_referrer": _NO_REFERRERS_API,
    "discovery_teardown_delete_manifests_and_tags":
        "a manifest DELETE by tag is 400 DIGEST_INVALID (tags cannot be deleted)",
    "management_delete_tag_is_202_or_400_unsupported":
        "a manifest DELETE by tag is 400 DIGEST_INVALID, neither 202 nor 400 UNSUPPORTED",
}


# --------------------------------------------------------------------------- test content


@dataclass(frozen=True)
class Blob:
    content: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class ChunkedBlob:
    """A blob pushed in two chunks: the first is one byte longer than half (setup.go)."""

    blob: Blob

    @classmethod
    def random(cls, size: int, seed: int) -> ChunkedBlob:
        return cls(Blob(random.Random(seed).randbytes(size)))

    @property
    def split(self) -> int:
        return len(self.blob.content) // 2 + 1

    @property
    def first(self) -> bytes:
        return self.blob.content[:self.split]

    @property
    def second(self) -> bytes:
        return self.blob.content[self.split:]

    @property
    def first_range(self) -> str:
        return f"0-{self.split - 1}"

    @property
    def second_range(self) -> str:
        return f"{self.split}-{len(self.blob.content) - 1}"


def _encode(document: dict[str, Any]) -> Blob:
    """JSON indented with tabs, as Go's json.MarshalIndent(v, "", "\\t") writes it."""
    return Blob(json.dumps(document, indent="\t").encode())


def _descriptor(media_type: str, blob: Blob, *, data: bytes | None = None,
                unspecified: bytes | None = None) -> dict[str, Any]:
    """A descriptor as image.go marshals it: `newUnspecifiedField` is always present (null
    unless set) to check that registries keep fields they do not know."""
    out: dict[str, Any] = {"mediaType": media_type, "digest": blob.digest,
                           "size": len(blob.content)}
    if data is not None:
        out["data"] = base64.b64encode(data).decode()
    out["newUnspecifiedField"] = None if unspecified is None else base64.b64encode(
        unspecified).decode()
    return out


def _config(author: str) -> Blob:
    return _encode({"author": author, "architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []}})


def _layer_tarball() -> Blob:
    """A gzipped tar holding test.txt, the suite's layer (made here rather than decoded)."""
    text = b"you bothered to find out what was in here. Congratulations!\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("test.txt")
        info.size, info.mode = len(text), 0o644
        tar.addfile(info, io.BytesIO(text))
    return Blob(gzip.compress(raw.getvalue(), mtime=0))


def _image_config_descriptor(config: Blob) -> dict[str, Any]:
    return _descriptor(CONFIG_TYPE, config, data=config.content, unspecified=b"hello world")


# One config and image manifest per workflow slot, as setup.go makes them (0 pull, 1 push,
# 2 discovery, 3 management and the missing subject, 4 the referrers' subject).
CONFIGS = [_config(f"oci-conformance-{i}") for i in range(5)]
LAYER = _layer_tarball()
MANIFESTS = [_encode({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                      "config": _image_config_descriptor(config),
                      "layers": [_descriptor(LAYER_TYPE, LAYER)]}) for config in CONFIGS]
EMPTY_LAYER_MANIFEST = _encode({"schemaVersion": 2,
                                "config": _image_config_descriptor(CONFIGS[1]), "layers": []})
TEST_BLOB_A = Blob(random.Random(1).randbytes(42))
CHUNKED_BLOB = ChunkedBlob.random(42, seed=2)
FINAL_CHUNK_BLOB = ChunkedBlob.random(42, seed=3)

EMPTY_JSON = Blob(b"{}")
REF_BLOB_A = Blob(b"NHL Peanut Butter on my NHL bagel")
REF_BLOB_B = Blob(b"NBA Strawberry Jam on my NBA croissant")


def _referrer(subject: Blob, artifact_type: str, blob: Blob, *, in_config: bool,
              annotation: str | None) -> Blob:
    """An artifact manifest pointing at `subject`: its type either as the config's media
    type (layers: the empty JSON blob) or as `artifactType` (config: the empty JSON blob)."""
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE}
    if in_config:
        document["config"] = _descriptor(artifact_type, blob)
        document["layers"] = [_descriptor(EMPTY_JSON_TYPE, EMPTY_JSON)]
    else:
        document["artifactType"] = artifact_type
        document["config"] = _descriptor(EMPTY_JSON_TYPE, EMPTY_JSON)
        document["layers"] = [_descriptor(artifact_type, blob)]
    document["subject"] = _descriptor(MANIFEST_TYPE, subject)
    if annotation is not None:
        document["annotations"] = {ANNOTATION_KEY: annotation}
    return _encode(document)


REFS_A_CONFIG = _referrer(MANIFESTS[4], ARTIFACT_TYPE_A, REF_BLOB_A, in_config=True,
                          annotation="test config a")
REFS_B_CONFIG = _referrer(MANIFESTS[4], ARTIFACT_TYPE_B, REF_BLOB_B, in_config=True,
                          annotation="test config b")
REFS_A_LAYER = _referrer(MANIFESTS[4], ARTIFACT_TYPE_A, REF_BLOB_A, in_config=False,
                         annotation="test layer a")
REFS_B_LAYER = _referrer(MANIFESTS[4], ARTIFACT_TYPE_B, REF_BLOB_B, in_config=False,
                         annotation="test layer b")
REFS_C_LAYER = _referrer(MANIFESTS[3], ARTIFACT_TYPE_B, REF_BLOB_B, in_config=False,
                         annotation=None)
REFS_INDEX = _encode({
    "schemaVersion": 2, "mediaType": INDEX_TYPE, "artifactType": ARTIFACT_TYPE_INDEX,
    "manifests": [_descriptor(MANIFEST_TYPE, REFS_A_CONFIG),
                  _descriptor(MANIFEST_TYPE, REFS_A_LAYER)],
    "subject": _descriptor(MANIFEST_TYPE, MANIFESTS[4]),
    "annotations": {ANNOTATION_KEY: "test index"}})
ANNOTATIONS_BY_DIGEST = {
    REFS_A_CONFIG.digest: "test config a", REFS_B_CONFIG.digest: "test config b",
    REFS_A_LAYER.digest: "test layer a", REFS_B_LAYER.digest: "test layer b",
    REFS_INDEX.digest: "test index"}


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Response:
    request: str
    status: int
    headers: Message
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def relative_location(self) -> str:
        """Path and query of `Location` (reggie's GetRelativeLocation)."""
        location = urllib.parse.urlsplit(self.header("Location"))
        return location.path + (f"?{location.query}" if location.query else "")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AssertionError(f"{self.request}: body is not JSON: {self.body[:200]!r}") from exc

    def error_codes(self) -> list[str]:
        """The `code` of each entry of the spec's `{"errors": [...]}` body."""
        document = self.json()
        assert isinstance(document, dict), f"{self.request}: error body {document!r}"
        return [str(entry.get("code")) for entry in document.get("errors") or []]

    def __str__(self) -> str:
        return f"{self.request} -> {self.status} {self.body[:300]!r}"


def expect_status(response: Response, *allowed: int) -> None:
    assert response.status in allowed, f"expected {allowed}: {response}"


def expect_success(response: Response, *also: int) -> None:
    """A 2xx answer (or one of `also`), the suite's BeNumerically(">=", 200) and ("<", 300)."""
    assert 200 <= response.status < 300 or response.status in also, f"expected 2xx: {response}"


def expect_location(response: Response) -> None:
    assert response.header("Location"), f"no Location: {response}"


def expect_digest_header(response: Response, digest: str) -> None:
    """Docker-Content-Digest is optional, but names `digest` when present."""
    if response.header("Docker-Content-Digest"):
        assert response.header("Docker-Content-Digest") == digest, str(response)


# --------------------------------------------------------------------------- workflows


@dataclass
class Session:
    """A workflow's registry and repository, and the values its steps hand on (the Go
    suite's closure variables: lastResponse, prevResponse, tag, tagList, numTags, ...)."""

    host: str
    namespace: str
    last: Response | None = None
    prev: Response | None = None
    tag: str = ""
    tags: list[str] = field(default_factory=list)
    num_tags: int = 0
    empty_layer_location: str = ""
    chunked: ChunkedBlob = CHUNKED_BLOB

    def request(self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (),
                headers: dict[str, str] | None = None, body: bytes | None = None) -> Response:
        """One request on a connection of its own, so that with several workers the requests
        of a sequence land on different processes. `path` may carry a query already (a
        session Location); `query` is added to it."""
        split = urllib.parse.urlsplit(path)
        params = urllib.parse.parse_qsl(split.query, keep_blank_values=True) + list(query)
        target = split.path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        connection = http.client.HTTPConnection(self.host, timeout=30)
        try:
            connection.request(method, target, body=body,
                               headers={"User-Agent": USER_AGENT, **(headers or {})})
            answer = connection.getresponse()
            return Response(f"{method} {target}", answer.status, answer.headers, answer.read())
        finally:
            connection.close()

    def blob_path(self, digest: str) -> str:
        return f"/v2/{self.namespace}/blobs/{digest}"

    def manifest_path(self, reference: str) -> str:
        return f"/v2/{self.namespace}/manifests/{reference}"

    def uploads_path(self, namespace: str | None = None) -> str:
        return f"/v2/{namespace or self.namespace}/blobs/uploads/"

    def tags_path(self) -> str:
        return f"/v2/{self.namespace}/tags/list"

    def referrers_path(self, digest: str) -> str:
        return f"/v2/{self.namespace}/referrers/{digest}"

    def start_upload(self) -> Response:
        return self.request("POST", self.uploads_path())

    def put_blob(self, location: str, blob: Blob) -> Response:
        return self.request("PUT", location, query=[("digest", blob.digest)],
                            headers={"Content-Type": OCTET_STREAM}, body=blob.content)

    def put_manifest(self, reference: str, manifest: Blob,
                     media_type: str = MANIFEST_TYPE) -> Response:
        return self.request("PUT", self.manifest_path(reference),
                            headers={"Content-Type": media_type}, body=manifest.content)

    def get_manifest(self, method: str, reference: str) -> Response:
        return self.request(method, self.manifest_path(reference),
                            headers={"Accept": MANIFEST_TYPE})

    def tag_list(self, query: Sequence[tuple[str, str]] = ()) -> tuple[Response, list[str]]:
        response = self.request("GET", self.tags_path(), query=query)
        return response, _tags_of(response)

    def delete(self, path: str) -> Response:
        return self.request("DELETE", path)

    def populate_blob(self, blob: Blob) -> None:
        """POST a session and PUT `blob` into it (the suite's setup steps: any 2xx)."""
        expect_success(self.put_blob(self.start_upload().relative_location, blob))


def _tags_of(response: Response) -> list[str]:
    """The `tags` of a tag list answer; [] when it is none (the suite's getTagList)."""
    try:
        document = json.loads(response.body)
    except ValueError:
        return []
    tags = document.get("tags") if isinstance(document, dict) else None
    return [str(tag) for tag in tags or []]


Step = Callable[[Session], None]
WORKFLOWS: dict[str, list[Step]] = {}
NAMESPACES = {"base": "", "pull": f"{NAMESPACE_ROOT}/pull", "push": f"{NAMESPACE_ROOT}/push",
              "discovery": f"{NAMESPACE_ROOT}/discovery",
              "management": f"{NAMESPACE_ROOT}/management"}


def step(workflow: str) -> Callable[[Step], Step]:
    """Append the decorated check to `workflow`'s steps, in source order."""
    def register(check: Step) -> Step:
        WORKFLOWS.setdefault(workflow, []).append(check)
        return check
    return register


# --------------------------------------------------------------------------- base API route


@step("base")
def base_get_v2_is_200(s: Session) -> None:
    expect_status(s.request("GET", "/v2/"), 200)


# --------------------------------------------------------------------------- pull


@step("pull")
def pull_setup_populate_config0_blob(s: Session) -> None:
    s.populate_blob(CONFIGS[0])


@step("pull")
def pull_setup_populate_config1_blob(s: Session) -> None:
    s.populate_blob(CONFIGS[1])


@step("pull")
def pull_setup_populate_layer(s: Session) -> None:
    s.populate_blob(LAYER)


@step("pull")
def pull_setup_populate_manifest0_by_tag(s: Session) -> None:
    s.tag = TEST_TAG
    expect_success(s.put_manifest(TEST_TAG, MANIFESTS[0]))


@step("pull")
def pull_setup_populate_manifest1_by_digest(s: Session) -> None:
    expect_success(s.put_manifest(MANIFESTS[1].digest, MANIFESTS[1]))


@step("pull")
def pull_head_nonexistent_blob_is_404(s: Session) -> None:
    expect_status(s.request("HEAD", s.blob_path(DUMMY_DIGEST)), 404)


@step("pull")
def pull_head_existing_blob_is_200(s: Session) -> None:
    response = s.request("HEAD", s.blob_path(CONFIGS[0].digest))
    expect_status(response, 200)
    expect_digest_header(response, CONFIGS[0].digest)


@step("pull")
def pull_get_nonexistent_blob_is_404(s: Session) -> None:
    expect_status(s.request("GET", s.blob_path(DUMMY_DIGEST)), 404)


@step("pull")
def pull_get_existing_blob_is_200(s: Session) -> None:
    expect_status(s.request("GET", s.blob_path(CONFIGS[0].digest)), 200)


@step("pull")
def pull_head_nonexistent_manifest_is_404(s: Session) -> None:
    expect_status(s.request("HEAD", s.manifest_path(NONEXISTENT_MANIFEST)), 404)


@step("pull")
def pull_head_manifest0_by_digest_is_200(s: Session) -> None:
    response = s.get_manifest("HEAD", MANIFESTS[0].digest)
    expect_status(response, 200)
    expect_digest_header(response, MANIFESTS[0].digest)


@step("pull")
def pull_head_manifest1_by_digest_is_200(s: Session) -> None:
    response = s.get_manifest("HEAD", MANIFESTS[1].digest)
    expect_status(response, 200)
    expect_digest_header(response, MANIFESTS[1].digest)


@step("pull")
def pull_head_manifest_by_tag_is_200(s: Session) -> None:
    assert s.tag, "no tag from setup"
    response = s.get_manifest("HEAD", s.tag)
    expect_status(response, 200)
    expect_digest_header(response, MANIFESTS[0].digest)


@step("pull")
def pull_get_nonexistent_manifest_is_404(s: Session) -> None:
    expect_status(s.request("GET", s.manifest_path(NONEXISTENT_MANIFEST)), 404)


@step("pull")
def pull_get_manifest0_by_digest_is_200(s: Session) -> None:
    expect_status(s.get_manifest("GET", MANIFESTS[0].digest), 200)


@step("pull")
def pull_get_manifest1_by_digest_is_200(s: Session) -> None:
    expect_status(s.get_manifest("GET", MANIFESTS[1].digest), 200)


@step("pull")
def pull_get_manifest_by_tag_is_200(s: Session) -> None:
    assert s.tag, "no tag from setup"
    expect_status(s.get_manifest("GET", s.tag), 200)


@step("pull")
def pull_error_body_is_oci_json(s: Session) -> None:
    """A GET of a malformed digest reference is 400 with a spec error code, or 404."""
    response = s.request("GET", s.manifest_path("sha256:totallywrong"),
                         headers={"Content-Type": MANIFEST_TYPE}, body=INVALID_MANIFEST)
    expect_status(response, 400, 404)
    if response.status == 400:
        codes = response.error_codes()
        assert codes and codes[0] in ERROR_CODES, str(response)


@step("pull")
def pull_teardown_delete_manifest0(s: Session) -> None:
    expect_success(s.delete(s.manifest_path(MANIFESTS[0].digest)))


@step("pull")
def pull_teardown_delete_manifest1(s: Session) -> None:
    expect_success(s.delete(s.manifest_path(MANIFESTS[1].digest)))


@step("pull")
def pull_teardown_delete_config0_blob(s: Session) -> None:
    expect_success(s.delete(s.blob_path(CONFIGS[0].digest)), 404)


@step("pull")
def pull_teardown_delete_config1_blob(s: Session) -> None:
    expect_success(s.delete(s.blob_path(CONFIGS[1].digest)), 404)


@step("pull")
def pull_teardown_delete_layer_blob(s: Session) -> None:
    expect_success(s.delete(s.blob_path(LAYER.digest)), 404)


# --------------------------------------------------------------------------- push


@step("push")
def push_streamed_patch_with_blob_body_is_202(s: Session) -> None:
    started = s.start_upload()
    expect_location(started)
    response = s.request("PATCH", started.relative_location,
                         headers={"Content-Type": OCTET_STREAM}, body=TEST_BLOB_A.content)
    expect_status(response, 202)
    s.last = response


@step("push")
def push_streamed_put_with_digest_is_201(s: Session) -> None:
    assert s.last is not None, "no session from the PATCH step"
    response = s.request("PUT", s.last.relative_location, query=[("digest", TEST_BLOB_A.digest)],
                         headers={"Content-Type": OCTET_STREAM})
    expect_status(response, 201)
    expect_location(response)


@step("push")
def push_monolithic_get_nonexistent_blob_is_404(s: Session) -> None:
    expect_status(s.request("GET", s.blob_path(DUMMY_DIGEST)), 404)


@step("push")
def push_monolithic_post_with_digest_and_blob_is_201_or_202(s: Session) -> None:
    response = s.request("POST", s.uploads_path(), query=[("digest", CONFIGS[1].digest)],
                         headers={"Content-Type": OCTET_STREAM}, body=CONFIGS[1].content)
    expect_location(response)
    expect_status(response, 201, 202)
    s.last = response


@step("push")
def push_monolithic_blob_of_prior_post_is_200_or_404(s: Session) -> None:
    """200 when the POST stored the blob (201), 404 when it only opened a session (202)."""
    assert s.last is not None, "no answer from the POST step"
    response = s.request("GET", s.blob_path(CONFIGS[1].digest))
    expect_status(response, 404 if s.last.status == 202 else 200)


@step("push")
def push_monolithic_post_yields_session(s: Session) -> None:
    response = s.start_upload()
    expect_status(response, 202)
    s.last = response


@step("push")
def push_monolithic_put_blob_is_201(s: Session) -> None:
    assert s.last is not None, "no session from the POST step"
    response = s.put_blob(s.last.relative_location, CONFIGS[1])
    expect_location(response)
    expect_status(response, 201)


@step("push")
def push_monolithic_get_existing_blob_is_200(s: Session) -> None:
    expect_status(s.request("GET", s.blob_path(CONFIGS[1].digest)), 200)


@step("push")
def push_monolithic_put_layer_blob_is_201(s: Session) -> None:
    response = s.put_blob(s.start_upload().relative_location, LAYER)
    expect_location(response)
    expect_status(response, 201)


@step("push")
def push_monolithic_get_existing_layer_is_200(s: Session) -> None:
    expect_status(s.request("GET", s.blob_path(LAYER.digest)), 200)


def _start_empty_upload(s: Session) -> Response:
    response = s.request("POST", s.uploads_path(), headers={"Content-Length": "0"}, body=b"")
    expect_location(response)
    return response


def _patch_chunk(s: Session, location: str, chunk: bytes, content_range: str) -> Response:
    return s.request("PATCH", location, body=chunk,
                     headers={"Content-Type": OCTET_STREAM, "Content-Range": content_range})


@step("push")
def push_chunked_out_of_order_chunk_is_416(s: Session) -> None:
    started = _start_empty_upload(s)
    min_length = started.header("OCI-Chunk-Min-Length")
    if min_length and int(min_length) > len(s.chunked.first):
        s.chunked = ChunkedBlob.random(int(min_length) * 2 - 2, seed=2)
    response = _patch_chunk(s, started.relative_location, s.chunked.second,
                            s.chunked.second_range)
    expect_status(response, 416)


@step("push")
def push_chunked_first_chunk_is_202_with_range(s: Session) -> None:
    started = _start_empty_upload(s)
    s.prev = started
    response = _patch_chunk(s, started.relative_location, s.chunked.first, s.chunked.first_range)
    expect_status(response, 202)
    assert response.header("Range") == s.chunked.first_range, str(response.headers)
    s.last = response


@step("push")
def push_chunked_retry_of_previous_chunk_is_416(s: Session) -> None:
    assert s.prev is not None, "no session from the first chunk step"
    response = _patch_chunk(s, s.prev.relative_location, s.chunked.first, s.chunked.first_range)
    expect_status(response, 416)


@step("push")
def push_chunked_status_of_stale_session_is_204_with_range(s: Session) -> None:
    assert s.prev is not None, "no session from the first chunk step"
    response = s.request("GET", s.prev.relative_location)
    expect_status(response, 204)
    expect_location(response)
    assert response.header("Range") == s.chunked.first_range, str(response.headers)
    s.last = response


@step("push")
def push_chunked_second_chunk_is_202(s: Session) -> None:
    assert s.last is not None, "no session status from the previous step"
    response = _patch_chunk(s, s.last.relative_location, s.chunked.second,
                            s.chunked.second_range)
    expect_status(response, 202)
    expect_location(response)
    s.last = response


@step("push")
def push_chunked_put_with_digest_is_201(s: Session) -> None:
    assert s.last is not None, "no session from the second chunk step"
    response = s.request("PUT", s.last.relative_location,
                         query=[("digest", s.chunked.blob.digest)],
                         headers={"Content-Type": OCTET_STREAM, "Content-Length": "0"}, body=b"")
    expect_status(response, 201)
    expect_location(response)


@step("push")
def push_chunked_put_with_final_chunk_is_201(s: Session) -> None:
    """From 04_blob_upload_chunked_test.go: the closing PUT carries the last chunk (a blob of
    its own, so the registry cannot already hold it)."""
    chunked = FINAL_CHUNK_BLOB
    started = _start_empty_upload(s)
    first = _patch_chunk(s, started.relative_location, chunked.first, chunked.first_range)
    expect_status(first, 202)
    response = s.request("PUT", first.relative_location, query=[("digest", chunked.blob.digest)],
                         headers={"Content-Type": OCTET_STREAM,
                                  "Content-Range": chunked.second_range},
                         body=chunked.second)
    expect_location(response)
    expect_status(response, 201)


@step("push")
def push_crossmount_without_from_yields_session(s: Session) -> None:
    response = s.request("POST", s.uploads_path(CROSSMOUNT_NAMESPACE),
                         query=[("mount", DUMMY_DIGEST)])
    expect_status(response, 202)
    expect_location(response)


@step("push")
def push_crossmount_from_other_repository_is_201_or_202(s: Session) -> None:
    response = s.request("POST", s.uploads_path(CROSSMOUNT_NAMESPACE),
                         query=[("mount", TEST_BLOB_A.digest), ("from", s.namespace)])
    expect_status(response, 201, 202)
    s.last = response


@step("push")
def push_crossmount_mounted_blob_is_readable(s: Session) -> None:
    """After a 201 the blob is at Location in the cross-mount repository; after a 202 the
    Location is an upload session there."""
    assert s.last is not None, "no answer from the mount step"
    if s.last.status == 201:
        assert s.last.relative_location == (
            f"/v2/{CROSSMOUNT_NAMESPACE}/blobs/{TEST_BLOB_A.digest}"), str(s.last.headers)
        expect_status(s.request("GET", s.last.relative_location), 200)
    else:
        assert s.last.relative_location.startswith(
            f"/v2/{CROSSMOUNT_NAMESPACE}/blobs/uploads/"), str(s.last.headers)


@step("push")
def push_crossmount_nonexistent_blob_yields_session(s: Session) -> None:
    response = s.request("POST", s.uploads_path(CROSSMOUNT_NAMESPACE),
                         query=[("mount", DUMMY_DIGEST), ("from", s.namespace)])
    expect_status(response, 202)
    assert response.relative_location.startswith(
        f"/v2/{CROSSMOUNT_NAMESPACE}/blobs/uploads/"), str(response.headers)


@step("push")
def push_crossmount_automatic_without_from_is_201(s: Session) -> None:
    response = s.request("POST", s.uploads_path(AUTOMATIC_CROSSMOUNT_NAMESPACE),
                         query=[("mount", TEST_BLOB_A.digest)])
    expect_status(response, 201)


@step("push")
def push_manifest_get_nonexistent_is_404(s: Session) -> None:
    expect_status(s.request("GET", s.manifest_path(NONEXISTENT_MANIFEST)), 404)


@step("push")
def push_manifest_put_by_four_tags_is_201(s: Session) -> None:
    for i in range(4):
        response = s.put_manifest(f"test{i}", MANIFESTS[1])
        expect_location(response)
        expect_status(response, 201)


@step("push")
def push_manifest_without_layers_is_accepted(s: Session) -> None:
    """201 with a Location; any other answer only warns, as in the suite."""
    response = s.put_manifest(EMPTY_LAYER_TAG, EMPTY_LAYER_MANIFEST)
    if response.status == 201:
        expect_location(response)
        s.empty_layer_location = response.header("Location")
    else:
        warnings.warn(f"image manifest with no layers is not supported: {response}",
                      stacklevel=1)


@step("push")
def push_manifest_get_by_digest_is_200(s: Session) -> None:
    expect_status(s.get_manifest("GET", MANIFESTS[1].digest), 200)


@step("push")
def push_teardown_delete_manifests(s: Session) -> None:
    expect_success(s.delete(s.manifest_path(MANIFESTS[1].digest)))
    if s.empty_layer_location:
        expect_success(s.delete(s.manifest_path(EMPTY_LAYER_MANIFEST.digest)))


@step("push")
def push_teardown_delete_config_blob(s: Session) -> None:
    expect_success(s.delete(s.blob_path(CONFIGS[1].digest)), 404)


@step("push")
def push_teardown_delete_layer_blob(s: Session) -> None:
    expect_success(s.delete(s.blob_path(LAYER.digest)), 404)


# --------------------------------------------------------------------------- content discovery


@step("discovery")
def discovery_setup_populate_config2_blob(s: Session) -> None:
    s.populate_blob(CONFIGS[2])


@step("discovery")
def discovery_setup_populate_layer(s: Session) -> None:
    s.populate_blob(LAYER)


@step("discovery")
def discovery_setup_populate_four_tags(s: Session) -> None:
    for i in range(4):
        expect_success(s.put_manifest(f"test{i}", MANIFESTS[2]))
    _, s.tags = s.tag_list()


def _put_referrer(s: Session, manifest: Blob, subject: Blob,
                  media_type: str = MANIFEST_TYPE) -> None:
    response = s.put_manifest(manifest.digest, manifest, media_type)
    expect_success(response)
    assert response.header("OCI-Subject") == subject.digest, (
        f"OCI-Subject of {response.request}: {response.headers}")


@step("discovery")
def discovery_setup_references(s: Session) -> None:
    """Referrers of MANIFESTS[4], some pushed before it and some after, and one of
    MANIFESTS[3], never pushed; each push of a manifest with a subject answers OCI-Subject."""
    assert EMPTY_JSON.digest == EMPTY_JSON_DIGEST
    s.populate_blob(EMPTY_JSON)
    s.populate_blob(REF_BLOB_A)
    _put_referrer(s, REFS_A_CONFIG, MANIFESTS[4])
    _put_referrer(s, REFS_A_LAYER, MANIFESTS[4])
    _put_referrer(s, REFS_INDEX, MANIFESTS[4], INDEX_TYPE)
    s.populate_blob(CONFIGS[4])
    s.populate_blob(LAYER)
    expect_success(s.put_manifest(TEST_TAG, MANIFESTS[4]))
    s.populate_blob(REF_BLOB_B)
    _put_referrer(s, REFS_B_CONFIG, MANIFESTS[4])
    _put_referrer(s, REFS_B_LAYER, MANIFESTS[4])
    _put_referrer(s, REFS_C_LAYER, MANIFESTS[3])


@step("discovery")
def discovery_list_tags_is_200(s: Session) -> None:
    response, tags = s.tag_list()
    expect_status(response, 200)
    s.tags, s.num_tags = tags, len(tags)


@step("discovery")
def discovery_get_manifest_of_first_listed_tag_is_200(s: Session) -> None:
    """From 06_tags_list_test.go."""
    assert s.tags, "the tag list was empty"
    expect_status(s.get_manifest("GET", s.tags[0]), 200)


@step("discovery")
def discovery_tags_limited_by_n(s: Session) -> None:
    count = s.num_tags // 2
    response, page = s.tag_list([("n", str(count))])
    expect_status(response, 200)
    assert len(page) == count, str(response)


@step("discovery")
def discovery_tags_start_after_last(s: Session) -> None:
    count = s.num_tags // 2
    _, first_page = s.tag_list([("n", str(count))])
    assert len(first_page) == count, f"first page {first_page}"
    last = first_page[-1]
    response, second_page = s.tag_list([("n", str(count)), ("last", last)])
    expect_status(response, 200)
    assert last in s.tags, f"{last!r} not in the full listing {s.tags}"
    after = s.tags[s.tags.index(last) + 1:]
    assert second_page == after[:count], f"after {last!r} in {s.tags}: {response}"


def _referrers(s: Session, subject: str,
               query: Sequence[tuple[str, str]] = ()) -> tuple[Response, list[dict[str, Any]]]:
    """GET the referrers of `subject`: a 200 OCI index; its `manifests`."""
    response = s.request("GET", s.referrers_path(subject), query=query)
    expect_status(response, 200)
    assert response.header("Content-Type") == INDEX_TYPE, str(response.headers)
    document = response.json()
    assert isinstance(document, dict), str(response)
    return response, list(document.get("manifests") or [])


def _expect_test_annotations(descriptors: list[dict[str, Any]]) -> None:
    for descriptor in descriptors:
        annotations = descriptor.get("annotations") or {}
        assert len(annotations) == 1, descriptor
        assert annotations.get(ANNOTATION_KEY) == ANNOTATIONS_BY_DIGEST.get(
            descriptor.get("digest", "")), descriptor


@step("discovery")
def discovery_referrers_of_unknown_digest_is_empty_index(s: Session) -> None:
    _, descriptors = _referrers(s, DUMMY_DIGEST)
    assert descriptors == []


@step("discovery")
def discovery_referrers_of_subject_lists_all_five(s: Session) -> None:
    _, descriptors = _referrers(s, MANIFESTS[4].digest)
    assert len(descriptors) == 5, descriptors
    assert descriptors[0].get("digest") != descriptors[1].get("digest")
    _expect_test_annotations(descriptors)


@step("discovery")
def discovery_referrers_filtered_by_artifact_type(s: Session) -> None:
    """With OCI-Filters-Applied the two artifacts of type A; without it (filtering is
    optional) all five."""
    response, descriptors = _referrers(s, MANIFESTS[4].digest, [("artifactType", ARTIFACT_TYPE_A)])
    if response.header("OCI-Filters-Applied"):
        assert len(descriptors) == 2, descriptors
        assert response.header("OCI-Filters-Applied") == "artifactType"
    else:
        assert len(descriptors) == 5, descriptors
        warnings.warn("filtering by artifact-type is not implemented", stacklevel=1)
    _expect_test_annotations(descriptors)


@step("discovery")
def discovery_referrers_of_missing_subject_lists_its_referrer(s: Session) -> None:
    _, descriptors = _referrers(s, MANIFESTS[3].digest)
    assert [d.get("digest") for d in descriptors] == [REFS_C_LAYER.digest]


@step("discovery")
def discovery_teardown_delete_manifests_and_tags(s: Session) -> None:
    for reference in (REFS_INDEX.digest, MANIFESTS[2].digest, MANIFESTS[4].digest,
                      REFS_A_CONFIG.digest, REFS_A_LAYER.digest, TEST_TAG,
                      REFS_B_CONFIG.digest, REFS_B_LAYER.digest, REFS_C_LAYER.digest):
        expect_success(s.delete(s.manifest_path(reference)), 404)


@step("discovery")
def discovery_teardown_delete_config_blob(s: Session) -> None:
    expect_success(s.delete(s.blob_path(CONFIGS[2].digest)))


@step("discovery")
def discovery_teardown_delete_layer_blob(s: Session) -> None:
    expect_success(s.delete(s.blob_path(LAYER.digest)))


@step("discovery")
def discovery_teardown_references(s: Session) -> None:
    for manifest in (REFS_INDEX, REFS_A_CONFIG, REFS_A_LAYER, MANIFESTS[4], REFS_B_CONFIG,
                     REFS_B_LAYER):
        expect_success(s.delete(s.manifest_path(manifest.digest)), 404)
    for blob in (CONFIGS[4], REF_BLOB_A, REF_BLOB_B, EMPTY_JSON):
        expect_success(s.delete(s.blob_path(blob.digest)), 404)


# --------------------------------------------------------------------------- content management


@step("management")
def management_setup_populate_config3_blob(s: Session) -> None:
    s.populate_blob(CONFIGS[3])


@step("management")
def management_setup_populate_layer(s: Session) -> None:
    s.populate_blob(LAYER)


@step("management")
def management_setup_populate_tag(s: Session) -> None:
    s.tag = TEST_TAG
    expect_success(s.put_manifest(s.tag, MANIFESTS[3]))


@step("management")
def management_setup_count_tags(s: Session) -> None:
    response = s.request("GET", s.tags_path())
    expect_status(response, 200)
    document = response.json()
    assert isinstance(document, dict), str(response)
    s.num_tags = len(document.get("tags") or [])


@step("management")
def management_delete_tag_is_202_or_400_unsupported(s: Session) -> None:
    response = s.delete(s.manifest_path(s.tag))
    expect_status(response, 202, 400)
    if response.status == 400:
        assert response.error_codes()[:1] == ["UNSUPPORTED"], str(response)


@step("management")
def management_delete_manifest_by_digest_is_202_or_404(s: Session) -> None:
    expect_status(s.delete(s.manifest_path(MANIFESTS[3].digest)), 202, 404)


@step("management")
def management_get_deleted_manifest_is_404(s: Session) -> None:
    expect_status(s.request("GET", s.manifest_path(MANIFESTS[3].digest)), 404)


@step("management")
def management_tags_list_reflects_deletion(s: Session) -> None:
    response = s.request("GET", s.tags_path())
    expect_status(response, 200)
    document = response.json()
    assert isinstance(document, dict), str(response)
    assert len(document.get("tags") or []) < s.num_tags, str(response)


@step("management")
def management_delete_blobs_is_202_or_404(s: Session) -> None:
    expect_status(s.delete(s.blob_path(CONFIGS[3].digest)), 202, 404)
    expect_status(s.delete(s.blob_path(LAYER.digest)), 202, 404)


@step("management")
def management_get_deleted_blob_is_404(s: Session) -> None:
    expect_status(s.request("GET", s.blob_path(CONFIGS[3].digest)), 404)


# --------------------------------------------------------------------------- running


class WorkflowRun:
    """A workflow's steps run once against one registry, in order and only as far as asked;
    each step's outcome (None or the exception it raised) is kept for its test."""

    def __init__(self, host: str, workflow: str) -> None:
        self.steps = WORKFLOWS[workflow]
        self.session = Session(host, NAMESPACES[workflow])
        self.outcomes: list[Exception | None] = []

    def outcome(self, position: int) -> Exception | None:
        while len(self.outcomes) <= position:
            try:
                self.steps[len(self.outcomes)](self.session)
            except Exception as exc:  # a failed step does not stop the next (Ginkgo specs)
                self.outcomes.append(exc)
            else:
                self.outcomes.append(None)
        return self.outcomes[position]


@dataclass
class Target:
    name: str
    registry: RunningRegistry
    runs: dict[str, WorkflowRun] = field(default_factory=dict)

    def run(self, workflow: str) -> WorkflowRun:
        if workflow not in self.runs:
            self.runs[workflow] = WorkflowRun(self.registry.host, workflow)
        return self.runs[workflow]


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A fresh registry process on loopback for the whole module, per target."""
    name: str = request.param
    base: Path = tmp_path_factory.mktemp(name)
    if name == ANCHOR:
        registry = start_docker_registry(base)
    else:
        registry = start_strata_registry(base, workers=STRATA_WORKERS[name])
    yield Target(name, registry)
    registry.stop()


CASES = [(workflow, position) for workflow, steps in WORKFLOWS.items()
         for position in range(len(steps))]


@pytest.mark.parametrize(("workflow", "position"), CASES,
                         ids=[WORKFLOWS[w][p].__name__ for w, p in CASES])
def test_conformance(target: Target, workflow: str, position: int) -> None:
    """One check of the suite; on the anchor, a check in ANCHOR_KNOWN_FAILURES must fail."""
    check = WORKFLOWS[workflow][position].__name__
    failure = target.run(workflow).outcome(position)
    if target.name == ANCHOR and check in ANCHOR_KNOWN_FAILURES:
        if not isinstance(failure, AssertionError):
            raise AssertionError(
                f"{check} is in ANCHOR_KNOWN_FAILURES ({ANCHOR_KNOWN_FAILURES[check]}) but the "
                f"anchor {'passed it' if failure is None else f'raised {failure!r}'}") from failure
        return
    if failure is not None:
        raise failure


def test_anchor_known_failures_name_checks() -> None:
    """Every entry of ANCHOR_KNOWN_FAILURES names a check of the port."""
    checks = {check.__name__ for steps in WORKFLOWS.values() for check in steps}
    assert set(ANCHOR_KNOWN_FAILURES) - checks == set()
