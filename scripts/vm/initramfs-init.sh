#!/bin/busybox sh
# /init of the lab VM's initramfs (busybox): loads virtio, 9p and overlayfs, mounts the host's
# root read-only over virtio-9p with a tmpfs overlay on top, mounts the I/O share read-write,
# then hands over to the host's own guest script (scripts/vm/guest.sh) as PID 1.
/bin/busybox mkdir -p /proc /sys /dev /lower /upper /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
fail() {
  echo "rwg-vm: $*" > /dev/ttyS0
  /bin/busybox poweroff -f
}
for module in $(/bin/busybox cat /modules.order); do
  /bin/busybox insmod "/modules/$module" 2> /dev/ttyS0 || fail "insmod $module failed"
done
guest=$(/bin/busybox sed -n 's/.*rwg\.guest=\([^ ]*\).*/\1/p' /proc/cmdline)
opts=trans=virtio,version=9p2000.L,msize=512000
/bin/busybox mount -t 9p -o "$opts,ro,cache=loose" hostroot /lower || fail "cannot mount the host root over 9p"
/bin/busybox mount -t tmpfs -o mode=0755 tmpfs /upper || fail "cannot mount tmpfs"
/bin/busybox mkdir -p /upper/upper /upper/work
/bin/busybox mount -t overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work overlay /newroot || fail "cannot mount the overlay"
/bin/busybox mkdir -p /newroot/rwg-vm
/bin/busybox mount -t 9p -o "$opts,rw" vmio /newroot/rwg-vm || fail "cannot mount the I/O share"
/bin/busybox mount --move /proc /newroot/proc
/bin/busybox mount --move /sys /newroot/sys
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /bin/bash "$guest"
