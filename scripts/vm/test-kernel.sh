#!/usr/bin/env bash
# The e2e tests that matter most, on the kernel's WireGuard: the fast path's roaming rows (IPv4
# and IPv6, a firewall that accepts lo and one that drops on lo too), conntrack expiry, the
# attacker's replays and forgeries, two peers behind one NAT, the index learning, persistence,
# hook, status and check, and the mesh client's direct paths (scripts/vm/kernel-suite.sh). They
# run in the VM (scripts/vm/run-in-vm.sh) with RECONFIG_WG_LAB_WG=kernel; arguments go to ava
# (CI passes --tap). Exit status: the suite's, or run-in-vm's (124 timeout, 125 no VM). Build
# first (npm run build); needs scripts/setup.sh --vm.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The VM as a whole gets 25 min.
exec bash scripts/vm/run-in-vm.sh --timeout 1500 -- sh scripts/vm/kernel-suite.sh "$@"
