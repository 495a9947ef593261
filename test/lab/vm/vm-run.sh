#!/usr/bin/env bash
# vm-run.sh — run one command inside a throw-away VM that boots the lab's
# Debian kernel (fetch-kernel.sh) on top of this host's own root filesystem.
#
#   vm-run.sh [options] [--] COMMAND [ARGS...]
#
# The guest mounts the host root read-only over virtio-9p under a tmpfs
# overlay (its writes vanish at power-off), gets fresh proc/sys/dev, the
# fetched kernel's modules at /lib/modules/$(uname -r), and runs COMMAND as
# root in the current directory. COMMAND's stdout and stderr arrive on ours
# (virtio-serial ports); its exit status is ours. The guest has no network
# device (-nic none): nothing it does can leave it.
#
# Options:
#   --mem SIZE       guest memory, qemu syntax (default 2G)
#   --cpus N         vCPUs (default 2)
#   --kernel META    Debian kernel meta package (default $LAB_KMETA or
#                    linux-image-6.12-amd64)
#   --rwdir DIR      share host DIR read-write at the same path (repeatable);
#                    the only place where guest writes survive
#   --timeout SEC    power the VM off after SEC seconds; exit status 124
#   --append ARGS    extra kernel command line
#   --console FILE   write the guest's serial console (kernel log) to FILE
#   -e VAR[=VALUE]   export VAR into the guest (repeatable). PATH, HOME,
#                    LANG, LC_ALL, TERM, GO* and LAB_* are exported anyway.
#   -v               print kernel, accelerator and timings to stderr
#
# Exit status: COMMAND's; 124 on --timeout; 125 when the VM did not run
# COMMAND to completion (the console tail is printed, the run directory kept).
#
# Env: LAB_CACHE (default /var/cache/srp-mpathd-lab), LAB_KMETA,
#      LAB_QEMU (default qemu-system-x86_64), LAB_ACCEL (auto|kvm|tcg).
# shellcheck disable=SC2054  # the commas below are qemu option syntax
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${LAB_CACHE:-/var/cache/srp-mpathd-lab}
QEMU=${LAB_QEMU:-qemu-system-x86_64}
META=${LAB_KMETA:-linux-image-6.12-amd64}
ACCEL_KIND=${LAB_ACCEL:-auto}
MEM=2G CPUS=2 TIMEOUT=0 VERBOSE=0 APPEND="" CONSOLE=""
RWDIRS=() ENVS=()

die() { echo "vm-run: $*" >&2; exit 125; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

while (($#)); do
    case $1 in
        --mem) MEM=$2; shift 2 ;;
        --cpus) CPUS=$2; shift 2 ;;
        --kernel) META=$2; shift 2 ;;
        --rwdir) mkdir -p "$2"; RWDIRS+=("$(realpath "$2")"); shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --append) APPEND+=" $2"; shift 2 ;;
        --console) CONSOLE=$(realpath -m "$2"); shift 2 ;;
        -e) ENVS+=("$2"); shift 2 ;;
        -v) VERBOSE=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) echo "vm-run: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
(($#)) || usage
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds, got $TIMEOUT"

# --- kernel ---------------------------------------------------------------------
[[ -r $CACHE/kernel/$META.env ]] || LAB_CACHE=$CACHE "$HERE/fetch-kernel.sh" "$META" >/dev/null
# shellcheck disable=SC1090
source "$CACHE/kernel/$META.env"    # KVER KERNEL_DIR
VMLINUZ=$KERNEL_DIR/boot/vmlinuz-$KVER
[[ -r $VMLINUZ ]] || die "missing $VMLINUZ (run fetch-kernel.sh $META)"

# --- initramfs: busybox + the modules needed to reach the root ------------------
# Cached under a key over everything that goes into it.
EARLY_MODS=(virtio_pci virtio_console 9pnet_virtio 9p overlay virtio_rng)
mod_paths=$(modprobe -d "$KERNEL_DIR" -S "$KVER" --show-depends -a "${EARLY_MODS[@]}" |
            awk '$1 == "insmod" && !seen[$2]++ {print $2}')
key=$( { cat "$HERE/init" "$HERE/stage2.sh" /bin/busybox; echo "$mod_paths"; } | sha256sum | cut -c1-16)
INITRD=$CACHE/initramfs/$KVER-$key.cpio.gz
if [[ ! -r $INITRD ]]; then
    mkdir -p "$CACHE/initramfs"
    stage=$(mktemp -d "$CACHE/initramfs/build.XXXXXX")
    mkdir -p "$stage/bin" "$stage/lib/modules"
    cp /bin/busybox "$stage/bin/busybox"        # busybox-static: no libraries needed
    install -m 0755 "$HERE/init" "$stage/init"
    cp "$HERE/stage2.sh" "$stage/stage2.sh"
    : > "$stage/lib/modules/order"
    i=0
    for p in $mod_paths; do
        name=$(printf '%02d-%s' $((i++)) "$(basename "$p")")
        name=${name%.xz} name=${name%.zst}
        case $p in
            *.xz) xz -dc "$p" > "$stage/lib/modules/$name" ;;
            *.zst) zstd -qdc "$p" > "$stage/lib/modules/$name" ;;
            *) cp "$p" "$stage/lib/modules/$name" ;;
        esac
        echo "$name" >> "$stage/lib/modules/order"
    done
    (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD.tmp"
    mv "$INITRD.tmp" "$INITRD"
    rm -rf "$stage"
    # Stale builds; not brand-new ones, which a concurrent run of another
    # checkout may be about to boot.
    find "$CACHE/initramfs" -name "$KVER-*.cpio.gz" ! -name "${INITRD##*/}" -mmin +60 -delete
fi

# --- per-run directory, shared read-write with the guest --------------------------
mkdir -p "$CACHE/runs"
# Run directories of failed VMs are kept for a look; not forever.
find "$CACHE/runs" -mindepth 1 -maxdepth 1 -name 'run.*' -mtime +2 -exec rm -rf {} + 2>/dev/null || true
RUN=$(mktemp -d "$CACHE/runs/run.XXXXXX")
{
    echo "# written by vm-run.sh"
    for v in PATH HOME LANG LC_ALL TERM $(compgen -v | grep -E '^(GO[A-Z0-9_]*|LAB_[A-Za-z0-9_]*)$' || true); do
        [[ -n ${!v+x} ]] && printf 'export %s=%q\n' "$v" "${!v}"
    done
    for e in "${ENVS[@]}"; do
        if [[ $e == *=* ]]; then printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
        elif [[ -n ${!e+x} ]]; then printf 'export %s=%q\n' "$e" "${!e}"; fi
    done
    printf 'cd %q\n' "$PWD"
    printf 'exec'; printf ' %q' "$@"; echo
} > "$RUN/job.sh"
n=0
for d in "${RWDIRS[@]}"; do echo "labrw$n $d" >> "$RUN/rwdirs"; n=$((n + 1)); done

KEEP=0
cleanup() { ((KEEP)) && echo "vm-run: run directory kept: $RUN" >&2 || rm -rf "$RUN"; }
trap cleanup EXIT

# --- accelerator ------------------------------------------------------------------
# KVM when /dev/kvm is usable, except on a PVM host (module kvm_pvm): PVM
# only runs PVM-enabled guest kernels, a stock Debian kernel hangs right after
# "Booting from ROM..." at 100% CPU. There the only option is TCG.
if [[ $ACCEL_KIND == auto ]]; then
    if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
        ACCEL_KIND=tcg WHY="/dev/kvm is not usable"
    elif [[ -d /sys/module/kvm_pvm ]]; then
        ACCEL_KIND=tcg WHY="host KVM is PVM (kvm_pvm), which cannot boot stock kernels"
    else
        ACCEL_KIND=kvm
    fi
    [[ $ACCEL_KIND == tcg ]] && ((VERBOSE)) && echo "vm-run: $WHY; using TCG (slow)" >&2
fi
case $ACCEL_KIND in
    kvm) ACCEL=(-accel kvm -accel tcg -cpu max) ;;   # qemu falls back to TCG if KVM init fails
    tcg) ACCEL=(-accel tcg,thread=multi -cpu max) ;;
    *) die "LAB_ACCEL must be auto, kvm or tcg, not $ACCEL_KIND" ;;
esac

# --- guest stdout/stderr ------------------------------------------------------------
# qemu writes the virtio-serial ports into files. A pipe or a terminal can be
# opened by path and streams live; for anything else (a regular file would be
# opened without our offset, a socket cannot be opened) collect into the run
# directory and copy out after the VM is gone.
STREAM_OUT=0 STREAM_ERR=0
[[ -p /dev/stdout || -c /dev/stdout ]] && STREAM_OUT=1
[[ -p /dev/stderr || -c /dev/stderr ]] && STREAM_ERR=1
((STREAM_OUT)) && OUT_PATH=/dev/stdout || OUT_PATH=$RUN/stdout
((STREAM_ERR)) && ERR_PATH=/dev/stderr || ERR_PATH=$RUN/stderr
CON_PATH=${CONSOLE:-$RUN/console.log}

KCMDLINE="console=ttyS0 panic=-1 oops=panic rdinit=/init lab.kdir=$KERNEL_DIR"
KCMDLINE+=" i8042.noaux i8042.nomux i8042.nopnp i8042.nokbd tsc=reliable no_timer_check loglevel=5"
KCMDLINE+="$APPEND"

QARGS=(
    "${ACCEL[@]}" -machine q35 -smp "$CPUS" -m "$MEM"
    -nodefaults -nographic -no-reboot -nic none
    -kernel "$VMLINUZ" -initrd "$INITRD" -append "$KCMDLINE"
    -chardev "file,id=con,path=$CON_PATH,append=on" -serial chardev:con
    -device virtio-serial-pci
    -chardev "file,id=gout,path=$OUT_PATH,append=on" -device virtserialport,chardev=gout,name=lab.stdout
    -chardev "file,id=gerr,path=$ERR_PATH,append=on" -device virtserialport,chardev=gerr,name=lab.stderr
    -device virtio-rng-pci
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
    -virtfs "local,path=$RUN,mount_tag=labrun,security_model=none"
)
n=0
for d in "${RWDIRS[@]}"; do
    QARGS+=(-virtfs "local,path=$d,mount_tag=labrw$n,security_model=none")
    n=$((n + 1))
done

# --- run ----------------------------------------------------------------------
t0=$(date +%s%N)
qrc=0
if ((TIMEOUT > 0)); then
    timeout --foreground -k 10 "$TIMEOUT" "$QEMU" "${QARGS[@]}" < /dev/null || qrc=$?
else
    "$QEMU" "${QARGS[@]}" < /dev/null || qrc=$?
fi
t1=$(date +%s%N)

((STREAM_OUT)) || cat "$RUN/stdout" 2>/dev/null || true
((STREAM_ERR)) || cat "$RUN/stderr" >&2 2>/dev/null || true

if ((VERBOSE)); then
    printf 'vm-run: kernel %s, accel %s, guest boot %ss, wall %d ms\n' "$KVER" "$ACCEL_KIND" \
        "$(cat "$RUN/boot_seconds" 2>/dev/null || echo '?')" $(((t1 - t0) / 1000000)) >&2
fi

if [[ -r $RUN/exit_status ]]; then
    exit "$(cat "$RUN/exit_status")"
fi
KEEP=1
if ((qrc == 124 || qrc == 137)); then
    echo "vm-run: timed out after ${TIMEOUT}s" >&2
    rc=124
else
    echo "vm-run: the VM stopped (qemu status $qrc) before COMMAND finished" >&2
    rc=125
fi
[[ -r $CON_PATH ]] && { echo "--- console tail ($CON_PATH) ---" >&2; tail -n 40 "$CON_PATH" >&2; }
exit $rc
