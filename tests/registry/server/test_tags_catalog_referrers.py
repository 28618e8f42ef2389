"""Tags list and catalog pagination (n, last, Link) and the referrers API."""

from __future__ import annotations

import json

import pytest

from registry.oci import mediatypes as mt
from registry.server import catalog, referrers, tags


async def test_tags_list_sorted(reg) -> None:
    for tag in ("b", "a", "c"):
        await reg.push_image("app", tag)
    resp = await reg.get("/v2/app/tags/list")
    assert resp.status == 200
    assert await resp.json() == {"name": "app", "tags": ["a", "b", "c"]}
    assert "Link" not in resp.headers


async def test_tags_list_is_in_case_insensitive_lexical_order(reg) -> None:
    """The spec: "lexical order (i.e. case-insensitive alphanumeric order)"; pages follow it."""
    tags = ["b", "a", "C", "d10", "d9", "Z", "e", "_x", "a-1", "a.1", "A"]
    for tag in tags:
        await reg.push_image("app", tag)
    ordered = ["_x", "A", "a", "a-1", "a.1", "b", "C", "d10", "d9", "e", "Z"]
    resp = await reg.get("/v2/app/tags/list")
    assert (await resp.json())["tags"] == ordered
    paged, last = [], None
    while True:
        params = {"n": "3"} if last is None else {"n": "3", "last": last}
        body = await (await reg.get("/v2/app/tags/list", params=params)).json()
        paged += body["tags"]
        if len(body["tags"]) < 3:
            break
        last = body["tags"][-1]
    assert paged == ordered


async def test_tags_pagination_with_link_header(reg) -> None:
    for tag in ("t1", "t2", "t3", "t4", "t5"):
        await reg.push_image("lib/app", tag)
    resp = await reg.get("/v2/lib/app/tags/list", params={"n": "2"})
    assert (await resp.json())["tags"] == ["t1", "t2"]
    assert resp.headers["Link"] == '</v2/lib/app/tags/list?n=2&last=t2>; rel="next"'
    resp = await reg.get("/v2/lib/app/tags/list", params={"n": "2", "last": "t2"})
    assert (await resp.json())["tags"] == ["t3", "t4"]
    resp = await reg.get("/v2/lib/app/tags/list", params={"n": "2", "last": "t4"})
    assert (await resp.json())["tags"] == ["t5"]
    assert "Link" not in resp.headers


async def test_tags_n_zero_is_empty_list(reg) -> None:
    await reg.push_image("app", "v1")
    resp = await reg.get("/v2/app/tags/list", params={"n": "0"})
    assert resp.status == 200
    assert (await resp.json())["tags"] == []


async def test_tags_of_unknown_repository_is_404_name_unknown(reg) -> None:
    resp = await reg.get("/v2/nothing/here/tags/list")
    assert resp.status == 404
    assert await reg.error_code(resp) == "NAME_UNKNOWN"


async def test_bad_n_is_400_with_a_spec_error_code(reg) -> None:
    await reg.push_image("app", "v1")
    for n in ("abc", "-1", "5_0", "\u0663", "+3", " 3"):  # int() takes the last four
        for path in ("/v2/app/tags/list", "/v2/_catalog"):
            resp = await reg.get(path, params={"n": n})
            assert resp.status == 400
            assert await reg.error_code(resp) == "UNSUPPORTED"  # one of the spec's codes
            assert n in (await resp.json())["errors"][0]["message"]


async def test_n_over_the_page_limit_is_served_as_a_full_page_with_link(reg) -> None:
    """The spec lets a page hold fewer than n when a Link follows: no error for a large n."""
    for tag in ("a", "b"):
        await reg.push_image("app", tag)
    resp = await reg.get("/v2/app/tags/list", params={"n": "1000000"})
    assert resp.status == 200
    assert (await resp.json())["tags"] == ["a", "b"]
    resp = await reg.get("/v2/_catalog", params={"n": "1000000"})
    assert resp.status == 200
    assert (await resp.json())["repositories"] == ["app"]


async def test_catalog_lists_repositories_with_pagination(reg) -> None:
    for repo in ("c/one", "a/one", "b/one"):
        await reg.push_image(repo, "v1")
    resp = await reg.get("/v2/_catalog")
    assert await resp.json() == {"repositories": ["a/one", "b/one", "c/one"]}
    resp = await reg.get("/v2/_catalog", params={"n": "2"})
    assert (await resp.json())["repositories"] == ["a/one", "b/one"]
    assert resp.headers["Link"] == '</v2/_catalog?n=2&last=b%2Fone>; rel="next"'
    resp = await reg.get("/v2/_catalog", params={"n": "2", "last": "b/one"})
    assert (await resp.json())["repositories"] == ["c/one"]
    assert "Link" not in resp.headers


async def test_referrers_lists_manifests_with_subject(reg) -> None:
    base = await reg.push_image("app", "v1")
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": base.digest, "size": len(base.manifest)}
    sig = await reg.push_image("app", None, subject=subject, artifact_type="application/x.sig",
                               annotations={"k": "v"})
    sbom = await reg.push_image("app", None, subject=subject, artifact_type="application/x.sbom")
    resp = await reg.get(f"/v2/app/referrers/{base.digest}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == mt.OCI_INDEX
    body = await resp.json(content_type=None)
    assert body["schemaVersion"] == 2 and body["mediaType"] == mt.OCI_INDEX
    by_digest = {m["digest"]: m for m in body["manifests"]}
    assert set(by_digest) == {sig.digest, sbom.digest}
    assert by_digest[sig.digest]["artifactType"] == "application/x.sig"
    assert by_digest[sig.digest]["annotations"] == {"k": "v"}
    assert by_digest[sig.digest]["size"] == len(sig.manifest)
    assert "OCI-Filters-Applied" not in resp.headers


async def test_referrers_artifact_type_filter_sets_header(reg) -> None:
    base = await reg.push_image("app", "v1")
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": base.digest, "size": len(base.manifest)}
    sig = await reg.push_image("app", None, subject=subject, artifact_type="application/x.sig")
    await reg.push_image("app", None, subject=subject, artifact_type="application/x.sbom")
    resp = await reg.get(f"/v2/app/referrers/{base.digest}",
                         params={"artifactType": "application/x.sig"})
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    body = await resp.json(content_type=None)
    assert [m["digest"] for m in body["manifests"]] == [sig.digest]


async def test_referrers_of_unknown_subject_is_an_empty_index(reg) -> None:
    await reg.push_image("app", "v1")
    for repo in ("app", "unknown/repo"):
        resp = await reg.get(f"/v2/{repo}/referrers/{reg.sha(b'nothing')}")
        assert resp.status == 200
        assert (await resp.json(content_type=None))["manifests"] == []


async def test_referrers_with_bad_digest_is_400(reg) -> None:
    resp = await reg.get("/v2/app/referrers/sha256:zz")
    assert resp.status == 400
    assert await reg.error_code(resp) == "DIGEST_INVALID"


async def test_referrers_come_in_pages_a_link_header_chains(
        reg, monkeypatch: pytest.MonkeyPatch) -> None:
    # One answer held every referrer with all its annotations: 25 of 4 MiB each made a
    # 100 MB body, built on the event loop and held for as long as the client read it.
    monkeypatch.setattr(referrers, "PAGE_COUNT", 2)
    monkeypatch.setattr(referrers, "PAGE_BYTES", 40_000)
    base = await reg.push_image("app", "v1")
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": base.digest, "size": len(base.manifest)}
    sigs = [(await reg.push_image("app", None, subject=subject, artifact_type="application/x.sig",
                                  annotations={"pad": "x" * (30_000 if i == 2 else 10)})).digest
            for i in range(5)]
    await reg.push_image("app", None, subject=subject, artifact_type="application/x.sbom")
    seen, pages = [], 0
    path = f"/v2/app/referrers/{base.digest}?artifactType=application%2Fx.sig"
    while path:
        resp = await reg.get(path)
        assert resp.status == 200 and resp.headers["OCI-Filters-Applied"] == "artifactType"
        manifests = (await resp.json(content_type=None))["manifests"]
        assert 1 <= len(manifests) <= 2
        assert sum(len(json.dumps(m)) for m in manifests) <= 40_000 or len(manifests) == 1
        seen += [m["digest"] for m in manifests]
        pages += 1
        link = resp.headers.get("Link")
        path = link[1:link.index(">")] if link else None
    assert seen == sorted(sigs) and pages >= 3
    resp = await reg.get(f"/v2/app/referrers/{base.digest}", params={"last": "sha256:zz"})
    assert resp.status == 400


async def test_without_n_a_page_still_ends_at_max_page(
        reg, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without `n` the whole list came in one answer, whatever its size.
    monkeypatch.setattr(tags, "MAX_PAGE", 2)
    monkeypatch.setattr(catalog, "MAX_PAGE", 2)
    image = await reg.push_image("app", "a")
    for tag in ("b", "c"):
        assert (await reg.put_manifest("app", tag, image.manifest)).status == 201
    await reg.push_image("other", "v1")
    await reg.push_image("third", "v1")
    for path, key, first, rest in (("/v2/app/tags/list", "tags", ["a", "b"], ["c"]),
                                   ("/v2/_catalog", "repositories", ["app", "other"],
                                    ["third"])):
        resp = await reg.get(path)
        assert (await resp.json())[key] == first
        link = resp.headers["Link"]
        assert "n=" not in link
        resp = await reg.get(link[1:link.index(">")])
        assert (await resp.json())[key] == rest and "Link" not in resp.headers
