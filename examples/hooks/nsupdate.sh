#!/bin/sh
# reconfig-wg hook: points a DNS name at the peer's new address with a dynamic update
# (RFC 2136, nsupdate from BIND: bind9-dnsutils on Debian, bind-nsupdate on OpenWrt).
#   reconfig-wg -i wg0 --hook "/usr/lib/node_modules/reconfig-wg/examples/hooks/nsupdate.sh ns1.example.org example.org road.example.org /etc/reconfig-wg/tsig.key"
# Arguments: SERVER (host, or host#port) ZONE NAME [KEYFILE]
#   NAME     one name for every peer (a road warrior with one peer), or a file of lines
#            "PUBLIC_KEY NAME", one per peer to name (peers not in it are left alone)
#   KEYFILE  the TSIG key the server wants (nsupdate -k); without it the update is unsigned
# The record is A for an IPv4 endpoint, AAAA for IPv6, with TTL $NSUPDATE_TTL (default 60).
# Reads the change from the environment reconfig-wg sets (RECONFIG_WG_*).
set -eu

usage='usage: nsupdate.sh SERVER[#PORT] ZONE NAME|NAMEFILE [KEYFILE]'
server=${1:?$usage}
zone=${2:?$usage}
name=${3:?$usage}
key=${4:-}
: "${RECONFIG_WG_PEER:?run this as reconfig-wg's --hook}"

if [ -f "$name" ]; then
	name=$(awk -v peer="$RECONFIG_WG_PEER" '$1 == peer { print $2; exit }' "$name")
	[ -n "$name" ] || exit 0
fi
case $RECONFIG_WG_HOST in
*:*) type=AAAA ;;
*) type=A ;;
esac
port=53
case $server in
*#*)
	port=${server#*#}
	server=${server%%#*}
	;;
esac

set --
if [ -n "$key" ]; then set -- -k "$key"; fi
nsupdate "$@" <<UPDATE
server $server $port
zone $zone
update delete $name $type
update add $name ${NSUPDATE_TTL:-60} $type $RECONFIG_WG_HOST
send
UPDATE
