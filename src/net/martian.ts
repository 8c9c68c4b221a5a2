/**
 * Sources that could never arrive from outside: loopback, unspecified, multicast, broadcast,
 * reserved, link-local, IPv4-mapped or -compatible IPv6 (all of ::/16), and this host's own
 * addresses. The kernel drops most of them as martians before WireGuard with its port open
 * would see them; a capture sees them first, so they are refused here before anything else is
 * done with the packet (an on-path sender could otherwise have R2 re-send a held-back packet
 * "from" 127.0.0.1 or from R2 itself, and WireGuard would roam the peer there).
 *
 * This runs for every packet that passed the screen, floods included, so it reads the
 * decoders' canonical text (dotted quad; RFC 5952, lower case) with a few string comparisons
 * instead of parsing the address again.
 */
import type { LocalAddresses } from './local.js';

export type MartianReason =
  | 'source-unspecified'
  | 'source-loopback'
  | 'source-multicast'
  | 'source-broadcast'
  | 'source-reserved'
  | 'source-link-local'
  | 'source-mapped'
  | 'source-own';

function ipv4Class(address: string): MartianReason | undefined {
  const dot = address.indexOf('.');
  const first = Number(address.slice(0, dot));
  if (first === 0) return 'source-unspecified'; // 0.0.0.0/8, "this network"
  if (first === 127) return 'source-loopback';
  if (first >= 224 && first <= 239) return 'source-multicast';
  if (address === '255.255.255.255') return 'source-broadcast';
  if (first >= 240) return 'source-reserved';
  if (first === 169 && address.startsWith('169.254.')) return 'source-link-local';
  return undefined;
}

function ipv6Class(address: string): MartianReason | undefined {
  if (address === '::') return 'source-unspecified';
  if (address === '::1') return 'source-loopback';
  // ::/16 holds the mapped (::ffff:0:0/96) and compatible (::/96) IPv4 forms and nothing routable
  if (address.startsWith('::') || address.startsWith('0:')) return 'source-mapped';
  const colon = address.indexOf(':');
  // a first group of four digits: ff00::/8 multicast, fe80::/10 link-local
  if (colon === 4 && address.startsWith('ff')) return 'source-multicast';
  if (colon === 4 && address.startsWith('fe') && '89ab'.includes(address[2]!)) return 'source-link-local';
  return undefined;
}

/** The class of an address as the decoders write it, or undefined for an ordinary unicast one. */
export function addressClass(family: 4 | 6, address: string): MartianReason | undefined {
  return family === 4 ? ipv4Class(address) : ipv6Class(address);
}

/** Why `address` cannot be the source of a packet from outside, or undefined if it can. */
export function martianSource(family: 4 | 6, address: string, local: LocalAddresses): MartianReason | undefined {
  const reason = addressClass(family, address);
  if (reason !== undefined) return reason;
  if (family === 4 && local.isBroadcast(address)) return 'source-broadcast';
  return local.isOwn(address) ? 'source-own' : undefined;
}

/**
 * True if a packet to `address` is for this host and may be re-sent there: one of its own
 * addresses, and not loopback or link-local (a packet from outside never carries those).
 */
export function isOwnUnicast(family: 4 | 6, address: string, local: LocalAddresses): boolean {
  return addressClass(family, address) === undefined && local.isOwn(address);
}
