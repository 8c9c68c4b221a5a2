#!/bin/sh
# reconfig-wg hook: one line in the system log for each endpoint change.
#   reconfig-wg -i wg0 --hook /usr/lib/node_modules/reconfig-wg/examples/hooks/syslog.sh
# Reads the change from the environment reconfig-wg sets (RECONFIG_WG_INTERFACE, _PEER, _FROM,
# _TO, _HOW); logger is util-linux's on Debian, BusyBox's on OpenWrt.
set -eu

: "${RECONFIG_WG_PEER:?run this as reconfig-wg's --hook}"
exec logger -t reconfig-wg-hook -p daemon.notice \
	"peer $RECONFIG_WG_PEER on $RECONFIG_WG_INTERFACE moved from ${RECONFIG_WG_FROM:-(none)} to $RECONFIG_WG_TO ($RECONFIG_WG_HOW)"
