#!/usr/bin/env bash
# The e2e tests that matter most, on the kernel's WireGuard: the fast path's roaming rows (IPv4
# and IPv6, a firewall that accepts lo and one that drops on lo too), conntrack expiry, the attacker's replays and
# forgeries, two peers behind one NAT, the index learning, and persistence, hook, status and
# check. They run in the VM (scripts/vm/run-in-vm.sh) with RECONFIG_WG_LAB_WG=kernel, one file
# after the other; arguments go to ava (CI passes --tap). Exit status: ava's, or run-in-vm's
# (124 timeout, 125 no VM). Build first (npm run build); needs scripts/setup.sh --vm.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=(dist/test/e2e-fastpath.test.js dist/test/e2e-expiry.test.js dist/test/e2e-tell.test.js)
# Under emulation a test takes up to ~1 min (node starts in seconds, not tenths): ava's own
# 2 min default leaves little room, so 5 min per test; the VM as a whole gets 25 min.
exec bash scripts/vm/run-in-vm.sh --timeout 1500 -- node_modules/.bin/ava --timeout 5m --concurrency 1 "$@" "${files[@]}"
