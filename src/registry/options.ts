/**
 * `--registry ADDR[:PORT]` and `--registry-zone ZONE` → the registry's options, checked for
 * their form here (exit 2 with the fix); whether ADDR is on the interface is checked when the
 * daemon starts (server.ts).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { usageError } from '../common/errors.js';
import { canonicalAddress } from '../net/local.js';

/**
 * 5182: no router service we know listens there (dnsmasq and unbound are on 53, umdns and
 * avahi on 5353, LLMNR on 5355, NAT-PMP/PCP on 5350-5351, stubby on 5453, https-dns-proxy
 * on 5053/5054, smartdns on 6053), Debian's /etc/services names nothing there, and it is below
 * Linux's ephemeral range (32768-60999), so no outgoing socket can be holding it at start.
 * It reads as the start of WireGuard's customary 51820.
 */
export const DEFAULT_REGISTRY_PORT = 5182;
/**
 * `.internal` is set aside for private use (ICANN, 2024): it is never delegated in the public
 * DNS, so no resolver confuses it with a real name. The zone is one constant, not derived from
 * R2's interface name, because a client does not know that name; each registry answers only on
 * its own tunnel address, so two of them on one router do not clash.
 */
export const DEFAULT_REGISTRY_ZONE = 'wg.internal';

export interface RegistryOptions {
  readonly family: 4 | 6;
  /** as the kernel writes it (dotted quad; RFC 5952) */
  readonly address: string;
  readonly port: number;
  /** lower case, no trailing dot */
  readonly zone: string;
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

function parsePort(text: string, flag: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw usageError(`${flag}: the port must be a number from 1 to 65535, not '${text}'.`);
  return port;
}

/** `203.0.113.1`, `203.0.113.1:5182`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:5182`. */
export function parseRegistryAddress(text: string): { family: 4 | 6; address: string; port: number } {
  const flag = '--registry';
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  let address: string;
  let port = DEFAULT_REGISTRY_PORT;
  if (bracketed !== null) {
    address = bracketed[1] ?? '';
    if (bracketed[2] !== undefined) port = parsePort(bracketed[2], flag);
    if (!isIPv6(address)) throw usageError(`${flag}: '${address}' in brackets is not an IPv6 address.`);
  } else if (isIPv6(text)) {
    address = text;
  } else {
    const colon = text.lastIndexOf(':');
    address = colon < 0 ? text : text.slice(0, colon);
    if (colon >= 0) port = parsePort(text.slice(colon + 1), flag);
    if (!isIPv4(address)) {
      throw usageError(`${flag} takes an address of the WireGuard interface, ADDR or ADDR:PORT (IPv6 as [ADDR]:PORT), not '${text}'.`);
    }
  }
  const family = isIPv6(address) ? 6 : 4;
  const canonical = canonicalAddress(address);
  if (canonical === undefined) throw usageError(`${flag}: '${address}' is not an address (zone indexes are not taken).`);
  if (family === 6 && /^fe[89ab]/i.test(canonical)) {
    throw usageError(`${flag}: ${canonical} is link-local; give a global or unique-local address of the interface (a peer's query must be routed to it).`);
  }
  if (canonical === '0.0.0.0' || canonical === '::') throw usageError(`${flag}: give one address of the WireGuard interface, not the wildcard ${canonical}.`);
  return { family, address: canonical, port };
}

/** `wg.internal`, `mesh.example.org.` → lower case, no trailing dot; labels of letters, digits, `-`, `_`. */
export function parseZone(text: string): string {
  const zone = text.toLowerCase().replace(/\.$/, '');
  const labels = zone.split('.');
  if (zone.length === 0 || zone.length > 180 || !labels.every((label) => LABEL.test(label))) {
    throw usageError(`--registry-zone '${text}' is not a DNS name of labels of letters, digits, - and _ (at most 180 characters, so a peer's name still fits), e.g. ${DEFAULT_REGISTRY_ZONE}.`);
  }
  return zone;
}

export function registryOptions(address: string | undefined, zone: string | undefined): RegistryOptions | undefined {
  if (address === undefined) {
    if (zone !== undefined) throw usageError('--registry-zone needs --registry: it names the zone the registry serves.');
    return undefined;
  }
  return { ...parseRegistryAddress(address), zone: parseZone(zone ?? DEFAULT_REGISTRY_ZONE) };
}
