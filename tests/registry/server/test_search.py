"""docker's v1 search API and the richer /strata/v1/search, kept in step with pushes."""

from __future__ import annotations

import asyncio

import pytest

from registry.oci import manifest as manifest_module
from registry.search import (
    MAX_ENTRIES,
    MAX_KEY_CHARS,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_TAGS,
    MAX_VALUE_CHARS,
)
from registry.server import keys


async def _settle(reg) -> None:
    index = reg.client.server.app[keys.SEARCH]
    await index.drain()


async def test_v1_ping_answers_as_standalone_registry(reg) -> None:
    resp = await reg.get("/v1/_ping")
    assert resp.status == 200
    assert resp.headers["X-Docker-Registry-Standalone"] == "true"


async def test_v1_search_matches_names_in_docker_shape(reg) -> None:
    await reg.push_image("tools/busybox", "1.36",
                         labels={"org.opencontainers.image.description": "tiny unix tools"})
    await reg.push_image("web/nginx", "latest")
    await _settle(reg)
    resp = await reg.get("/v1/search", params={"q": "busybox", "n": "25"})
    assert resp.status == 200
    body = await resp.json()
    assert body["query"] == "busybox"
    assert body["num_results"] == 1
    assert body["results"] == [{"name": "tools/busybox", "description": "tiny unix tools",
                                "star_count": 0, "is_official": False, "is_automated": False,
                                "is_trusted": False}]


async def test_v1_search_clamps_n_to_1_and_100(reg) -> None:
    for i in range(3):
        await reg.push_image(f"team/app{i}", "v1")
    await _settle(reg)
    resp = await reg.get("/v1/search", params={"q": "team", "n": "0"})
    body = await resp.json()
    assert body["page_size"] == 1 and len(body["results"]) == 1 and body["num_results"] == 3
    resp = await reg.get("/v1/search", params={"q": "team", "n": "1000"})
    assert (await resp.json())["page_size"] == 100
    resp = await reg.get("/v1/search", params={"q": "team"})
    assert (await resp.json())["page_size"] == 25


async def test_search_pages(reg) -> None:
    for i in range(5):
        await reg.push_image(f"paged/r{i}", "v1")
    await _settle(reg)
    resp = await reg.get("/strata/v1/search", params={"q": "paged", "n": "2", "page": "3"})
    body = await resp.json()
    assert body["total"] == 5 and body["num_pages"] == 3 and body["page"] == 3
    assert len(body["results"]) == 1


async def test_search_matches_description_annotation_labels_and_tags(reg) -> None:
    await reg.push_image("acme/db", "postgres-16",
                         annotations={"org.opencontainers.image.description":
                                      "relational database server"})
    await reg.push_image("acme/cache", "v1", labels={"maintainer": "ops-team",
                                                       "tier": "memorystore"})
    await reg.push_image("acme/other", "v1")
    await _settle(reg)

    async def names(q: str) -> list[str]:
        resp = await reg.get("/strata/v1/search", params={"q": q})
        assert resp.status == 200
        return [r["name"] for r in (await resp.json())["results"]]

    assert await names("relational") == ["acme/db"]
    assert await names("postgres") == ["acme/db"]
    assert await names("memorystore") == ["acme/cache"]
    assert await names("databa") == ["acme/db"]  # prefix match
    assert sorted(await names("acme")) == ["acme/cache", "acme/db", "acme/other"]
    resp = await reg.get("/strata/v1/search", params={"q": "relational"})
    hit = (await resp.json())["results"][0]
    assert hit["description"] == "relational database server"
    assert hit["tags"] == ["postgres-16"]
    assert hit["score"] > 0


async def test_search_ranks_name_match_above_description_match(reg) -> None:
    await reg.push_image("misc/other", "v1", labels={"description": "mentions redis once"})
    await reg.push_image("cache/redis", "v1")
    await _settle(reg)
    resp = await reg.get("/strata/v1/search", params={"q": "redis"})
    assert [r["name"] for r in (await resp.json())["results"]] == ["cache/redis", "misc/other"]


async def test_deleted_repository_leaves_the_index(reg) -> None:
    image = await reg.push_image("gone/soon", "v1")
    await _settle(reg)
    assert (await (await reg.get("/v1/search", params={"q": "soon"})).json())["num_results"] == 1
    await reg.delete(f"/v2/gone/soon/manifests/{image.digest}")
    await _settle(reg)
    assert (await (await reg.get("/v1/search", params={"q": "soon"})).json())["num_results"] == 0


async def test_an_empty_query_lists_everything_and_odd_input_is_safe(reg) -> None:
    await reg.push_image("x/one", "v1")
    await reg.push_image("x/two-words", "v1")
    await _settle(reg)
    for q in ("", '"*)(OR', "%_", "NEAR("):
        resp = await reg.get("/strata/v1/search", params={"q": q})
        assert resp.status == 200, q
    body = await (await reg.get("/strata/v1/search", params={"q": ""})).json()
    assert [r["name"] for r in body["results"]] == ["x/one", "x/two-words"]
    # Text without a word matches repository names only (it used to list everything).
    for q, names in (("\U0001F600", []), ("(", []), ("-", ["x/two-words"])):
        body = await (await reg.get("/strata/v1/search", params={"q": q})).json()
        assert [r["name"] for r in body["results"]] == names, q
        body = await (await reg.get("/v1/search", params={"q": q})).json()
        assert body["num_results"] == len(names), q


async def test_bad_page_number_is_400(reg) -> None:
    for n in ("many", "5_0", "\u0663"):  # int() takes the last two
        resp = await reg.get("/v1/search", params={"q": "a", "n": n})
        assert resp.status == 400
        assert await reg.error_code(resp) == "UNSUPPORTED"


async def test_reindex_rebuilds_from_storage(reg) -> None:
    await reg.push_image("re/indexed", "v1", labels={"description": "phoenix"})
    await _settle(reg)
    index = reg.client.server.app[keys.SEARCH]
    await asyncio.to_thread(index._write, "re/indexed", None)  # a lost document
    assert (await index.search("phoenix")).total == 0
    count = await index.rebuild()
    assert count == 1
    page = await index.search("phoenix")
    assert [h.name for h in page.hits] == ["re/indexed"]


async def test_an_image_whose_config_nests_too_deeply_is_still_indexed(reg) -> None:
    """Labels come from the config blob, which the registry takes as any blob: one nested past
    the JSON parser's depth gives no labels, not a failed index update."""
    config = b'{"config": {"Labels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    layer = b"layer"
    await reg.push_blob("deep/config", config)
    await reg.push_blob("deep/config", layer)
    resp = await reg.put_manifest("deep/config", "v1", reg.image_manifest(config, [layer]))
    assert resp.status == 201
    await _settle(reg)
    resp = await reg.get("/strata/v1/search", params={"q": "deep"})
    assert [r["name"] for r in (await resp.json())["results"]] == ["deep/config"]


async def test_a_config_of_odd_shape_leaves_its_labels_out_not_the_repository(reg) -> None:
    """The config is any blob the client pushed: `"config": [1]` used to fail every refresh
    of the repository (AttributeError), and a label that is no text (a lone surrogate) failed
    the write to SQLite, so its search document went stale."""
    for repo, config in (("odd/shape", b'{"config": [1]}'),
                         ("odd/text", b'{"config": {"Labels": {"a": "\\ud800", "b": "kept"}}}')):
        await reg.push_blob(repo, config)
        await reg.push_blob(repo, b"layer")
        resp = await reg.put_manifest(repo, "v1", reg.image_manifest(config, [b"layer"]))
        assert resp.status == 201
    await _settle(reg)
    resp = await reg.get("/strata/v1/search", params={"q": "odd"})
    assert sorted(r["name"] for r in (await resp.json())["results"]) == ["odd/shape", "odd/text"]
    resp = await reg.get("/strata/v1/search", params={"q": "kept"})
    assert [r["name"] for r in (await resp.json())["results"]] == ["odd/text"]


async def test_queries_past_the_bounds_are_400_not_500(reg) -> None:
    await reg.push_image("bounded/repo", "v1")
    await _settle(reg)
    ok = await reg.get("/strata/v1/search", params={"q": "bounded " + "x" * 247})
    assert ok.status == 200
    # Too long (a 50,000-character LIKE pattern was a 500), too many words (each one more
    # FTS term), or a NUL (SQLite's LIKE ends the pattern there: it matched everything).
    for q in ("x" * (MAX_QUERY_CHARS + 1), " ".join(["w"] * (MAX_QUERY_WORDS + 1)),
              "\x00", "bounded\x1bx"):
        for path in ("/v1/search", "/strata/v1/search"):
            resp = await reg.get(path, params={"q": q})
            assert resp.status == 400, (path, q[:20])
            assert await reg.error_code(resp) == "UNSUPPORTED"


async def test_pages_are_cut_in_order_across_full_text_and_name_hits(reg) -> None:
    for name in ("paged/r0", "paged/r1", "paged/r2", "zz/unpaged"):
        await reg.push_image(name, "v1")
    await _settle(reg)
    names = []
    for page in (1, 2, 3):
        resp = await reg.get("/strata/v1/search", params={"q": "paged", "n": "2",
                                                          "page": str(page)})
        body = await resp.json()
        assert body["total"] == 4 and body["num_pages"] == 2
        names += [r["name"] for r in body["results"]]
    assert names[:3] == sorted(names[:3]) and names[3] == "zz/unpaged"  # name hits last
    assert sorted(names) == ["paged/r0", "paged/r1", "paged/r2", "zz/unpaged"]
    resp = await reg.get("/v1/search", params={"q": "paged", "page": "9" * 18})
    body = await resp.json()
    assert resp.status == 200 and body["num_results"] == 4 and body["results"] == []


async def test_a_document_stays_small_whatever_its_manifests_carry(reg) -> None:
    # Annotations of every tagged manifest used to go in whole: a few 4 MB manifests made
    # a document (and each search hit) of many megabytes.
    annotations = {f"k{i}": "v" * 5000 for i in range(MAX_ENTRIES + 50)}
    annotations["x" * (MAX_KEY_CHARS + 1)] = "long key"
    image = await reg.push_image("big/doc", None, annotations=annotations,
                                 labels={f"l{i}": "w" * 3000 for i in range(MAX_ENTRIES + 9)})
    tags = [f"t{i:03}" for i in range(MAX_TAGS + 20)]
    for start in range(0, len(tags), 64):
        resp = await reg.put_manifest("big/doc", image.digest, image.manifest,
                                      params=[("tag", t) for t in tags[start:start + 64]])
        assert resp.status == 201
    await _settle(reg)
    body = await (await reg.get("/strata/v1/search", params={"q": "doc"})).json()
    [hit] = body["results"]
    assert hit["tags"] == tags[:MAX_TAGS]
    assert len(hit["annotations"]) == MAX_ENTRIES and len(hit["labels"]) == MAX_ENTRIES
    assert {len(v) for v in hit["annotations"].values()} == {MAX_VALUE_CHARS}
    assert {len(v) for v in hit["labels"].values()} == {MAX_VALUE_CHARS}
    assert all(len(k) <= MAX_KEY_CHARS for k in hit["annotations"])


async def test_searches_waiting_on_the_index_leave_blob_reads_alone(reg) -> None:
    # A slow search (say a busy index) once held a thread of the default pool per request:
    # enough of them starved every blob GET, which opens its file in that pool.
    blob = await reg.push_blob("reads/on", b"layer bytes")
    index = reg.client.server.app[keys.SEARCH]
    assert index._lock.acquire(blocking=False)  # the index is busy
    try:
        searches = [asyncio.ensure_future(reg.get("/v1/search", params={"q": "on"}))
                    for _ in range(64)]
        await asyncio.sleep(0.2)
        resp = await asyncio.wait_for(reg.get(f"/v2/reads/on/blobs/{blob}"), 10)
        assert await resp.read() == b"layer bytes"
    finally:
        index._lock.release()
    assert {(await s).status for s in searches} == {200}


async def test_a_tag_push_reads_only_manifests_the_index_has_not_seen(
        reg, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each manifest change recomputes its repository's document; it used to parse every
    # tagged manifest again (on the event loop): 60 tags of 3 MB manifests cost 8 s a push.
    parsed: list[int] = []
    parse = manifest_module.parse_manifest

    def counting(data: bytes, *args: object) -> object:
        parsed.append(len(data))
        return parse(data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest_module, "parse_manifest", counting)
    big = await reg.push_image("many/tags", "v0", annotations={"pad": "x" * 300_000})
    await _settle(reg)
    for tag in ("v1", "v2", "v3"):
        resp = await reg.put_manifest("many/tags", tag, big.manifest)
        assert resp.status == 201
        await _settle(reg)
    # one parse at each PUT (validation), one for the index, however many tags follow
    assert parsed.count(len(big.manifest)) == 1 + 3 + 1
    body = await (await reg.get("/strata/v1/search", params={"q": "many"})).json()
    assert body["results"][0]["tags"] == ["v0", "v1", "v2", "v3"]
