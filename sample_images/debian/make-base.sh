#!/bin/sh
# Create Debian bookworm base images with debootstrap once (cached), then import them into strata.
#
#   sample_images/debian/make-base.sh [minbase] [python] [gcc] [--all] [--tar-only]
#     minbase -> debian:bookworm          (debootstrap --variant=minbase bookworm)
#     python  -> debian-python:bookworm   (the same plus --include=python3)
#     gcc     -> debian:bookworm-gcc      (the same plus --include=gcc,libc6-dev: the compiler
#                                          base of sample_images/c-multistage, built with
#                                          --build-arg DEBIAN_TAG=bookworm-gcc)
#     --all      minbase and python (gcc only when named)
#     --tar-only build (or reuse) the cached tarballs and print their paths; import nothing
# With no variant only `minbase` is built. The rootfs tarballs are cached in $CACHE_DIR
# (default /var/cache/strata-samples) as debian-bookworm-VARIANT.tar, so a rerun only imports;
# an image already in the store is kept unless FORCE=1.
# Environment: STRATA (default `strata`), STRATA_ARGS (e.g. "--root DIR"), MIRROR (default: the
# first URIs line of /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian),
# SOURCE_DATE_EPOCH (default 0: imports of the same tarball give the same digests).
# Needs root (debootstrap) and the packages debootstrap and tar.
set -eu

STRATA="${STRATA:-strata}"
CACHE_DIR="${CACHE_DIR:-/var/cache/strata-samples}"
SUITE=bookworm
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources \
             2>/dev/null | grep -v security | head -n1 || true)
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi

variants=""
tar_only=""
for arg in "$@"; do
    case "$arg" in
        minbase|python|gcc) variants="$variants $arg" ;;
        --all) variants="$variants minbase python" ;;
        --tar-only) tar_only=1 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "make-base.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
variants="${variants:-minbase}"
selected=""  # each named variant once, in a fixed order
for variant in minbase python gcc; do
    case " $variants " in *" $variant "*) selected="$selected $variant" ;; esac
done

mkdir -p "$CACHE_DIR"

# make_tar VARIANT INCLUDE -> $CACHE_DIR/debian-$SUITE-VARIANT.tar (built once)
make_tar() {
    variant=$1 include=$2
    tar_path="$CACHE_DIR/debian-$SUITE-$variant.tar"
    if [ -s "$tar_path" ]; then
        echo "using cached $tar_path" >&2
        return 0
    fi
    work=$(mktemp -d "$CACHE_DIR/.debootstrap-$variant.XXXXXX")
    # shellcheck disable=SC2064  # expand now: the trap must remove this run's directory
    trap "rm -rf '$work' '$tar_path.tmp'" EXIT INT TERM
    echo "debootstrap --variant=minbase $include $SUITE from $MIRROR (once)" >&2
    # shellcheck disable=SC2086  # $include is empty or one word
    debootstrap --variant=minbase $include "$SUITE" "$work/rootfs" "$MIRROR" >&2
    # trim what a container base does not need; keep dpkg/apt state
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
           "$work/rootfs/var/log/"*.log "$work/rootfs/var/cache/ldconfig/aux-cache" \
           "$work/rootfs/debootstrap"
    : > "$work/rootfs/etc/hostname"
    tar --create --file "$tar_path.tmp" --directory "$work/rootfs" \
        --sort=name --numeric-owner --xattrs --xattrs-include='security.capability' \
        --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --format=posix \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
    mv "$tar_path.tmp" "$tar_path"
    rm -rf "$work"
    trap - EXIT INT TERM
}

for variant in $selected; do
    case "$variant" in
        minbase) name="debian:$SUITE"; include="" ;;
        python) name="debian-python:$SUITE"; include="--include=python3" ;;
        gcc) name="debian:$SUITE-gcc"; include="--include=gcc,libc6-dev" ;;
    esac
    if [ -n "$tar_only" ]; then
        make_tar "$variant" "$include"
        echo "$CACHE_DIR/debian-$SUITE-$variant.tar"
        continue
    fi
    # shellcheck disable=SC2086
    if [ -z "${FORCE:-}" ] && $STRATA ${STRATA_ARGS:-} inspect --id "$name" >/dev/null 2>&1; then
        echo "$name is already in the store (FORCE=1 re-imports)" >&2
        continue
    fi
    make_tar "$variant" "$include"
    # shellcheck disable=SC2086  # STRATA_ARGS is a word list on purpose
    $STRATA ${STRATA_ARGS:-} import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --message "debootstrap --variant=minbase $include $SUITE" \
        "$CACHE_DIR/debian-$SUITE-$variant.tar" "$name"
done
