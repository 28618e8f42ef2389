"""Distribution API endpoints: one table shared by the server's routes and the client's URLs."""

from __future__ import annotations

from urllib.parse import quote, urlencode

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"
CONTENT_DIGEST_HEADER = "Docker-Content-Digest"
UPLOAD_UUID_HEADER = "Docker-Upload-UUID"
OCI_SUBJECT_HEADER = "OCI-Subject"
OCI_FILTERS_APPLIED_HEADER = "OCI-Filters-Applied"
OCI_TAG_HEADER = "OCI-Tag"
OCI_CHUNK_MIN_LENGTH_HEADER = "OCI-Chunk-Min-Length"

# Route templates; {name} is a repository name and may contain slashes.
BASE = "/v2/"
CATALOG = "/v2/_catalog"
BLOB = "/v2/{name}/blobs/{digest}"
UPLOADS = "/v2/{name}/blobs/uploads/"
UPLOAD = "/v2/{name}/blobs/uploads/{uuid}"
MANIFEST = "/v2/{name}/manifests/{reference}"
TAGS = "/v2/{name}/tags/list"
REFERRERS = "/v2/{name}/referrers/{digest}"
V1_PING = "/v1/_ping"
V1_SEARCH = "/v1/search"
SEARCH = "/strata/v1/search"


def _path(template: str, **parts: str) -> str:
    return template.format(**{k: quote(v, safe="/:") for k, v in parts.items()})


def _with_query(path: str, query: dict[str, str | list[str]] | None) -> str:
    if not query:
        return path
    return f"{path}?{urlencode(query, doseq=True)}"


def blob_path(name: str, digest: str) -> str:
    return _path(BLOB, name=name, digest=digest)


def uploads_path(name: str, query: dict[str, str | list[str]] | None = None) -> str:
    return _with_query(_path(UPLOADS, name=name), query)


def upload_path(name: str, uuid: str) -> str:
    return _path(UPLOAD, name=name, uuid=uuid)


def manifest_path(name: str, reference: str,
                  query: dict[str, str | list[str]] | None = None) -> str:
    return _with_query(_path(MANIFEST, name=name, reference=reference), query)


def tags_path(name: str, n: int | None = None, last: str | None = None) -> str:
    query: dict[str, str | list[str]] = {}
    if n is not None:
        query["n"] = str(n)
    if last:
        query["last"] = last
    return _with_query(_path(TAGS, name=name), query)


def referrers_path(name: str, digest: str, artifact_type: str | None = None,
                   last: str | None = None) -> str:
    query: dict[str, str | list[str]] = {"artifactType": artifact_type} if artifact_type else {}
    if last:
        query["last"] = last
    return _with_query(_path(REFERRERS, name=name, digest=digest), query)


def catalog_path(n: int | None = None, last: str | None = None) -> str:
    query: dict[str, str | list[str]] = {}
    if n is not None:
        query["n"] = str(n)
    if last:
        query["last"] = last
    return _with_query(CATALOG, query)
