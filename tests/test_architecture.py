"""The dependency diagram of DESIGN.md section 2, enforced on the source tree."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dockerfile_grammar", "builder", "registry")

# module prefix -> project prefixes it may import (first match wins, most specific first).
ALLOWED: list[tuple[str, tuple[str, ...]]] = [
    ("dockerfile_grammar", ("dockerfile_grammar",)),
    ("registry.oci", ("registry.oci",)),
    ("registry.storage", ("registry.storage", "registry.oci")),
    ("registry.client", ("registry.client", "registry.oci")),
    ("registry.search", ("registry.search", "registry.storage", "registry.oci")),
    ("registry.auth", ("registry.auth", "registry.oci")),
    ("registry.server", ("registry",)),
    ("registry", ("registry.oci",)),
    ("builder", ("builder", "dockerfile_grammar", "registry.oci", "registry.client")),
]
# third-party modules a layer must never import
FORBIDDEN_EXTERNAL: dict[str, tuple[str, ...]] = {
    "dockerfile_grammar": ("aiohttp", "aiofiles"),
    "registry.oci": ("aiohttp", "aiofiles", "lark", "zstandard", "cryptography"),
    "registry.storage": ("aiohttp.web",),
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append((".".join(parts), path))
    return found


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            names.add(target)
            for alias in node.names:
                names.add(f"{target}.{alias.name}")
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _rule(module: str) -> tuple[str, ...]:
    for prefix, allowed in ALLOWED:
        if _within(module, prefix):
            return allowed
    raise AssertionError(f"no dependency rule for {module}")


def test_imports_follow_the_dependency_diagram() -> None:
    problems = []
    for module, path in _modules():
        allowed = _rule(module)
        for name in _imports(module, path):
            top = name.split(".")[0]
            if top in PACKAGES and not any(_within(name, a) for a in allowed):
                # `from registry import oci` style names resolve to a submodule; accept
                # the package itself only when a permitted submodule sits below it.
                if any(_within(a, name) for a in allowed):
                    continue
                problems.append(f"{module} imports {name}")
            for layer, banned in FORBIDDEN_EXTERNAL.items():
                if _within(module, layer) and any(_within(name, b) for b in banned):
                    problems.append(f"{module} imports {name} (forbidden in {layer})")
    assert not problems, "\n".join(sorted(problems))


def test_registry_package_init_stays_empty() -> None:
    assert (ROOT / "registry" / "__init__.py").read_text().strip() == ""


@pytest.mark.parametrize("module", [m for m, _ in _modules()])
def test_module_imports_on_its_own(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


# (importing module, imported name) pairs known to break the rule, each waiting for its
# owner's fix; never add to it.
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()


def _private_imports(module: str, path: Path) -> set[str]:
    """Project names `module` imports that another module keeps private (a leading underscore
    on the name or on any module in its dotted path)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES
                         and any(_is_private(p) for p in a.name.split(".")))
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            if target.split(".")[0] not in PACKAGES:
                continue  # stdlib and third-party (e.g. _typeshed) are not ours to judge
            private_module = any(_is_private(p) for p in target.split("."))
            for alias in node.names:
                if private_module or _is_private(alias.name):
                    found.add(f"{target}.{alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another_module() -> None:
    seen = {(module, name) for module, path in _modules()
            for name in _private_imports(module, path)}
    unexpected = sorted(f"{m} imports {n}" for m, n in seen - KNOWN_PRIVATE_IMPORTS)
    assert not unexpected, "\n".join(unexpected)


# the modules that may start an event loop: the builder's one bridge to the registry client,
# and the registry's own server entry points
EVENT_LOOP_OWNERS = ("builder.transfer", "registry.server", "registry.client")
_LOOP_STARTERS = ("asyncio.run(", "new_event_loop(", "run_until_complete(", "asyncio.Runner(")


def test_only_transfer_and_the_registry_run_event_loops() -> None:
    problems = [f"{module}: {call}" for module, path in _modules()
                if not any(_within(module, owner) for owner in EVENT_LOOP_OWNERS)
                for call in _LOOP_STARTERS if call in path.read_text()]
    assert not problems, "\n".join(problems)
