#!/usr/bin/env bash
# `make demo`: the whole loop on this machine, offline.
#   parse the samples -> make the busybox base -> start strata-registry -> strata build
#   -> strata push -> strata pull into a second, empty store -> strata run.
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA=${STRATA:-$PWD/.venv/bin/strata}
REGISTRY=${REGISTRY:-$PWD/.venv/bin/strata-registry}
WORK=$(mktemp -d /tmp/strata-demo.XXXXXX)
BUILD_ROOT=$WORK/build-store
PULL_ROOT=$WORK/pull-store
REG_PID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. parse every sample Dockerfile (strata parse)"
for df in sample_images/*/Dockerfile; do
  echo "-- $df"
  "$STRATA" parse "$df"
done

step "2. base image: busybox from Debian's busybox-static (sample_images/busybox/make-base.sh)"
STRATA="$STRATA" STRATA_ARGS="--root $BUILD_ROOT" CACHE_DIR="$WORK/cache" \
  sample_images/busybox/make-base.sh busybox:latest

step "3. start strata-registry on loopback"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$REGISTRY" serve --root "$WORK/registry" --addr "127.0.0.1:$PORT" --log-format text \
  >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS -D - -o /dev/null "http://127.0.0.1:$PORT/v2/" | grep -i '^docker-distribution-api-version'

step "4. strata build sample_images/hello-busybox"
"$STRATA" --root "$BUILD_ROOT" build --progress=plain -t hello:demo sample_images/hello-busybox
"$STRATA" --root "$BUILD_ROOT" images

step "5. strata push 127.0.0.1:$PORT/demo/hello:1"
"$STRATA" --root "$BUILD_ROOT" tag hello:demo "127.0.0.1:$PORT/demo/hello:1"
"$STRATA" --root "$BUILD_ROOT" push --progress plain "127.0.0.1:$PORT/demo/hello:1"
curl -fsS "http://127.0.0.1:$PORT/v2/demo/hello/tags/list"; echo
"$STRATA" search --registry "http://127.0.0.1:$PORT" hello

step "6. strata pull into an empty store"
"$STRATA" --root "$PULL_ROOT" pull --progress plain "127.0.0.1:$PORT/demo/hello:1"
"$STRATA" --root "$PULL_ROOT" images

step "7. strata run"
"$STRATA" --root "$PULL_ROOT" run --rm "127.0.0.1:$PORT/demo/hello:1"
"$STRATA" --root "$PULL_ROOT" run --rm "127.0.0.1:$PORT/demo/hello:1" cat /srv/greeting.txt

step "done"
