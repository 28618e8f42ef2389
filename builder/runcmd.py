"""`strata run`: a command in a container made from a stored image (docker run's basics).

The container is an ACTIVE snapshot on top of the image's layers (the same snapshotter and
executor as RUN steps); its process is ENTRYPOINT + (the given command or CMD), with the
image's Env, WorkingDir and User unless overridden. Its exit code is returned. strata keeps
no container records: the snapshot is discarded when the process ends (`--rm` is implied).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from builder.cache import BuildCache
from builder.errors import InvalidArgument
from builder.executor import ProcessSpec, open_executor, process_network, resolve_user
from builder.imageconfig import DEFAULT_PATH
from builder.images import ImageStore
from builder.mounts import Mount, temp_mount
from builder.snapshots import open_snapshotter
from builder.steps import Layer
from builder.steps.workspace import Workspace
from dockerfile_grammar.network import RUN_NETWORK_MODES
from registry.oci import Descriptor, Digest


@dataclass(frozen=True, slots=True)
class RunRequest:
    image: str
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    network: str = "default"
    remove: bool = True
    entrypoint: str | None = None
    snapshotter: str = "auto"
    isolation: str = "auto"


def _volume(spec: str) -> Mount:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise InvalidArgument(f"invalid volume {spec!r}: expected HOST:CONTAINER[:ro|rw]")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid volume mode {mode!r} (ro or rw)")
    host = Path(parts[0]).absolute()
    if not host.exists():
        host.mkdir(parents=True)
    return Mount("bind", str(host), parts[1], ("rbind", mode))


def run_container(root: Path, req: RunRequest) -> int:
    """Run `req` and return the process's exit code."""
    # docker run's default network is "bridge"; without one here it means the host's network
    if req.network not in (*RUN_NETWORK_MODES, "bridge"):
        raise InvalidArgument(
            f"unsupported --network {req.network!r} ({', '.join(RUN_NETWORK_MODES)})")
    network = process_network("host" if req.network == "bridge" else req.network)
    volumes = tuple(_volume(v) for v in req.volumes)
    store = ImageStore(root)
    cache = BuildCache(root / "strata.db")
    try:
        image = store.resolve(req.image)
        config = store.config(image).config
        layers = tuple(Layer(Descriptor(r.media_type, Digest.parse(r.blob_digest), r.size),
                             r.diff_id, r.chain_id) for r in store.layers(image))
        entrypoint = ([req.entrypoint] if req.entrypoint else
                      [] if req.entrypoint == "" else list(config.get("Entrypoint") or []))
        cmd = list(req.command) if req.command else (
            [] if req.entrypoint else list(config.get("Cmd") or []))
        argv = tuple(entrypoint + cmd)
        if not argv:
            raise InvalidArgument("no command specified (the image has no CMD or ENTRYPOINT)")
        env: dict[str, str] = {}
        for item in config.get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        env.update(req.env)
        env.setdefault("PATH", DEFAULT_PATH)
        sn = open_snapshotter(root / "snapshots", req.snapshotter)
        ws = Workspace(root, sn, cache)
        with store.gc_guard():
            try:
                with ws.active(layers, str(image.manifest.digest), "run") as active:
                    with temp_mount(active.mounts) as rootfs:
                        user = resolve_user(rootfs, req.user if req.user is not None
                                            else str(config.get("User") or ""))
                    env.setdefault("HOME", user.home or "/")
                    env.setdefault("HOSTNAME", "strata")
                    spec = ProcessSpec(argv=argv, env=tuple(f"{k}={v}" for k, v in env.items()),
                                       cwd=req.workdir or str(config.get("WorkingDir") or "/"),
                                       user=user, network=network,
                                       mounts=volumes)
                    executor = open_executor(req.isolation, state_dir=root / "run")
                    status = executor.run(active.mounts, spec, stdout=sys.stdout.buffer,
                                          stderr=sys.stderr.buffer)
            finally:
                ws.close()
        return status.code
    finally:
        cache.close()
        store.close()
