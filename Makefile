# strata: the whole set-up is `make demo` and `make test` (Debian, as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all deps system-deps venv test demo bench lint clean

all: test

# System packages listed in .ci/apt-packages.txt, installed only when missing.
system-deps:
	@pkgs=$$(sed -e 's/#.*//' -e '/^\s*$$/d' .ci/apt-packages.txt); \
	missing=""; for p in $$pkgs; do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "missing system packages:$$missing (install them as root with apt-get)" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

deps: system-deps venv

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

demo: deps
	bash sample_images/demo.sh

# Side-by-side benchmarks (never timed tests); each prints RESULT lines. See README, Performance.
bench: deps
	$(PY) benchmarks/parse_bench.py
	$(PY) benchmarks/layer_bench.py --size-mib 256 --reps 3
	$(PY) benchmarks/registry_bench.py
	$(PY) benchmarks/build_bench.py
	$(PY) benchmarks/transfer_bench.py
	$(PY) benchmarks/ci_cache_bench.py

lint: venv
	$(VENV)/bin/ruff check dockerfile_grammar builder registry tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
