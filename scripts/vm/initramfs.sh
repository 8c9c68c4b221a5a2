#!/usr/bin/env bash
# Builds the lab VM's initramfs for kernel VERSION into OUT (gzip'd cpio): static busybox,
# the modules that virtio-9p and overlayfs need (with their dependencies, in load order, from
# this machine's /lib/modules/VERSION) and scripts/vm/initramfs-init.sh as /init.
#   scripts/vm/initramfs.sh VERSION OUT
set -euo pipefail
version=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d /tmp/rwg-initramfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/bin" "$root/modules"
cp /bin/busybox "$root/bin/busybox"
cp "$here/initramfs-init.sh" "$root/init"
chmod 0755 "$root/init"
: > "$root/modules.order"
for module in virtio_pci 9pnet_virtio 9p overlay; do
  # modprobe prints "insmod PATH" for each dependency first, then the module; built-ins print "builtin".
  if ! deps=$(modprobe -S "$version" --show-depends "$module"); then
    echo "initramfs: kernel $version has no module $module (is its linux-image installed?)" >&2
    exit 1
  fi
  while read -r verb path _; do
    [ "$verb" = insmod ] || continue
    name=$(basename "$path")
    case "$name" in
      *.ko) ;;
      *.ko.xz) xz -dc "$path" > "$root/modules/${name%.xz}"; name=${name%.xz} ;;
      *.ko.zst) zstd -qdc "$path" > "$root/modules/${name%.zst}"; name=${name%.zst} ;;
      *) echo "initramfs: cannot use module file $path" >&2; exit 1 ;;
    esac
    [ -f "$root/modules/$name" ] || cp "$path" "$root/modules/$name"
    grep -qx "$name" "$root/modules.order" || echo "$name" >> "$root/modules.order"
  done <<< "$deps"
done
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out"
