#!/bin/bash
# Lab guest, stage 2: PID 1 after switch_root, running on the host's own bash.
# Finishes the system setup udev/systemd would do, mounts the --rwdir shares,
# runs job.sh with stdout/stderr on the virtio-serial ports vm-run.sh wired to
# its own, stores the exit status in the run directory and powers off.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LAB=/run/srp-mpathd-lab
JOB=$LAB/job
P9="trans=virtio,version=9p2000.L,msize=512000,cache=none"

say() { echo "lab-stage2: $*" > /dev/ttyS0; }

mount -t configfs configfs /sys/kernel/config 2>/dev/null || true
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
ln -sfn /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
ln -sf /proc/self/mounts /etc/mtab 2>/dev/null || true
ip link set lo up
hostname srp-mpathd-lab

if [[ -r $JOB/rwdirs ]]; then
    while read -r tag dir; do
        mkdir -p "$dir"     # it may lie below the guest's own /tmp or /run
        mount -t 9p -o "$P9" "$tag" "$dir" || say "cannot mount $tag at $dir"
    done < "$JOB/rwdirs"
fi

# No udev: find the virtio-serial ports by name.
port() {
    local p
    for p in /sys/class/virtio-ports/*; do
        [[ $(cat "$p/name" 2>/dev/null) == "$1" ]] && { echo "/dev/${p##*/}"; return 0; }
    done
    return 1
}
OUT=$(port lab.stdout) || OUT=/dev/ttyS0
ERR=$(port lab.stderr) || ERR=/dev/ttyS0

read -r up _ < /proc/uptime
echo "$up" > "$JOB/boot_seconds"
say "booted in ${up}s, running the job"

rc=0
/bin/bash "$JOB/job.sh" < /dev/null > "$OUT" 2> "$ERR" || rc=$?
echo "$rc" > "$JOB/exit_status.tmp" && mv "$JOB/exit_status.tmp" "$JOB/exit_status"
read -r up _ < /proc/uptime
say "job exited with status $rc at ${up}s"
sync
echo o > /proc/sysrq-trigger
sleep 30
