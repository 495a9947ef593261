#!/usr/bin/env bash
# fetch-kernel.sh [META] — put a Debian distro kernel (vmlinuz + modules) into
# the lab cache, outside the repository.
#
# META is a Debian kernel meta package; the default, linux-image-6.12-amd64
# (bookworm-security), is the first Debian 12 kernel with ublk_drv, and it
# also carries rdma_rxe, ib_srpt, ib_srp, dm_multipath, raid1 and null_blk as
# modules. bookworm's own 6.1 (linux-image-amd64) has no ublk.
#
# The concrete image package the meta package depends on is fetched with
# `apt-get download` (no installation, the host's /boot is untouched),
# unpacked with `dpkg -x`, and indexed with `depmod -b`. Idempotent: with the
# same candidate version already unpacked nothing is downloaded.
#
# Output on stdout (also stored as $LAB_CACHE/kernel/META.env for vm-run.sh):
#   KVER=6.12.NN+deb12-amd64  KERNEL_DIR=...  KPKG=...  KPKGVER=...
#
# Env: LAB_CACHE  cache directory (default /var/cache/srp-mpathd-lab); it must
#                 not be inside a git work tree.
#      LAB_KMETA  default META.
#      LAB_KPKG   concrete image package, bypassing META (e.g. to pin a version).
set -euo pipefail

CACHE=${LAB_CACHE:-/var/cache/srp-mpathd-lab}
META=${1:-${LAB_KMETA:-linux-image-6.12-amd64}}
ROOT=$CACHE/kernel

say() { echo "fetch-kernel: $*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$ROOT"
# ~100 MB of kernel must never land in a checkout by accident.
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    die "$CACHE is inside a git work tree; point LAB_CACHE somewhere else"
fi

# Concurrent lab runs share the cache: one fetch at a time.
exec 9>"$ROOT/.lock"
flock 9

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

# resolve sets PKG and PKGVER from LAB_KPKG or from META's dependency.
resolve() {
    if [[ -n ${LAB_KPKG:-} ]]; then
        PKG=$LAB_KPKG
        PKGVER=$(candidate "$PKG")
        return
    fi
    local metaver dep
    metaver=$(candidate "$META")
    PKG="" PKGVER=""
    [[ -n $metaver && $metaver != "(none)" ]] || return 0
    # e.g. "linux-image-6.12.57+deb12-amd64 (= 6.12.57-1~deb12u1)"
    dep=$(apt-cache show "$META=$metaver" | awk -F': ' '/^Depends:/ {print $2; exit}')
    PKG=$(sed -E 's/^([^ ,]+).*/\1/' <<<"$dep")
    PKGVER=$(sed -nE 's/.*\(= ([^)]+)\).*/\1/p' <<<"$dep")
}

sudo_cmd=""
[[ $(id -u) -eq 0 ]] || sudo_cmd=sudo
updated=0
apt_update() {
    ((updated == 0)) || return 1
    say "refreshing the apt package lists"
    $sudo_cmd apt-get update -q >&2
    updated=1
}

resolve
if [[ -z $PKG || -z $PKGVER || $PKGVER == "(none)" ]]; then
    apt_update && resolve
fi
[[ -n $PKG && -n $PKGVER && $PKGVER != "(none)" ]] ||
    die "apt knows no candidate for ${LAB_KPKG:-$META}; is bookworm-security in the apt sources?"

KVER=${PKG#linux-image-}
KVER=${KVER%-unsigned}
DEST=$ROOT/$KVER
STAMP=$DEST/.unpacked-$PKGVER

if [[ ! -e $STAMP ]]; then
    DL=$ROOT/debs
    mkdir -p "$DL"
    # apt-get download runs as the _apt user where it can; let it write here.
    chmod 0777 "$DL"
    deb=$(ls "$DL/${PKG}_${PKGVER//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)
    if [[ -z $deb ]]; then
        say "downloading $PKG=$PKGVER"
        if ! (cd "$DL" && apt-get download -q "$PKG=$PKGVER" >&2); then
            # Stale lists name a version the mirror has already replaced:
            # refresh once and take the current candidate.
            apt_update || die "apt-get download $PKG=$PKGVER failed"
            resolve
            [[ -n $PKG && -n $PKGVER && $PKGVER != "(none)" ]] || die "no candidate for ${LAB_KPKG:-$META} after apt-get update"
            KVER=${PKG#linux-image-} && KVER=${KVER%-unsigned}
            DEST=$ROOT/$KVER STAMP=$ROOT/$KVER/.unpacked-$PKGVER
            (cd "$DL" && apt-get download -q "$PKG=$PKGVER" >&2) || die "apt-get download $PKG=$PKGVER failed"
        fi
        deb=$(ls "$DL/${PKG}_${PKGVER//:/%3a}_"*.deb | head -n1)
    fi
    say "unpacking $deb"
    rm -rf "$DEST.tmp"
    mkdir -p "$DEST.tmp"
    dpkg -x "$deb" "$DEST.tmp"
    # The package's postinst would run depmod; we never install it.
    depmod -b "$DEST.tmp" "$KVER"
    rm -rf "$DEST"
    mv "$DEST.tmp" "$DEST"
    touch "$STAMP"
    # Older unpacked kernels and their .debs are dead weight in a CI cache.
    find "$DL" -name 'linux-image-*.deb' ! -name "${deb##*/}" -delete
fi

[[ -r $DEST/boot/vmlinuz-$KVER && -d $DEST/lib/modules/$KVER ]] || die "incomplete unpack in $DEST"
printf 'KVER=%s\nKERNEL_DIR=%s\nKPKG=%s\nKPKGVER=%s\n' "$KVER" "$DEST" "$PKG" "$PKGVER" > "$ROOT/$META.env.tmp"
mv "$ROOT/$META.env.tmp" "$ROOT/$META.env"
cat "$ROOT/$META.env"
