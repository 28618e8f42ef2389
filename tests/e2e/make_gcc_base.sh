#!/bin/sh
# The Debian base the c-multistage sample compiles on: debootstrap minbase bookworm plus gcc
# and libc6-dev (no network is used inside the build's RUN steps). Built once, cached as
# $CACHE_DIR/debian-bookworm-gcc.tar with the same deterministic tar options as
# sample_images/debian/make-base.sh; prints the tarball path.
#   tests/e2e/make_gcc_base.sh
# Environment: CACHE_DIR (default /var/cache/strata-samples), MIRROR, SOURCE_DATE_EPOCH (0).
set -eu
CACHE_DIR="${CACHE_DIR:-/var/cache/strata-samples}"
SUITE=bookworm
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources \
             2>/dev/null | grep -v security | head -n1 || true)
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi
tar_path="$CACHE_DIR/debian-$SUITE-gcc.tar"
if [ -s "$tar_path" ]; then
    echo "$tar_path"
    exit 0
fi
mkdir -p "$CACHE_DIR"
work=$(mktemp -d "$CACHE_DIR/.debootstrap-gcc.XXXXXX")
# shellcheck disable=SC2064  # expand now: remove this run's directory
trap "rm -rf '$work' '$tar_path.tmp'" EXIT INT TERM
debootstrap --variant=minbase --include=gcc,libc6-dev "$SUITE" "$work/rootfs" "$MIRROR" >&2
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
       "$work/rootfs/var/log/"*.log "$work/rootfs/var/cache/ldconfig/aux-cache" \
       "$work/rootfs/debootstrap"
: > "$work/rootfs/etc/hostname"
tar --create --file "$tar_path.tmp" --directory "$work/rootfs" \
    --sort=name --numeric-owner --xattrs --xattrs-include='security.capability' \
    --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
mv "$tar_path.tmp" "$tar_path"
echo "$tar_path"
