#!/usr/bin/env bash
# Installs what reconfig-wg needs, only what is missing, then builds. Safe to run again:
# when everything is there it prints nothing and takes a few seconds.
#   --vm  also what the lab needs to run on the kernel's WireGuard in a VM
#         (scripts/vm/run-in-vm.sh): QEMU, Debian's kernel image, a static busybox
set -euo pipefail
cd "$(dirname "$0")/.."

vm=0
for arg in "$@"; do
  case "$arg" in
    --vm) vm=1 ;;
    *) echo "setup: unknown argument $arg (only --vm)" >&2; exit 2 ;;
  esac
done

# Debian package → a file that proves it is installed (dpkg-query is the fallback).
packages=(
  libpcap-dev       # headers and library for the pcap addon
  wireguard-tools   # wg
  wireguard-go      # userspace WireGuard for the lab
  iproute2          # ip netns, veth
  nftables          # the lab's firewall and NAT
  conntrack         # NAT remaps in the lab
  traceroute        # port knocks
  iputils-ping      # tunnel checks
  tcpdump           # Linux cooked v2 captures in tests
  systemd           # systemd-analyze verify and security for the unit tests
  man-db            # man: the man pages render (test/man.test.ts, the package test)
  groff-base        # nroff, which man renders with
  bash-completion   # the completion scripts load as bash loads them
  curl              # the notification example hook
  bind9-dnsutils    # nsupdate, for the DNS example hook
)
if [ "$vm" -eq 1 ]; then
  packages+=(
    qemu-system-x86   # the VM (TCG: no KVM needed)
    linux-image-amd64 # a kernel with the wireguard module, booted in the VM
    busybox-static    # the VM's initramfs
    cpio              # packs the initramfs
    kmod              # modprobe: the initramfs's module list, the VM's own module loading
  )
fi

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root (sudo npm test), or install them: apt-get install ${missing[*]}" >&2
    exit 2
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing packages ${missing[*]} and no apt-get here; install them with your package manager" >&2
    exit 2
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # --no-install-recommends: wireguard-tools would otherwise pull in a kernel image.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node modules: install when absent or when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing node modules"
  npm ci --no-audit --no-fund --loglevel=error
fi
# The pcap addon is built against the system libpcap; build it if an earlier install skipped it.
if [ ! -f node_modules/pcap/build/Release/pcap_binding.node ]; then
  echo "setup: building the pcap addon"
  npm rebuild pcap --loglevel=error
fi

# Our own socket addon (raw IP and conntrack netlink sockets): npm ci builds it; build it if
# an earlier install skipped it (npm ci --ignore-scripts) or build/ was removed.
if [ ! -f build/Release/reconfig_inject.node ]; then
  echo "setup: building the socket addon"
  npm run --silent build:native >/dev/null
fi

npm run --silent build
