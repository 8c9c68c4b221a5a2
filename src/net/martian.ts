/**
 * Sources that could never arrive from outside: loopback, unspecified, multicast, broadcast,
 * reserved, link-local, IPv4-mapped or -compatible IPv6, and this host's own addresses. The
 * kernel drops most of them as martians before WireGuard with its port open would see them;
 * a capture sees them first, so they are refused here before anything else is done with the
 * packet (an on-path sender could otherwise have R2 re-send a held-back packet "from"
 * 127.0.0.1 or from R2 itself, and WireGuard would roam the peer there).
 */
import { addressBytes } from './address.js';
import type { LocalAddresses } from './local.js';

export type MartianReason =
  | 'source-unspecified'
  | 'source-loopback'
  | 'source-multicast'
  | 'source-broadcast'
  | 'source-reserved'
  | 'source-link-local'
  | 'source-mapped'
  | 'source-own'
  | 'source-invalid';

function ipv4Class(b: Buffer): MartianReason | undefined {
  const first = b[0]!;
  if (first === 0) return 'source-unspecified'; // 0.0.0.0/8, "this network"
  if (first === 127) return 'source-loopback';
  if (first >= 224 && first <= 239) return 'source-multicast';
  if (b.readUInt32BE(0) === 0xffffffff) return 'source-broadcast';
  if (first >= 240) return 'source-reserved';
  if (first === 169 && b[1] === 254) return 'source-link-local';
  return undefined;
}

function ipv6Class(b: Buffer): MartianReason | undefined {
  const zeroTo = (end: number): boolean => b.subarray(0, end).every((byte) => byte === 0);
  if (b[0] === 0xff) return 'source-multicast';
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'source-link-local';
  if (zeroTo(10) && b[10] === 0xff && b[11] === 0xff) return 'source-mapped'; // ::ffff:0:0/96
  if (zeroTo(15)) return b[15] === 0 ? 'source-unspecified' : b[15] === 1 ? 'source-loopback' : 'source-mapped';
  if (zeroTo(12)) return 'source-mapped'; // ::a.b.c.d, IPv4-compatible (deprecated)
  return undefined;
}

/** Why `address` cannot be the source of a packet from outside, or undefined if it can. */
export function martianSource(family: 4 | 6, address: string, local: LocalAddresses): MartianReason | undefined {
  const bytes = addressBytes(family, address);
  if (bytes === undefined) return 'source-invalid';
  const reason = family === 4 ? ipv4Class(bytes) : ipv6Class(bytes);
  if (reason !== undefined) return reason;
  if (family === 4 && local.isBroadcast(address)) return 'source-broadcast';
  return local.isOwn(address) ? 'source-own' : undefined;
}

/**
 * True if a packet to `address` is for this host and may be re-sent there: one of its own
 * addresses, and not loopback or link-local (a packet from outside never carries those).
 */
export function isOwnUnicast(family: 4 | 6, address: string, local: LocalAddresses): boolean {
  const bytes = addressBytes(family, address);
  if (bytes === undefined) return false;
  const reason = family === 4 ? ipv4Class(bytes) : ipv6Class(bytes);
  return reason === undefined && local.isOwn(address);
}
