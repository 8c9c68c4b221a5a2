/**
 * Puts the UCI stand-in (uci-standin.ts, tests only) on a PATH as `uci`, the name reconfig-wg
 * runs, through a small wrapper script in a directory of its own.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const UCI_STANDIN = fileURLToPath(new URL('./uci-standin.js', import.meta.url));

/** Writes `dir/uci` and returns its path; put `dir` first on PATH to make it `uci`. */
export function installUciStandin(dir: string): string {
  const path = join(dir, 'uci');
  writeFileSync(path, `#!/bin/sh\n# stand-in for OpenWrt's uci (tests only)\nexec '${process.execPath}' '${UCI_STANDIN}' "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A network config in UCI's format with WireGuard interface IFACE and its peers. */
export function networkConfig(iface: string, peers: readonly { publicKey: string; name?: string; endpointHost?: string; endpointPort?: string }[]): string {
  let text = `# written by hand: uci rewrites this file on commit\nconfig interface 'loopback'\n\toption device 'lo'\n\toption proto 'static'\n\toption ipaddr '127.0.0.1'\n\nconfig interface '${iface}'\n\toption proto 'wireguard'\n\toption listen_port '51820'\n\tlist addresses '203.0.113.1/24'\n`;
  for (const peer of peers) {
    text += `\nconfig wireguard_${iface}${peer.name === undefined ? '' : ` '${peer.name}'`}\n\toption public_key '${peer.publicKey}'\n\tlist allowed_ips '203.0.113.10/32'\n`;
    if (peer.endpointHost !== undefined) text += `\toption endpoint_host '${peer.endpointHost}'\n`;
    if (peer.endpointPort !== undefined) text += `\toption endpoint_port "${peer.endpointPort}"\n`;
  }
  return text;
}
