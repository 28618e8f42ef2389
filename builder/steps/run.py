"""RUN: key, mounts (`--mount=type=cache|bind|tmpfs|secret`) and execution in a snapshot.

The process environment is the step's build-time environment (ENV plus the ARGs in scope, plus
proxy build args, which never reach the key) with docker's defaults for PATH and HOME. USER is
resolved in the image's own /etc/passwd and /etc/group; WORKDIR is created by the executor.
A secret's value or host path never reaches the key (cachekey.SecretMountKey has no field for
it), the layer (mount stubs are removed by the executor) or the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder import cachekey
from builder.context import BuildContext
from builder.errors import InvalidArgument, NotFound, StepFailed
from builder.executor import Executor, ProcessSpec, Sink, process_network, resolve_user
from builder.imageconfig import DEFAULT_PATH, history_text
from builder.layers.resolve import resolve_in_root
from builder.mounts import Mount, temp_mount
from builder.steps import State
from builder.steps.workspace import Workspace
from dockerfile_grammar.instructions import ExecCommand, Heredoc, Run
from dockerfile_grammar.instructions import Mount as MountSpec

TAIL_LINES = 20
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Build-wide inputs of RUN steps."""

    network: str = "default"  # --network: default|none|host
    secrets: Mapping[str, Path] = field(default_factory=dict)  # id -> host file
    proxy_env: Mapping[str, str] = field(default_factory=dict)
    cache_mounts_dir: Path | None = None
    platform: str = ""


def command_of(run: Run) -> str | tuple[str, ...]:
    """The shell text (str) or exec argv (tuple) of RUN, heredocs included as BuildKit does:
    a RUN that is only a heredoc runs its body as the script; otherwise the heredoc bodies
    follow the command line so the shell reads them."""
    if isinstance(run.command, ExecCommand):
        return tuple(run.command.argv)
    text = run.command.text
    if not run.heredocs:
        return text
    if len(run.heredocs) == 1 and re.fullmatch(r"\s*<<-?[\"']?\w+[\"']?\s*", text):
        return run.heredocs[0].body
    parts = [text]
    for doc in run.heredocs:
        parts.append(_heredoc_text(doc))
    return "\n".join(parts)


def _heredoc_text(doc: Heredoc) -> str:
    return doc.content + doc.name


def _network(run: Run, options: RunOptions) -> str:
    return process_network(run.network or options.network or "default")


def _octal(text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        return int(text, 8)
    except ValueError:
        raise InvalidArgument(f"invalid mount mode {text!r}") from None


def _int(text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"invalid mount uid/gid {text!r}") from None


def _abs(target: str | None, workdir: str, what: str) -> str:
    if not target:
        raise InvalidArgument(f"RUN --mount type={what} needs a target")
    return target if target.startswith("/") else workdir.rstrip("/") + "/" + target


def _secret_id(m: MountSpec) -> str:
    if m.id:
        return m.id
    if m.target:
        return os.path.basename(m.target.rstrip("/"))
    raise InvalidArgument("RUN --mount=type=secret needs an id or a target")


def mount_keys(run: Run, state: State, context: BuildContext | None,
               from_states: Mapping[str, State]) -> list[cachekey.MountKey]:
    """The cache-key view of each --mount (content checksums for context binds)."""
    keys: list[cachekey.MountKey] = []
    workdir = state.config.workdir
    for m in run.mounts:
        if m.type == "cache":
            target = _abs(m.target, workdir, "cache")
            sharing = m.sharing or "shared"
            if sharing not in ("shared", "private", "locked"):
                raise InvalidArgument(f"invalid cache sharing mode {sharing!r}")
            keys.append(cachekey.CacheMountKey(
                m.id or target, target, sharing, m.readonly, m.from_,  # type: ignore[arg-type]
                _octal(m.mode, 0o755), _int(m.uid, 0), _int(m.gid, 0)))
        elif m.type == "bind":
            target = _abs(m.target, workdir, "bind")
            source = m.source or "/"
            if m.from_:
                src = from_states.get(m.from_.lower())
                if src is None:
                    raise NotFound(f"RUN --mount from={m.from_}: no such stage or image")
                keys.append(cachekey.BindMountKey(target, source, src.key, None, not m.readonly))
            else:
                if context is None:
                    raise InvalidArgument("RUN --mount=type=bind needs a build context")
                checksum = str(context.checksum([source]))
                keys.append(cachekey.BindMountKey(target, source, "context", checksum,
                                                  not m.readonly))
        elif m.type == "tmpfs":
            size = None if m.size is None else _size(m.size)
            keys.append(cachekey.TmpfsMountKey(_abs(m.target, workdir, "tmpfs"), size))
        elif m.type == "secret":
            sid = _secret_id(m)
            keys.append(cachekey.SecretMountKey(sid, m.target, m.env, m.required,
                                                _octal(m.mode, 0o400), _int(m.uid, 0),
                                                _int(m.gid, 0)))
        elif m.type == "ssh":
            raise InvalidArgument("RUN --mount=type=ssh is not supported")
        else:
            raise InvalidArgument(f"unknown mount type {m.type!r}")
    return keys


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmMgG]?)[bB]?", text.strip())
    if not m:
        raise InvalidArgument(f"invalid tmpfs size {text!r}")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


def run_key(run: Run, state: State, env: Mapping[str, str], options: RunOptions,
            context: BuildContext | None, from_states: Mapping[str, State]) -> str:
    cfg = state.config
    return cachekey.run_key(
        state.key, command=command_of(run), env=env, shell=cfg.shell, user=cfg.user,
        workdir=cfg.workdir, platform=options.platform, network=_network(run, options),
        security=_security(run), mounts=mount_keys(run, state, context, from_states))


def _security(run: Run) -> str:
    """RUN --security: `sandbox` is what every step gets; `insecure` (privileged) is refused
    rather than silently run sandboxed."""
    value = run.security or "sandbox"
    if value != "sandbox":
        raise InvalidArgument(f"RUN --security={value} is not supported (only sandbox)")
    return value


def created_by(run: Run, state: State, env: Mapping[str, str], arg_names: Sequence[str]) -> str:
    """BuildKit's `RUN |2 A=1 B=2 /bin/sh -c cmd # buildkit` history text."""
    command = command_of(run)
    argv = list(command) if isinstance(command, tuple) else [*state.config.shell, command]
    args = [f"{n}={env[n]}" for n in arg_names if n in env]
    prefix = f"|{len(args)} {' '.join(args)} " if args else ""
    return history_text("RUN", prefix + " ".join(argv), buildkit_suffix=True)


class Tail:
    """A sink that forwards output and keeps its last lines for error messages."""

    def __init__(self, forward: Sink | None) -> None:
        self._forward = forward
        self._lines: deque[bytes] = deque(maxlen=TAIL_LINES)
        self._partial = b""

    def write(self, data: bytes) -> int:
        if self._forward is not None:
            self._forward.write(data)
        chunks = (self._partial + data).split(b"\n")
        self._partial = chunks.pop()
        self._lines.extend(chunks)
        if len(self._partial) > 4096:
            self._lines.append(self._partial)
            self._partial = b""
        return len(data)

    def text(self) -> str:
        lines = list(self._lines) + ([self._partial] if self._partial else [])
        return "\n".join(x.decode("utf-8", "replace") for x in lines[-TAIL_LINES:])


def process_env(env: Mapping[str, str], proxy: Mapping[str, str], home: str | None) -> tuple[
        str, ...]:
    out = dict(env)
    for k, v in proxy.items():
        out.setdefault(k, v)
    out.setdefault("PATH", DEFAULT_PATH)
    out.setdefault("HOME", home or "/")
    return tuple(f"{k}={v}" for k, v in out.items())


@contextlib.contextmanager
def _extra_mounts(run: Run, keys: Sequence[cachekey.MountKey], ws: Workspace,
                  options: RunOptions, context: BuildContext | None,
                  from_states: Mapping[str, State],
                  secret_env: dict[str, str]) -> Iterator[list[Mount]]:
    """Host-side preparation of every --mount; yields executor Mounts."""
    with contextlib.ExitStack() as stack:
        mounts: list[Mount] = []
        for spec, key in zip(run.mounts, keys, strict=True):
            if isinstance(key, cachekey.CacheMountKey):
                mounts.append(stack.enter_context(_cache_mount(key, options)))
            elif isinstance(key, cachekey.BindMountKey):
                mounts.append(stack.enter_context(
                    _bind_mount(spec, key, ws, context, from_states)))
            elif isinstance(key, cachekey.TmpfsMountKey):
                opts = ("nosuid", "nodev") + ((f"size={key.size}",) if key.size else ())
                mounts.append(Mount("tmpfs", "tmpfs", key.target, opts))
            elif isinstance(key, cachekey.SecretMountKey):
                src = options.secrets.get(key.id)
                if src is None:
                    if key.required:
                        raise NotFound(f"secret {key.id} not provided (--secret id={key.id},"
                                       "src=FILE)")
                    continue
                if key.env:
                    secret_env[key.env] = _read_secret(key.id, Path(src))
                    if not key.target:
                        continue
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="secret-")))
                copy = tmp / "secret"
                try:
                    shutil.copyfile(src, copy)
                except OSError as exc:
                    raise NotFound(f"secret {key.id}: cannot read {src}: "
                                   f"{exc.strerror or exc}") from None
                os.chown(copy, key.uid or 0, key.gid or 0)
                os.chmod(copy, key.mode if key.mode is not None else 0o400)
                target = key.target or f"/run/secrets/{key.id}"
                mounts.append(Mount("bind", str(copy), target, ("rbind", "ro")))
        yield mounts


def _read_secret(sid: str, src: Path) -> str:
    """A secret's text for `env=` (the message never shows its bytes)."""
    try:
        return src.read_text()
    except OSError as exc:
        raise NotFound(f"secret {sid}: cannot read {src}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"secret {sid}: {src} is not UTF-8 text, so it cannot be an "
                              "environment variable (mount it as a file)") from None


@contextlib.contextmanager
def _cache_mount(key: cachekey.CacheMountKey, options: RunOptions) -> Iterator[Mount]:
    if options.cache_mounts_dir is None:
        raise InvalidArgument("cache mounts need a store")
    base = options.cache_mounts_dir
    name = _SAFE_ID.sub("_", key.id).strip("_") or "root"
    if name != key.id:  # keep distinct ids distinct (a stable hash: ids persist across builds)
        name = f"{name}-{hashlib.sha256(key.id.encode()).hexdigest()[:12]}"
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(base / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    private: Path | None = None
    try:
        if key.sharing == "locked":
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        elif key.sharing == "private":
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                # in use by another build: this one gets a fresh, throwaway directory
                private = path = Path(tempfile.mkdtemp(prefix=f"{name}-private-", dir=base))
        else:
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
        data = path / "data"
        if not data.exists():
            data.mkdir()
            os.chown(data, key.uid or 0, key.gid or 0)
            os.chmod(data, key.mode if key.mode is not None else 0o755)
        mode = "ro" if key.readonly else "rw"
        yield Mount("bind", str(data), key.target, ("rbind", mode))
    finally:
        os.close(lock_fd)
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def _bind_mount(spec: MountSpec, key: cachekey.BindMountKey, ws: Workspace,
                context: BuildContext | None,
                from_states: Mapping[str, State]) -> Iterator[Mount]:
    with contextlib.ExitStack() as stack:
        if spec.from_:
            src_state = from_states[spec.from_.lower()]
            view = stack.enter_context(ws.view(src_state.layers, src_state.base_image))
            if view is None:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            else:
                root = stack.enter_context(temp_mount(view))
        else:
            assert context is not None
            root = context.root
        host = resolve_in_root(root, key.source)
        if not host.exists():
            raise NotFound(f"RUN --mount source {key.source!r} not found")
        if not spec.from_ and context is not None and host.is_dir() and context.ignore.patterns:
            filtered = _filtered_copy(context, key.source, stack)
            if filtered is not None:
                host = filtered
        if key.readwrite:
            # writes are discarded: bind a throwaway copy
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bind-rw-")))
            copy = tmp / "src"
            if host.is_dir():
                shutil.copytree(host, copy, symlinks=True)
            else:
                shutil.copy2(host, copy)
            host = copy
        yield Mount("bind", str(host), key.target, ("rbind", "rw" if key.readwrite else "ro"))


def _filtered_copy(context: BuildContext, source: str,
                   stack: contextlib.ExitStack) -> Path | None:
    """A context directory as BuildKit binds it: what survives .dockerignore. None when
    nothing under it is ignored (the directory itself is bound then)."""
    from builder.steps.fscopy import Ownership, Writer

    [match] = context.select([source])
    host = Path(match.entry.hostpath)
    total = sum(len(dirs) + len(files) for _, dirs, files in os.walk(host))
    if total == len(match.entries) - 1:
        return None
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bind-ctx-")))
    writer = Writer(tmp, Ownership(keep_owner=True))
    writer.copy_tree(match.entries, match.entry, "/src")
    writer.finish_dirs()
    return tmp / "src"


def execute(run: Run, state: State, key: str, env: Mapping[str, str],
            arg_names: Sequence[str], *, ws: Workspace, executor: Executor,
            options: RunOptions, context: BuildContext | None,
            from_states: Mapping[str, State], output: Sink | None, step: str) -> State:
    """Run the command in a fresh snapshot on top of `state`; commit its changes."""
    cfg = state.config
    command = command_of(run)
    argv = command if isinstance(command, tuple) else (*cfg.shell, command)
    keys = mount_keys(run, state, context, from_states)
    tail = Tail(output)
    with ws.active(state.layers, state.base_image, "run") as active:
        with temp_mount(active.mounts) as rootfs:
            user = resolve_user(rootfs, cfg.user)
        secret_env: dict[str, str] = {}
        with _extra_mounts(run, keys, ws, options, context, from_states, secret_env) as extra:
            penv = process_env({**env, **secret_env}, options.proxy_env, user.home)
            spec = ProcessSpec(argv=tuple(argv), env=penv, cwd=posixpath.normpath(cfg.workdir),
                               user=user,
                               network=_network(run, options),  # type: ignore[arg-type]
                               hostname="buildkitsandbox", mounts=tuple(extra))
            status = executor.run(active.mounts, spec, stdout=tail, stderr=tail)
        if not status.ok:
            shown = command if isinstance(command, str) else " ".join(command)
            raise StepFailed(
                f"{step}: RUN {shown!s} failed with exit code {status.code}"
                + (f"\n--- last output ---\n{tail.text()}" if tail.text() else ""))
        layer = ws.commit(active, state.top)
    history = created_by(run, state, env, arg_names)
    if layer is None:
        return state.advance(key, cfg.with_history(history, empty_layer=True))
    return state.advance(key, cfg.with_history(history, empty_layer=False),
                         (*state.layers, layer))
