#!/usr/bin/env bash
# Runs one command inside a throw-away VM with Debian's kernel, so the lab can use the kernel's
# WireGuard on a machine whose own kernel has none and that has no KVM:
#
#   scripts/vm/run-in-vm.sh [--timeout SECONDS] [--smp N] [--memory MiB] [--] COMMAND [ARG...]
#
# QEMU (TCG, software emulation) boots the newest installed Debian kernel that has the
# wireguard module, with a busybox initramfs built here that mounts this machine's root
# read-only over virtio-9p with a tmpfs overlay on top (so the VM sees the same files and
# tools, and what it writes is thrown away), loads wireguard, and runs COMMAND in the current
# directory as root, with RECONFIG_WG_LAB_WG=kernel and the caller's RECONFIG_WG_*, BENCH_* and
# CI variables. COMMAND's output is printed as it comes; the exit status is COMMAND's, or 124
# when the timeout (default 1200 s) ended the VM, 125 when the VM failed before COMMAND ran.
# The VM has no network device: only loopback and the namespaces the command makes.
# Needs qemu-system-x86, linux-image-amd64 and busybox-static (scripts/setup.sh --vm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

timeout_s=1200
smp=1
memory=3072
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout_s=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "run-in-vm: unknown flag $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "usage: run-in-vm.sh [--timeout SECONDS] [--smp N] [--memory MiB] [--] COMMAND [ARG...]" >&2
  exit 2
fi

# The newest Debian kernel image whose modules include wireguard.
kernel=${RECONFIG_WG_VM_KERNEL:-}
if [ -z "$kernel" ]; then
  for image in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
    version=${image#/boot/vmlinuz-}
    if [ -n "$(find "/lib/modules/$version/kernel/drivers/net/wireguard" -name 'wireguard.ko*' 2>/dev/null)" ]; then
      kernel=$image
      break
    fi
  done
fi
missing=()
[ -n "$kernel" ] || missing+=(linux-image-amd64)
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "run-in-vm: missing ${missing[*]}; install them with: sudo bash scripts/setup.sh --vm" >&2
  exit 125
fi
version=${kernel#/boot/vmlinuz-}

io=$(mktemp -d /tmp/rwg-vm.XXXXXX)
qemu_pid=
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$io"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$here/initramfs.sh" "$version" "$io/initramfs.cpio.gz" || exit 125

# What the guest runs: the command, quoted, and the environment it needs.
{
  printf 'export RWG_VM_CWD=%q\n' "$PWD"
  printf 'export RECONFIG_WG_LAB_WG=kernel\n'
  while IFS='=' read -r name _; do
    case "$name" in
      RECONFIG_WG_*|BENCH_*|CI) printf 'export %s=%q\n' "$name" "${!name}" ;;
    esac
  done < <(env)
} > "$io/env"
printf '%q ' exec "$@" > "$io/command"
echo >> "$io/command"
: > "$io/output"

# -smp 1 unless asked: TCG runs each virtual CPU on a host thread, and the machine is shared.
nice -n 10 qemu-system-x86_64 \
  -accel tcg -cpu max -smp "$smp" -m "$memory" \
  -nodefaults -no-user-config -display none -no-reboot \
  -serial "file:$io/console" \
  -kernel "$kernel" -initrd "$io/initramfs.cpio.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rwg.guest=$here/guest.sh" \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
  -virtfs "local,path=$io,mount_tag=vmio,security_model=none" &
qemu_pid=$!
started=$(date +%s)

# Print the command's output as it comes, until QEMU exits or the timeout ends it.
offset=0
timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
  size=$(stat -c %s "$io/output")
  if [ "$size" -gt "$offset" ]; then
    tail -c +"$((offset + 1))" "$io/output" | head -c "$((size - offset))"
    offset=$size
  fi
  if [ $(($(date +%s) - started)) -ge "$timeout_s" ]; then
    timed_out=1
    kill "$qemu_pid" 2>/dev/null || true
    break
  fi
  sleep 0.5
done
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
size=$(stat -c %s "$io/output")
[ "$size" -gt "$offset" ] && tail -c +"$((offset + 1))" "$io/output"

if [ "$timed_out" -eq 1 ]; then
  echo "run-in-vm: the VM ran out of its ${timeout_s} s and was stopped" >&2
  exit 124
fi
if [ ! -s "$io/status" ]; then
  echo "run-in-vm: the VM stopped before the command finished; its console said:" >&2
  tail -n 30 "$io/console" >&2 || true
  exit 125
fi
exit "$(cat "$io/status")"
