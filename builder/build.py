"""The build orchestrator: plan -> stages (independent ones concurrently) -> steps -> image.

For each needed stage, in the planner's levels: resolve the base (a local image keyed by its
manifest digest, `scratch`, or an earlier stage), run its base image's ONBUILD triggers, then
for each instruction compute the step key, ask the cache, and only on a miss run the step
(builder.steps.*). A cache hit touches no snapshot and hashes nothing beyond the context's
metadata index. At the end the config and manifest of the target stage are written and tagged.

Three seams, passed to `Builder` (builder.remotecache uses them for the CI cache):

* `StepCache` (builder.cache): lookup / prepare / record of step results; default
  `LocalStepCache` over the store's BuildCache;
* `BaseResolver` (builder.bases): image reference -> BaseImage; default `StoreResolver`
  (the local store, pulling a registry image it lacks);
* `ImageWriter` (here): writes the target's config and manifest; default `StoreImageWriter`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from builder import cachekey
from builder.bases import BaseImage, BaseResolver, StoreResolver, names_registry
from builder.cache import BuildCache, CachedLayer, CacheRecord, LocalStepCache, StepCache, StepInfo
from builder.content import write_bytes
from builder.context import RACY_WINDOW_NS, BuildContext
from builder.errors import InvalidArgument, NotFound, StepFailed, StrataError
from builder.executor import Executor, open_executor
from builder.imageconfig import DEFAULT_PATH, ConfigState
from builder.images import Image, ImageStore, normalize_name
from builder.planner import BuildPlan, StagePlan, plan
from builder.progress import Progress, Summary
from builder.snapshots import open_snapshotter
from builder.steps import Layer, State
from builder.steps import copy as copy_step
from builder.steps import metadata as meta_step
from builder.steps import run as run_step
from builder.steps.workspace import Workspace
from dockerfile_grammar.cache import parse_file_cached
from dockerfile_grammar.errors import DockerfileError
from dockerfile_grammar.instructions import Add, Arg, Copy, Instruction, Run, Workdir
from dockerfile_grammar.scope import BuildScope, Platform, StageScope, host_platform
from dockerfile_grammar.scope import platform_args as make_platform_args
from registry.oci import (
    Descriptor,
    Digest,
    HistoryEntry,
    ImageConfig,
    ImageManifest,
    canonical_bytes,
    mediatypes,
)

T = TypeVar("T")

#: seconds the build waits for the layer writer before saying that it is waiting for it
WRITER_NOTE_AFTER = 1.0

#: exceptions that mean a bug in strata, never bad input: a step that raises one is not
#: turned into a StepFailed (the steps raise builder.errors categories for what they expect)
PROGRAMMING_ERRORS: tuple[type[Exception], ...] = (
    TypeError, AttributeError, LookupError, NameError, AssertionError, NotImplementedError,
    RecursionError, ArithmeticError, ImportError)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    context_dir: Path
    dockerfile: Path | None = None
    tags: tuple[str, ...] = ()
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    no_cache: bool = False
    no_cache_filter: tuple[str, ...] = ()
    secrets: Mapping[str, Path] = field(default_factory=dict)
    network: str = "default"
    snapshotter: str = "auto"
    isolation: str = "auto"
    source_date_epoch: int | None = None
    insecure_registries: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BuildResult:
    image: Image
    cached: int
    run: int
    seconds: float
    bases: tuple[tuple[str, str], ...] = ()
    """Every image reference the build read (FROM, COPY --from, mounts) -> manifest digest."""
    fetched_urls: bool = False
    """An ADD read an http(s) URL: the result depends on more than the local inputs."""

    @property
    def image_id(self) -> str:
        return self.image.id


def _rfc3339(epoch: float) -> str:
    stamp = dt.datetime.fromtimestamp(epoch, dt.UTC)
    if epoch == int(epoch):
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _located(exc: StrataError, where: str) -> StrataError:
    text = str(exc)
    if not text.startswith(where):
        exc.args = (f"{where}: {text}",)
    return exc


def check_platform(text: str | None) -> Platform:
    host = host_platform()
    if not text:
        return host
    try:
        wanted = Platform.parse(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if (wanted.os, wanted.architecture, wanted.variant) != (host.os, host.architecture,
                                                             host.variant):
        raise InvalidArgument(f"platform {wanted} is not supported: this builder only builds "
                              f"for the host platform {host}")
    return host


class _Counter:
    def __init__(self) -> None:
        self.cached = 0
        self.run = 0
        self._lock = threading.Lock()

    def add(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.cached += 1
            else:
                self.run += 1


@dataclass(frozen=True, slots=True)
class FinalImage:
    """What the target stage produced, ready to be written as an image."""

    config: ImageConfig  # finalized: --label applied, history times filled and clamped
    layers: tuple[Descriptor, ...]  # bottom first; blobs may be remote (a lazy cache import)
    tags: tuple[str, ...]
    stages: tuple[int, ...]  # the target stage, then the stages it is built FROM


class ImageWriter(Protocol):
    """Writes the build's image (config blob, manifest, names) into the store; called once,
    on the main thread, while the build holds the store's gc guard."""

    def write_image(self, store: ImageStore, final: FinalImage) -> Image: ...


def image_manifest(store: ImageStore, config_bytes: bytes,
                   layers: tuple[Descriptor, ...]) -> ImageManifest:
    """The OCI manifest of `config_bytes` + `layers`; the config blob is stored if absent."""
    config_digest = Digest("sha256", hashlib.sha256(config_bytes).hexdigest())
    if not store.content.exists(config_digest):
        write_bytes(store.content, config_bytes)
    return ImageManifest(mediatypes.OCI_MANIFEST,
                         Descriptor(mediatypes.OCI_CONFIG, config_digest, len(config_bytes)),
                         layers)


def register_image(store: ImageStore, manifest: ImageManifest, tags: tuple[str, ...]) -> Image:
    """Store `manifest` (all its blobs local) and point `tags` at it; a no-op rebuild (the
    image and its names are already there) writes nothing."""
    data = canonical_bytes(manifest.to_json())
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if store.db.image(digest) is not None and all(
            store.db.ref(normalize_name(t)) == digest for t in tags):
        return store.resolve(digest)
    return store.add_manifest(manifest, list(tags))


class StoreImageWriter:
    """The default ImageWriter: the image goes into the local store, tagged."""

    def write_image(self, store: ImageStore, final: FinalImage) -> Image:
        manifest = image_manifest(store, final.config.to_bytes(), final.layers)
        return register_image(store, manifest, final.tags)


class Builder:
    """One build of one Dockerfile against one store root.

    `step_cache`, `resolver` and `image_writer` replace the defaults (see the module
    docstring); the builder does not close them."""

    def __init__(self, store_root: Path, options: BuildOptions, progress: Progress, *,
                 step_cache: StepCache | None = None, resolver: BaseResolver | None = None,
                 image_writer: ImageWriter | None = None) -> None:
        self.root = Path(store_root)
        self.options = options
        self.progress = progress
        self.platform = check_platform(options.platform)
        self.store = ImageStore(self.root)
        self.cache = BuildCache(self.root / "strata.db")
        self.step_cache = step_cache or LocalStepCache(self.cache, self.store.content)
        self.resolver = resolver or StoreResolver(self.store, self._pull)
        self.image_writer = image_writer or StoreImageWriter()
        self.counter = _Counter()
        self.scopes: dict[int, StageScope] = {}
        self.finals: dict[int, State] = {}
        self._scope_lock = threading.Lock()
        self._executor: Executor | None = None
        self._exec_lock = threading.Lock()
        self._fetched_urls = False

    # ------------------------------------------------------------------ entry point

    def build(self) -> BuildResult:
        t0 = time.monotonic()
        opts = self.options
        dockerfile = opts.dockerfile or opts.context_dir / "Dockerfile"
        try:
            df = parse_file_cached(dockerfile) if dockerfile.exists() else None
        except DockerfileError as exc:
            raise InvalidArgument(str(exc)) from None
        if df is None:
            raise NotFound(f"Dockerfile {dockerfile} not found")
        platform_values = make_platform_args(self.platform, self.platform)
        try:
            self.scope = BuildScope(df, opts.build_args, platform_values=platform_values)
            self.plan = plan(df, target=opts.target, global_env=self.scope.global_env)
        except DockerfileError as exc:
            raise InvalidArgument(str(exc)) from None
        self.df = df
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.store.gc_guard())
            stack.callback(self.store.close)
            stack.callback(self.cache.close)
            self.context = stack.enter_context(BuildContext.open(
                opts.context_dir, dockerfile, state_dir=self.root,
                racy_window_ns=racy_window(opts.context_dir)))
            self.ws = Workspace(self.root, lambda: open_snapshotter(self.root / "snapshots",
                                                                   opts.snapshotter),
                                self.cache,
                                source_date_epoch=opts.source_date_epoch)
            stack.callback(self.ws.close)
            self.images = self._resolve_images()
            self.run_options = run_step.RunOptions(
                network=opts.network, secrets=dict(opts.secrets),
                proxy_env=dict(self.scope.proxy_env),
                cache_mounts_dir=self.root / "cache-mounts", platform=str(self.platform))
            for level in self.plan.levels:
                if len(level) == 1:
                    self.finals[level[0]] = self._stage(level[0])
                else:
                    with ThreadPoolExecutor(max_workers=min(4, len(level))) as pool:
                        futures = {i: pool.submit(self._stage, i) for i in level}
                        for i, fut in futures.items():
                            self.finals[i] = fut.result()
            final = self.finals[self.plan.target]
            if not self.ws.drain(timeout=WRITER_NOTE_AFTER):
                self.progress.note("writing layer blobs ...")
                self.ws.drain()
            image = self._write_image(final)
        bases = tuple((ref, str(base.image.manifest.digest))
                      for ref, base in self.images.items())
        return BuildResult(image, self.counter.cached, self.counter.run, time.monotonic() - t0,
                           bases, self._fetched_urls)

    # ------------------------------------------------------------------ bases

    def _resolve_images(self) -> dict[str, BaseImage]:
        """Every image reference the needed stages read, resolved once (main thread)."""
        refs: list[str] = []
        for index in self.plan.order:
            sp = self.plan.stages[index]
            if sp.base.image is not None and not sp.base.is_scratch:
                refs.append(sp.base.image)
            refs.extend(sp.images)
        out: dict[str, BaseImage] = {}
        for ref in refs:
            if ref not in out:
                out[ref] = self.resolver.resolve(ref)
        return out

    def _pull(self, ref: str) -> Image:
        """Pull a base image named with its registry (`host[:port]/name:tag`)."""
        from builder.transfer import RemoteOptions, pull_image

        self.progress.note(f"pulling {ref}")
        options = RemoteOptions(insecure=tuple(self.options.insecure_registries))
        return pull_image(self.store, ref, str(self.platform), options=options, unpack=False)

    def _image_state(self, ref: str) -> State:
        base = self.images[ref]
        key = cachekey.from_key(base.image.manifest.digest, str(self.platform))
        cfg = ConfigState.from_base(base.config)
        if "PATH" not in cfg.env:  # BuildKit gives every stage a PATH
            cfg = cfg.set_env([("PATH", DEFAULT_PATH)])
        return State(key, cfg, base.layers, str(base.image.manifest.digest))

    def _base_state(self, sp: StagePlan) -> State:
        state = self._base_state_unkeyed(sp)
        epoch = self.options.source_date_epoch
        if sp.base.stage is None and epoch is not None:
            # clamped layers differ from unclamped ones: never share cache entries
            state = replace(state, key=cachekey.step_key(
                state.key, {"kind": "SOURCE_DATE_EPOCH", "value": epoch}, {}))
        return state

    def _base_state_unkeyed(self, sp: StagePlan) -> State:
        if sp.platform:
            try:
                check_platform(sp.platform)
            except InvalidArgument as exc:
                loc = sp.stage.base.location
                raise InvalidArgument(f"{loc.filename}:{loc.line}: FROM --platform: {exc}") \
                    from None
        if sp.base.stage is not None:
            parent = self.finals[sp.base.stage]
            return replace(parent, config=replace(parent.config, cmd_set=False))
        if sp.base.is_scratch:
            p = self.platform
            scratch = ConfigState.scratch(p.os, p.architecture, p.variant or None)
            return State(cachekey.scratch_key(str(p)), scratch.set_workdir("/"))
        assert sp.base.image is not None
        return self._image_state(sp.base.image)

    def _from_states(self, sp: StagePlan) -> dict[str, State]:
        out: dict[str, State] = {}
        for dep in sp.deps:
            st = self.plan.stages[dep]
            out[str(dep)] = self.finals[dep]
            if st.name:
                out[st.name.lower()] = self.finals[dep]
        for ref in sp.images:
            out[ref.lower()] = self._image_state(ref)
        return out

    def _scope(self, sp: StagePlan, state: State, triggers: list[Instruction]) -> StageScope:
        with self._scope_lock:
            try:
                if sp.base.stage is not None:
                    parent = self.scopes[sp.base.stage]
                    scope = self.scope.stage(sp.stage, parent=parent, triggers=triggers)
                else:
                    scope = self.scope.stage(sp.stage, base_env=state.config.env,
                                             triggers=triggers)
            except DockerfileError as exc:
                raise InvalidArgument(str(exc)) from None
            self.scopes[sp.index] = scope
            return scope

    # ------------------------------------------------------------------ stages

    def _no_cache(self, sp: StagePlan) -> bool:
        if self.options.no_cache:
            return True
        wanted = {f.lower() for f in self.options.no_cache_filter}
        return bool(wanted) and (sp.label.lower() in wanted or str(sp.index) in wanted)

    def _stage(self, index: int) -> State:
        sp = self.plan.stages[index]
        state = self._base_state(sp)
        triggers = _parse_triggers(state.config.values.get("OnBuild") or [])
        if triggers or state.config.values.get("OnBuild"):
            state = replace(state, config=state.config.clear_onbuild())
        scope = self._scope(sp, state, triggers)
        from_states = self._from_states(sp)
        total = len(scope.instructions)
        no_cache = self._no_cache(sp)
        declared: set[str] = set()  # ARGs of this stage so far (RUN history lists only these)
        for n, scoped in enumerate(scope.instructions, 1):
            instr = scoped.expanded
            if isinstance(instr, Arg):
                declared.update(d.name for d in instr.args)
                state = meta_step.arg_step(scoped.instruction, scoped.env, state,
                                           self.scope.escape)
                continue
            scoped = replace(scoped, arg_names=tuple(
                a for a in scoped.arg_names if a in declared))
            label = f"[{sp.label} {n}/{total}] {_describe(scoped.instruction)}"
            state = self._step(sp, label, instr, scoped, state, from_states, no_cache)
        return state

    def _step(self, sp: StagePlan, label: str, instr: Instruction, scoped: Any, state: State,
              from_states: dict[str, State], no_cache: bool) -> State:
        if isinstance(instr, meta_step.METADATA_TYPES):
            return meta_step.metadata_step(instr, state)
        step = self.progress.start(label)
        try:
            new, hit = self._dispatch(sp, label, step, instr, scoped, state, from_states,
                                      no_cache)
        except StrataError as exc:  # what the step expected: its own message, located
            self.progress.finish(step, "error", str(exc))
            raise _located(exc, label) from None
        except PROGRAMMING_ERRORS as exc:  # a bug: keep its type and traceback
            self.progress.finish(step, "error", f"{label}: {type(exc).__name__}: {exc}")
            raise
        except Exception as exc:
            # last resort: a failure the step did not foresee (a full disk, a vanished file)
            # fails the step with its label and the exception type, without a traceback
            message = f"{label}: unexpected {type(exc).__name__}: {exc}"
            self.progress.finish(step, "error", message)
            raise StepFailed(message) from exc
        except BaseException as exc:
            self.progress.finish(step, "error", str(exc))
            raise
        self.counter.add(hit)
        self.progress.finish(step, "cached" if hit else "done")
        return new

    def _dispatch(self, sp: StagePlan, label: str, step: int, instr: Instruction, scoped: Any,
                  state: State, from_states: dict[str, State],
                  no_cache: bool) -> tuple[State, bool]:
        def info(key: str) -> StepInfo:
            return _step_info(key, sp, instr, state, from_states)

        if isinstance(instr, Workdir):
            key, cfg = meta_step.workdir_key(instr, state)
            return self._cached_or(info(key), label, state, no_cache,
                                   lambda: meta_step.workdir_execute(instr, state, key, cfg,
                                                                     ws=self.ws))
        if isinstance(instr, Run):
            env = dict(scoped.env)
            key = run_step.run_key(instr, state, env, self.run_options, self.context,
                                   from_states)

            class _Out:
                def write(inner, data: bytes) -> int:  # noqa: N805
                    self.progress.output(step, data)
                    return len(data)

            return self._cached_or(info(key), label, state, no_cache, lambda: run_step.execute(
                instr, state, key, env, scoped.arg_names, ws=self.ws,
                executor=self._get_executor(), options=self.run_options,
                context=self.context, from_states=from_states, output=_Out(), step=label))
        if isinstance(instr, Copy | Add):
            if isinstance(instr, Add) and any(s.startswith(copy_step.URL_PREFIXES)
                                              for s in instr.sources):
                self._fetched_urls = True
            cplan = copy_step.plan_copy(instr, state, self.context, from_states)
            try:
                return self._cached_or(info(cplan.key), label, state, no_cache,
                                       lambda: self._copy(cplan, state, label, no_cache))
            finally:
                cplan.cleanup()
        raise InvalidArgument(f"unsupported instruction {instr.KEYWORD}")

    def _copy(self, cplan: copy_step.CopyPlan, state: State, label: str,
              no_cache: bool) -> State:
        """Run a COPY/ADD; a --link layer built before (on any base) is reused as is."""
        layer_key = cplan.layer_key
        if layer_key is not None and not no_cache:
            rec = self.cache.get(layer_key, self.store.content)
            if rec is not None and rec.layer is not None:
                return copy_step.with_linked_layer(cplan, state, rec.layer.descriptor,
                                                   rec.layer.diff_id)
        new = copy_step.execute(cplan, state, ws=self.ws, context=self.context, step=label)
        if layer_key is not None and len(new.layers) > len(state.layers):
            top = new.layers[-1]
            self.cache.put(layer_key, CacheRecord(CachedLayer(top.descriptor, top.diff_id), {}))
        return new

    def _cached_or(self, info: StepInfo, label: str, state: State, no_cache: bool,
                   run: Callable[[], State]) -> tuple[State, bool]:
        if not no_cache:
            rec = self.step_cache.lookup(info)
            if rec is not None:
                cfg = ConfigState(ImageConfig.from_json(rec.config), cmd_set=rec.cmd_set)
                layers = state.layers
                if rec.layer is not None:
                    layers = state.with_layer(rec.layer.descriptor, rec.layer.diff_id)
                return state.advance(info.key, cfg, layers), True
        self.step_cache.prepare(info)
        new = run()
        new = replace(new, config=_stamp_last(new.config, self.options.source_date_epoch))
        added = new.top if len(new.layers) > len(state.layers) else None

        def record() -> None:  # in the writer thread, once the step's blob is written
            try:
                layer = None if added is None else added.result()
            except StrataError as exc:
                raise _located(exc, label) from None
            except Exception as exc:
                raise StepFailed(f"{label}: writing its layer: {type(exc).__name__}: {exc}"
                                 ) from exc
            cached = None if layer is None else CachedLayer(layer.descriptor, layer.diff_id)
            self.step_cache.record(info, CacheRecord(cached, new.image_config().to_json(),
                                                     new.config.cmd_set))

        self.ws.after(record)
        return new, False

    def _get_executor(self) -> Executor:
        with self._exec_lock:
            if self._executor is None:
                self._executor = open_executor(self.options.isolation,
                                               state_dir=self.root / "run")
            return self._executor

    # ------------------------------------------------------------------ the image

    def _write_image(self, final: State) -> Image:
        cfg = final.config
        if self.options.labels:
            cfg = cfg.set_labels(list(self.options.labels.items()))
        stages = [self.plan.target]
        sp = self.plan.stages[self.plan.target]
        while sp.base.stage is not None:
            stages.append(sp.base.stage)
            sp = self.plan.stages[sp.base.stage]
        return self.image_writer.write_image(self.store, FinalImage(
            finalize_config(replace(final, config=cfg).image_config(),
                            self.options.source_date_epoch),
            tuple(layer.descriptor for layer in final.layers), tuple(self.options.tags),
            tuple(stages)))


def racy_window(context_dir: Path) -> int:
    """How long after a file's mtime its remembered hash is trusted (git's racy-clean rule).

    On a filesystem with nanosecond timestamps a write lands at most one clock tick (<= 10 ms)
    behind real time, so 50 ms is safe and a freshly generated context is trusted on the very
    next build; with whole-second timestamps (the root's mtime has no fraction) keep 2 s."""
    try:
        fine = os.stat(context_dir).st_mtime_ns % 1_000_000_000 != 0
    except OSError:
        fine = False
    return 50_000_000 if fine else RACY_WINDOW_NS


def _stamp_last(cfg: ConfigState, epoch: int | None) -> ConfigState:
    """Give the history entry a step just added its creation time."""
    history = cfg.config.history
    if not history or history[-1].created is not None:
        return cfg
    now = time.time() if epoch is None else min(time.time(), epoch)
    last = replace(history[-1], created=_rfc3339(now))
    return replace(cfg, config=replace(cfg.config, history=(*history[:-1], last)))


def finalize_config(config: ImageConfig, epoch: int | None) -> ImageConfig:
    """Fill history times (a config-only step takes the time of the entry before it, so a
    fully cached rebuild gives the same config), clamp them to SOURCE_DATE_EPOCH, and set
    `created` to the newest history time."""
    stamp = _rfc3339(epoch) if epoch is not None else None
    entries: list[HistoryEntry] = []
    previous: str | None = None
    for h in config.history:
        created = h.created or previous
        if stamp is not None and (created is None or created > stamp):
            created = stamp
        entries.append(replace(h, created=created))
        previous = created or previous
    if previous is None:
        previous = stamp or _rfc3339(time.time())
    return replace(config, history=tuple(entries), created=previous)


def _parse_triggers(triggers: list[str]) -> list[Instruction]:
    if not triggers:
        return []
    from dockerfile_grammar.parser import parse  # Lark: only for a base with ONBUILD

    out: list[Instruction] = []
    for text in triggers:
        try:
            df = parse(f"FROM scratch\n{text}\n", filename="ONBUILD")
        except DockerfileError as exc:
            raise InvalidArgument(f"ONBUILD trigger {text!r}: {exc}") from None
        out.extend(df.stages[0].instructions)
    return out


def _step_info(key: str, sp: StagePlan, instr: Instruction, state: State,
               from_states: dict[str, State]) -> StepInfo:
    """What a StepCache learns about a step: its key, stage, the blobs a run would read."""
    names: list[str] = []
    mounts: tuple[str, ...] = ()
    if isinstance(instr, Copy) and instr.from_:
        names.append(instr.from_.lower())
    if isinstance(instr, Run):
        names.extend(str(m.from_).lower() for m in instr.mounts if getattr(m, "from_", None))
        mounts = tuple(m.id or m.target or "" for m in instr.mounts if m.type == "cache")
    reads = [from_states[n] for n in names if n in from_states]
    blobs = tuple(layer.descriptor for source in (state, *reads) for layer in source.layers
                  if isinstance(layer, Layer))  # a pending layer is being written here
    return StepInfo(key, state.key, sp.index, sp.label, blobs, mounts)


def _describe(instr: Instruction) -> str:
    text = instr.original.strip() or instr.KEYWORD
    return text if len(text) <= 200 else text[:197] + "..."


def build(store_root: Path, options: BuildOptions, progress: Progress) -> BuildResult:
    """Build `options.context_dir` into the store at `store_root`; see BuildOptions."""
    builder = Builder(store_root, options, progress)
    result = builder.build()
    progress.close(Summary(result.image.id, result.image.names, result.image.size,
                           result.cached, result.run, result.seconds))
    return result


def source_date_epoch_from_env(env: Mapping[str, str] | None = None) -> int | None:
    value = (env if env is not None else os.environ).get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"SOURCE_DATE_EPOCH={value!r} is not an integer") from None


__all__ = ["BuildOptions", "BuildPlan", "BuildResult", "Builder", "FinalImage", "ImageWriter",
           "StoreImageWriter", "build", "check_platform", "finalize_config", "image_manifest",
           "names_registry", "register_image", "source_date_epoch_from_env"]
