#!/bin/sh
# reconfig-wg hook: a push notification for each endpoint change, as an HTTP POST to an
# ntfy-style topic URL (ntfy.sh or your own ntfy server; anything that takes a POSTed body).
#   reconfig-wg -i wg0 --hook "/usr/lib/node_modules/reconfig-wg/examples/hooks/ntfy.sh https://ntfy.sh/my-router"
# An access token, when the topic needs one, goes in NTFY_TOKEN (systemd: a line in
# /etc/default/reconfig-wg), never on the command line, where ps shows it.
# Reads the change from the environment reconfig-wg sets (RECONFIG_WG_*).
set -eu

url=${1:?usage: ntfy.sh TOPIC_URL}
: "${RECONFIG_WG_PEER:?run this as reconfig-wg's --hook}"

set -- --fail --silent --show-error --max-time 8 \
	-H "Title: WireGuard peer moved on $RECONFIG_WG_INTERFACE" \
	-H "Tags: link" \
	--data-binary "$RECONFIG_WG_PEER is now at $RECONFIG_WG_TO (was ${RECONFIG_WG_FROM:-none}; $RECONFIG_WG_HOW)"
if [ -n "${NTFY_TOKEN:-}" ]; then set -- "$@" -H "Authorization: Bearer $NTFY_TOKEN"; fi
exec curl "$@" "$url"
