/**
 * Allowed IPs as WireGuard's cryptokey routing reads them: which peer a tunnel address belongs
 * to. WireGuard drops a packet that arrives from a peer with a source outside that peer's
 * allowed IPs, and keeps each prefix on one peer only, so the peer whose allowed IPs hold a
 * datagram's source (longest prefix first, as allowedips.c looks up) is the peer that sent it.
 * Pure: a prefix that does not parse is left out, never an exception.
 */
import { addressBytes } from '../net/address.js';

export interface Prefix {
  readonly family: 4 | 6;
  readonly bytes: Buffer;
  readonly length: number;
}

/** `203.0.113.10/32`, `2001:db8::/64`; undefined for anything else. */
export function parsePrefix(text: string): Prefix | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = text.slice(0, slash);
  const lengthText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText)) return undefined;
  const family = address.includes(':') ? 6 : 4;
  const bytes = addressBytes(family, address);
  const length = Number(lengthText);
  if (bytes === undefined || length > bytes.length * 8) return undefined;
  return { family, bytes, length };
}

export function prefixContains(prefix: Prefix, address: Buffer): boolean {
  if (address.length !== prefix.bytes.length) return false;
  const whole = prefix.length >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== prefix.bytes[i]) return false;
  const rest = prefix.length & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((address[whole] ?? 0) & mask) === ((prefix.bytes[whole] ?? 0) & mask);
}

/** Every peer's prefixes, longest first: `owner(address)` is the peer WireGuard would name. */
export class AllowedIps<Owner> {
  private readonly entries: { readonly prefix: Prefix; readonly owner: Owner }[] = [];

  constructor(owners: Iterable<{ readonly owner: Owner; readonly allowedIps: readonly string[] }>) {
    for (const { owner, allowedIps } of owners) {
      for (const text of allowedIps) {
        const prefix = parsePrefix(text);
        if (prefix !== undefined) this.entries.push({ prefix, owner });
      }
    }
    this.entries.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The peer whose allowed IPs hold `address` (text, as the socket reports it); undefined for none. */
  owner(address: string): Owner | undefined {
    const family = address.includes(':') ? 6 : 4;
    const bytes = addressBytes(family, address);
    if (bytes === undefined) return undefined;
    for (const entry of this.entries) if (prefixContains(entry.prefix, bytes)) return entry.owner;
    return undefined;
  }
}
