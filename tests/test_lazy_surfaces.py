"""registry.oci and dockerfile_grammar load their names on first use; the names stay right."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_submodule_does_not_shadow_the_function_of_the_same_name() -> None:
    assert _python("import dockerfile_grammar.expand\n"
                   "from dockerfile_grammar import expand\n"
                   "import dockerfile_grammar as d\n"
                   "print(callable(expand), d.expand is expand, type(expand).__name__)"
                   ) == "True True function"


def test_every_exported_name_resolves() -> None:
    assert _python("import dockerfile_grammar as d, registry.oci as o\n"
                   "print(all(getattr(m, n) is not None for m in (d, o) for n in m.__all__))"
                   ) == "True"


def test_leaf_imports_stay_light() -> None:
    loaded = _python("import sys\n"
                     "import registry.oci.errors, dockerfile_grammar.network, builder.cli\n"
                     "print(' '.join(sorted(sys.modules)))").split()
    for heavy in ("lark", "registry.oci.manifest", "dockerfile_grammar.instructions",
                  "builder.images", "aiohttp"):
        assert heavy not in loaded
