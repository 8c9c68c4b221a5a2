#!/bin/sh
# Inside the VM (scripts/vm/test-kernel.sh): the kernel WireGuard e2e files and the endpoints read
# over generic netlink, one after the other, then the mesh client's two direct-path tests (EIM
# NATs, IPv6); the mesh's other tests time recoveries in seconds, which emulation stretches. Arguments (e.g. --tap) go to both ava
# runs. Under emulation a test takes up to ~1 min (node starts in seconds, not tenths): ava's own
# 2 min default leaves little room, so 5 min per test. Exit status 0 only if both runs passed.
ava="node_modules/.bin/ava --timeout 5m --concurrency 1"
$ava "$@" dist/test/e2e-fastpath.test.js dist/test/e2e-expiry.test.js dist/test/e2e-tell.test.js dist/test/wireguard-endpoints.test.js
files=$?
$ava "$@" dist/test/e2e-mesh.test.js --match 'EIM × EIM: direct within*' --match 'IPv6*'
mesh=$?
[ "$files" -eq 0 ] && [ "$mesh" -eq 0 ]
