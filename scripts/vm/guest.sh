#!/bin/bash
# PID 1 of the lab VM, run from the host's own root (read-only 9p under a tmpfs overlay) after
# the initramfs: fresh /run and /tmp, the wireguard module, then the command that
# run-in-vm.sh left in the I/O share (/rwg-vm), its output and exit status written back there,
# and power off. Nothing here may wait without a bound: the host's timeout is the last resort.
io=/rwg-vm
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm /run/netns
mount -t devpts -o ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname rwg-vm
# tun too, so wireguard-go can run in the VM beside the kernel's WireGuard (for comparisons).
modprobe tun 2>/dev/null || true
ip link set lo up

finish() {
  echo "$1" > "$io/status"
  sync
  # reboot(2) with power-off; if that fails, PID 1 exits, the kernel panics and (panic=-1,
  # -no-reboot) QEMU exits anyway.
  busybox poweroff -f
  exit "$1"
}

if ! modprobe wireguard 2> "$io/output"; then
  echo "rwg-vm: the wireguard module does not load in the VM" >> "$io/output"
  finish 125
fi
# shellcheck disable=SC1091
source "$io/env"
cd "$RWG_VM_CWD" || finish 125
bash "$io/command" >> "$io/output" 2>&1 < /dev/null &
child=$!
# As PID 1 this shell also reaps orphans; `wait PID` returns the command's own status.
wait "$child"
finish $?
