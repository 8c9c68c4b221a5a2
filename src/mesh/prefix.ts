/**
 * IP prefixes (CIDR) as the mesh client needs them: parse the text WireGuard and the registry
 * write, compare, contain, overlap. Pure; bad text is a Result, never an exception. Addresses
 * are held as bigints so IPv4 and IPv6 share one set of rules.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ipv4Bytes, ipv6Bytes } from '../net/address.js';
import { fail, ok, type Result } from '../common/result.js';

export interface Prefix {
  readonly family: 4 | 6;
  /** the network address, host bits zero */
  readonly network: bigint;
  readonly length: number;
  /** canonical text, `203.0.113.10/32`, `2001:db8:1::/64` */
  readonly text: string;
}

const BITS = { 4: 32, 6: 128 } as const;

function toBigint(bytes: Buffer): bigint {
  return BigInt(`0x${bytes.toString('hex')}`);
}

function formatAddress(family: 4 | 6, value: bigint): string {
  const hex = value.toString(16).padStart(family === 4 ? 8 : 32, '0');
  const bytes = Buffer.from(hex, 'hex');
  if (family === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // RFC 5952: the longest run (of two or more) of zero groups becomes ::
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

function mask(family: 4 | 6, length: number): bigint {
  const bits = BITS[family];
  return length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(bits - length);
}

/** An address's bits, or undefined when the text is not an address (no zone ids). */
export function parseAddress(text: string): { family: 4 | 6; value: bigint } | undefined {
  if (isIPv4(text)) {
    const bytes = ipv4Bytes(text);
    return bytes === undefined ? undefined : { family: 4, value: toBigint(bytes) };
  }
  if (isIPv6(text)) {
    const bytes = ipv6Bytes(text);
    return bytes === undefined ? undefined : { family: 6, value: toBigint(bytes) };
  }
  return undefined;
}

/** Canonical text of an address (dotted quad; RFC 5952), or undefined when it is none. */
export function canonicalAddress(text: string): string | undefined {
  const address = parseAddress(text);
  return address === undefined ? undefined : formatAddress(address.family, address.value);
}

/**
 * `ADDR/LEN` → a prefix. The host bits must be zero (`203.0.113.10/24` is refused: it is an
 * interface address, not a route) unless `allowHostBits`, which masks them (for an interface's
 * own address → its network).
 */
export function parsePrefix(text: string, { allowHostBits = false }: { readonly allowHostBits?: boolean } = {}): Result<Prefix> {
  if (text.length > 64) return fail('too long');
  const slash = text.indexOf('/');
  if (slash < 0) return fail('has no /length');
  const address = parseAddress(text.slice(0, slash));
  if (address === undefined) return fail('is not an address');
  const lengthText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText)) return fail('has no valid length');
  const length = Number(lengthText);
  if (length > BITS[address.family]) return fail('has a length beyond the address');
  const network = address.value & mask(address.family, length);
  if (network !== address.value && !allowHostBits) return fail('has host bits set');
  return ok({ family: address.family, network, length, text: `${formatAddress(address.family, network)}/${length}` });
}

/** Whether `inner` lies within `outer` (equal counts). */
export function contains(outer: Prefix, inner: Prefix): boolean {
  return outer.family === inner.family && outer.length <= inner.length && (inner.network & mask(outer.family, outer.length)) === outer.network;
}

export function containsAddress(outer: Prefix, address: { family: 4 | 6; value: bigint }): boolean {
  return outer.family === address.family && (address.value & mask(outer.family, outer.length)) === outer.network;
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  return contains(a, b) || contains(b, a);
}

export function samePrefix(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.length === b.length && a.network === b.network;
}
