#!/bin/sh
# Build a deterministic busybox rootfs tar from Debian's static busybox (package busybox-static)
# and import it into the strata store as busybox:latest. Offline; reruns give the same digest.
#
#   sample_images/busybox/make-base.sh [NAME:TAG]        (default busybox:latest)
# Environment: STRATA (the strata command, default `strata`), STRATA_ROOT or --root via
# STRATA_ARGS, CACHE_DIR (default /var/cache/strata-samples), SOURCE_DATE_EPOCH (default 0).
set -eu

NAME="${1:-busybox:latest}"
STRATA="${STRATA:-strata}"
CACHE_DIR="${CACHE_DIR:-/var/cache/strata-samples}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"

if ! "$BUSYBOX" --list >/dev/null 2>&1; then
    echo "make-base.sh: $BUSYBOX missing; apt-get install busybox-static" >&2
    exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "make-base.sh: $BUSYBOX is dynamically linked; install busybox-static" >&2
    exit 1
fi

mkdir -p "$CACHE_DIR"
TAR="$CACHE_DIR/busybox-rootfs.tar"
TMP="$TAR.$$.tmp"
trap 'rm -f "$TMP"' EXIT

python3 - "$BUSYBOX" "$TMP" <<'PY'
"""Deterministic tar: sorted entries, uid/gid 0, empty uname/gname, mtime 0, PAX format."""
import io
import subprocess
import sys
import tarfile

busybox, dest = sys.argv[1], sys.argv[2]
applets = sorted({a for a in subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                            check=True).stdout.split() if a and "/" not in a})


def entry(name, kind=tarfile.REGTYPE, mode=0o644, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname, info.mtime = kind, mode, size, link, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


files = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"
                  b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    "etc/hostname": b"busybox\n",
}
with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
    for d in ("bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin", "usr/sbin",
              "var", "var/log"):
        tar.addfile(entry(d, tarfile.DIRTYPE, 0o700 if d == "root" else 0o755))
    tar.addfile(entry("tmp", tarfile.DIRTYPE, 0o1777))
    with open(busybox, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        tar.addfile(entry("bin/busybox", mode=0o755, size=size), fh)
    for applet in applets:
        if applet != "busybox":
            tar.addfile(entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
    for name, data in sorted(files.items()):
        tar.addfile(entry(name, size=len(data)), io.BytesIO(data))
PY
mv "$TMP" "$TAR"

# shellcheck disable=SC2086  # STRATA_ARGS is a word list on purpose
$STRATA ${STRATA_ARGS:-} import --change 'CMD ["sh"]' \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "busybox rootfs from Debian busybox-static" "$TAR" "$NAME"
