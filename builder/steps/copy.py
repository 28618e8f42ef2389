"""COPY and ADD: sources, cache key, and the copy into a fresh snapshot.

Docker's rules (BuildKit dockerfile2llb + fsutil copy):
* the destination is resolved against WORKDIR; `.` and a trailing `/` mean "a directory";
  more than one source needs such a destination;
* a directory source copies its *contents*; a file lands at `dest/<name>` when `dest` is a
  directory (existing, or marked by `/`), else at `dest`; `--parents` keeps the source path;
* files from the build context become root-owned; `COPY --from` keeps the source owners;
  `--chown` (names resolved in the *target* image's /etc/passwd and /etc/group; a user
  without a group uses the uid as gid) and `--chmod` override;
* ADD unpacks local tar archives (plain, gzip, bzip2, xz, zstd) into the destination and
  fetches http(s) URLs (mode 0600, `--checksum` verified);
* heredoc sources (`COPY <<EOF /dest`) become files named after the heredoc.
The key reads the content checksum of exactly the selected files (or the source stage's key,
or the fetched content digest), never mtimes; with --chmod the source modes do not count.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from builder import cachekey
from builder.context import BuildContext, SourceMatch
from builder.errors import DigestMismatch, InvalidArgument, NotFound, Unavailable
from builder.executor import UserNotFound, resolve_user
from builder.imageconfig import history_text
from builder.layers.archive import apply_tar
from builder.layers.compression import open_decompressed
from builder.mounts import temp_mount
from builder.steps import State
from builder.steps.fscopy import Ownership, Writer
from builder.steps.workspace import Workspace
from dockerfile_grammar.dockerignore import DockerIgnore
from dockerfile_grammar.instructions import Add, Copy
from registry.oci import Descriptor

URL_PREFIXES = ("http://", "https://")
MULTI_SOURCE_ERROR = ("When using COPY with more than one source file, the destination must be "
                      "a directory and end with a /")


@dataclass(slots=True)
class CopyPlan:
    """What one COPY/ADD reads, computed once for the key and reused on a miss."""

    instr: Copy | Add
    dest: str
    key: str
    matches: list[SourceMatch] = field(default_factory=list)
    from_state: State | None = None
    fetched: list[tuple[str, Path, int | None]] = field(default_factory=list)  # url, file, mtime
    tmpdir: Path | None = None
    layer_key: str | None = None  # --link: the parent-independent key of the layer alone

    def cleanup(self) -> None:
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def destination(dest: str, workdir: str) -> str:
    """`dest` made absolute against WORKDIR; a directory marker `/` kept (and added for `.`)."""
    is_dir = dest in ("", ".") or dest.endswith("/") or dest.endswith("/.")
    joined = dest if dest.startswith("/") else posixpath.join(workdir, dest)
    joined = posixpath.normpath(joined)
    if joined.startswith("//"):
        joined = "/" + joined.lstrip("/")
    return joined.rstrip("/") + "/" if is_dir and joined != "/" else joined


def _is_url(source: str) -> bool:
    return source.startswith(URL_PREFIXES)


def plan_copy(instr: Copy | Add, state: State, context: BuildContext | None,
              from_states: Mapping[str, State]) -> CopyPlan:
    """Select the sources and compute the step key (fetching ADD URLs)."""
    dest = destination(instr.dest, state.config.workdir)
    count = len(instr.sources) + len(instr.heredocs)
    if count == 0:
        raise InvalidArgument(f"{instr.KEYWORD} needs at least one source")
    if count > 1 and not dest.endswith("/"):
        raise InvalidArgument(MULTI_SOURCE_ERROR)
    plan = CopyPlan(instr, dest, "")
    from_ = instr.from_ if isinstance(instr, Copy) else None
    checksum: str | None = None
    source_from: str | None = None
    url_sum: str | None = None
    heredocs = [[d.name, d.body] for d in instr.heredocs]
    try:
        if from_:
            src = from_states.get(from_.lower())
            if src is None:
                raise NotFound(f"COPY --from={from_}: no such stage or image")
            plan.from_state = src
            source_from = src.key
        else:
            urls = [s for s in instr.sources if _is_url(s)]
            if urls and isinstance(instr, Copy):
                raise InvalidArgument("COPY cannot fetch URLs; use ADD")
            local = [s for s in instr.sources if not _is_url(s)]
            if urls:
                plan.tmpdir = Path(tempfile.mkdtemp(prefix="strata-add-"))
                digests = []
                for url in urls:
                    plan.fetched.append(_fetch(url, plan.tmpdir, getattr(instr, "checksum", None)))
                    digests.append(_sha256(plan.fetched[-1][1]))
                url_sum = "sha256:" + hashlib.sha256(" ".join(digests).encode()).hexdigest()
            if local:
                if context is None:
                    raise InvalidArgument(f"{instr.KEYWORD} needs a build context")
                plan.matches = context.select(local, exclude=instr.exclude)
                prehash(context, plan.matches)
                checksum = str(context.checksum_matches(
                    plan.matches, chmod_override=instr.chmod is not None,
                    chown_override=instr.chown is not None))
        plan.key = cachekey.copy_key(
            state.key, kind=instr.KEYWORD,  # type: ignore[arg-type]
            sources=list(instr.sources), dest=dest, sources_checksum=checksum,
            source_from=source_from, chown=instr.chown, chmod=instr.chmod, link=instr.link,
            exclude=list(instr.exclude), parents=instr.parents, url_checksum=url_sum,
            unpack=getattr(instr, "unpack", None),
            extra={"heredocs": heredocs} if heredocs else None)
        if instr.link:
            plan.layer_key = plan.key
            plan.key = cachekey.linked_key(state.key, plan.key)
    except BaseException:
        plan.cleanup()
        raise
    return plan


PREHASH_THREADS = 4
PREHASH_MIN_BYTES = 8 << 20


def prehash(context: BuildContext, matches: list[SourceMatch]) -> None:
    """Hash the selected files the context index does not know yet on a few threads
    (hashlib releases the GIL), so the sequential checksum that follows finds them all in
    the index. Only worth it for a large amount of new content."""
    files = context.unhashed(e for m in matches for e in m.entries)
    if sum(e.size for e in files) < PREHASH_MIN_BYTES:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=PREHASH_THREADS) as pool:
        for _ in pool.map(context.file_sha256, files):
            pass


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def _fetch(url: str, tmpdir: Path, checksum: str | None) -> tuple[str, Path, int | None]:
    import http.client  # lazily: most builds never fetch, and startup time counts
    import urllib.request
    from email.utils import parsedate_to_datetime

    target = tmpdir / f"url-{len(list(tmpdir.iterdir()))}"
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(target, "wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out, 1 << 20)
            modified = resp.headers.get("Last-Modified")
    except OSError as exc:  # URLError, refused or reset connections, timeouts
        raise Unavailable(f"ADD {url}: {exc}") from None
    except http.client.HTTPException as exc:  # a body cut short, a malformed response
        raise Unavailable(f"ADD {url}: {type(exc).__name__}: {exc}") from None
    except ValueError as exc:  # http.client.InvalidURL and friends
        raise InvalidArgument(f"ADD {url}: invalid URL: {exc}") from None
    mtime = None
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            mtime = int(parsedate_to_datetime(modified).timestamp()) * 1_000_000_000
    if checksum:
        actual = _sha256(target)
        if actual != checksum:
            raise DigestMismatch(checksum, actual, f"ADD {url}")
    return url, target, mtime


def _url_name(url: str) -> str:
    import urllib.parse

    path = urllib.parse.urlparse(url).path
    name = posixpath.basename(path.rstrip("/"))
    return name or "index.html"


def parse_chown(rootfs: Path | None, spec: str) -> tuple[int, int]:
    """`user[:group]` -> (uid, gid) in the target image; a lone user gives gid = uid."""
    user, _, group = spec.partition(":")
    if user.isdigit():
        uid = int(user)
    elif rootfs is None:
        raise UserNotFound(f"unable to find user {user}: no matching entries in passwd file")
    else:
        uid = resolve_user(rootfs, user).uid
    if not group:
        return uid, uid
    if group.isdigit():
        return uid, int(group)
    if rootfs is None:
        raise UserNotFound(f"unable to find group {group}: no matching entries in group file")
    return uid, resolve_user(rootfs, f"0:{group}").gid


def _chmod(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, 8)
    except ValueError:
        raise InvalidArgument(f"invalid chmod {text!r}: only octal modes are supported") from None
    if value > 0o7777:
        raise InvalidArgument(f"invalid chmod {text!r}")
    return value


#: what a damaged compressed stream raises while ADD unpacks it (tar damage is LayerRejected)
CORRUPT_ARCHIVE: tuple[type[Exception], ...] = (
    EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, zstandard.ZstdError)

_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def _is_archive(path: Path) -> bool:
    """A tar (plain or compressed) whose first header is valid; anything else, including a
    file that only looks compressed, is copied as is (docker's behaviour)."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
        if not any(head.startswith(m) for m in _ARCHIVE_MAGIC) and not head:
            return False
        with _decompressed(path) as stream:
            block = stream.read(512)
        if len(block) < 512:
            return False
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except Exception:  # noqa: BLE001 - corrupt compression or header: not an archive
        return False


@contextlib.contextmanager
def _decompressed(path: Path) -> Iterator[BinaryIO]:
    with open(path, "rb") as raw:
        head = raw.read(6)
        raw.seek(0)
        if head.startswith(b"BZh"):
            with bz2.open(raw) as f:
                yield f  # type: ignore[misc]
        elif head.startswith(b"\xfd7zXZ\x00"):
            with lzma.open(raw) as f:
                yield f  # type: ignore[misc]
        else:
            yield open_decompressed(raw)


def _place_matches(w: Writer, plan: CopyPlan) -> None:
    instr = plan.instr
    dest = plan.dest
    unpack = getattr(instr, "unpack", None)
    many = len(plan.matches) > 1 or len(instr.sources) + len(instr.heredocs) > 1
    for match in plan.matches:
        entry = match.entry
        if instr.parents:
            target = dest.rstrip("/") + "/" + match.name if match.name else dest
        else:
            target = dest
        if entry.kind.value == "dir":
            w.copy_tree(match.entries, entry, target)
            continue
        if (isinstance(instr, Add) and unpack is not False and entry.kind.value == "file"
                and _is_archive(entry.path)):
            dir_host = w.mkdirs(target)
            try:
                with _decompressed(entry.path) as stream:
                    apply_tar(stream, dir_host, whiteouts="none")  # ADD: no layer semantics
            except CORRUPT_ARCHIVE as exc:
                raise InvalidArgument(f"ADD {entry.relpath}: cannot extract the archive "
                                      f"({type(exc).__name__}: {exc})") from None
            continue
        into_dir = (target.endswith("/") or many or w.is_dir(target)) and not (
            instr.parents and match.name)
        if instr.parents and match.name:
            w.place(entry, target)
        elif into_dir:
            w.place(entry, target.rstrip("/") + "/" + posixpath.basename(match.name or
                                                                         entry.relpath))
        else:
            w.place(entry, target)


def execute(plan: CopyPlan, state: State, *, ws: Workspace, context: BuildContext | None,
            step: str) -> State:
    """Copy into a new snapshot on top of `state` (on an empty one for --link)."""
    del context, step
    instr = plan.instr
    chmod = _chmod(instr.chmod)
    base_layers = () if instr.link else state.layers
    with ws.active(base_layers, state.base_image, "copy") as active:
        with contextlib.ExitStack() as stack:
            if plan.from_state is not None:
                view = stack.enter_context(ws.view(plan.from_state.layers,
                                                   plan.from_state.base_image))
                src_root = stack.enter_context(temp_mount(view)) if view is not None else Path(
                    stack.enter_context(tempfile.TemporaryDirectory()))
                src_ctx = BuildContext(src_root, DockerIgnore())
                plan.matches = src_ctx.select(list(instr.sources), exclude=instr.exclude)
            rootfs = stack.enter_context(temp_mount(active.mounts))
            chown = None
            if instr.chown:
                chown_root: Path | None = rootfs
                if instr.link:
                    chown_root = None
                    if state.layers and not instr.chown.replace(":", "").isdigit():
                        mounts = stack.enter_context(ws.view(state.layers, state.base_image))
                        chown_root = stack.enter_context(temp_mount(mounts)) if mounts else None
                chown = parse_chown(chown_root, instr.chown)
            w = Writer(rootfs, Ownership(chown, chmod, keep_owner=plan.from_state is not None))
            _place_matches(w, plan)
            for doc in instr.heredocs:
                target = plan.dest + doc.name if plan.dest.endswith("/") else plan.dest
                w.write_bytes(target, doc.body.encode(), 0o644, None)
            for url, path, mtime in plan.fetched:
                target = plan.dest + _url_name(url) if plan.dest.endswith("/") else plan.dest
                w.write_file(target, path, 0o600, mtime)
            w.finish_dirs()
        layer = ws.commit(active, None if instr.link else state.top, keep_empty=True)
    plan.cleanup()
    history = created_by(instr)
    cfg = state.config
    if layer is None:
        return state.advance(plan.key, cfg.with_history(history, empty_layer=True))
    if instr.link:  # a layer of its own: the image's chain needs its blob's diff_id now
        linked = layer.result()
        return with_linked_layer(plan, state, linked.descriptor, linked.diff_id)
    return state.advance(plan.key, cfg.with_history(history, empty_layer=False),
                         (*state.layers, layer))


def with_linked_layer(plan: CopyPlan, state: State, layer: Descriptor, diff_id: str) -> State:
    """The state after a --link COPY whose layer was built before (on any base)."""
    cfg = state.config.with_history(created_by(plan.instr), empty_layer=False)
    return state.advance(plan.key, cfg, state.with_layer(layer, diff_id))


def created_by(instr: Copy | Add) -> str:
    """BuildKit's `COPY src... dest # buildkit` (flags are not recorded)."""
    words = list(instr.sources)
    words += [f"<<{d.name}" for d in instr.heredocs]
    words.append(instr.dest)
    return history_text(instr.KEYWORD, " ".join(words), buildkit_suffix=True)

