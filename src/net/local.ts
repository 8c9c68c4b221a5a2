/**
 * This host's own addresses, as the kernel has them now: what a packet re-sent to WireGuard may
 * be addressed to, what a packet R2 really sent comes from, and what no packet from outside may
 * claim as its source. Read from the interfaces (getifaddrs) and kept for a moment: a flood of
 * packets must not cost a system call each, and an address that just appeared is found by
 * reading again on a miss, at most once per `missRefreshMs`.
 */
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { addressBytes } from './address.js';
import { formatIpv4 } from './ipv4.js';
import { formatIpv6 } from './ipv6.js';

export type InterfaceReader = () => NodeJS.Dict<NetworkInterfaceInfo[]>;

export interface LocalAddressOptions {
  readonly read?: InterfaceReader;
  readonly now?: () => number;
  /** how long a reading is used before the next look reads again */
  readonly maxAgeMs?: number;
  /** how often a miss may read again */
  readonly missRefreshMs?: number;
}

/**
 * A text address written as the decoders write it (dotted quad; RFC 5952), so it compares
 * equal with what they make of a packet; undefined if it is no address.
 */
export function canonicalAddress(address: string): string | undefined {
  const family = address.includes(':') ? 6 : 4;
  const bytes = addressBytes(family, address);
  if (bytes === undefined) return undefined;
  return family === 4 ? formatIpv4(bytes, 0) : formatIpv6(bytes, 0);
}

/** The directed broadcast address of an IPv4 subnet, or undefined for /31, /32 and bad input. */
export function broadcastOf(address: string, prefixLength: number): string | undefined {
  const bytes = addressBytes(4, address);
  if (bytes === undefined || !Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 30) return undefined;
  const host = prefixLength === 0 ? 0xffffffff : 0xffffffff >>> prefixLength;
  const broadcast = (bytes.readUInt32BE(0) | host) >>> 0;
  return [24, 16, 8, 0].map((shift) => (broadcast >>> shift) & 0xff).join('.');
}

export class LocalAddresses {
  private own = new Set<string>();
  private broadcast = new Set<string>();
  private secondary = new Set<string>();
  private readAt = Number.NEGATIVE_INFINITY;
  private missReadAt = Number.NEGATIVE_INFINITY;
  private readonly read: InterfaceReader;
  private readonly now: () => number;
  private readonly maxAgeMs: number;
  private readonly missRefreshMs: number;

  constructor(options: LocalAddressOptions = {}) {
    this.read = options.read ?? networkInterfaces;
    this.now = options.now ?? (() => performance.now());
    this.maxAgeMs = options.maxAgeMs ?? 5000;
    this.missRefreshMs = options.missRefreshMs ?? 1000;
  }

  /**
   * True if `address` (as the decoders write it: see canonicalAddress) is one of this host's
   * own addresses, on any interface, lo included.
   */
  isOwn(address: string): boolean {
    this.fresh();
    if (this.own.has(address)) return true;
    // Maybe it was just added (a new WAN lease): read again, but not for every miss.
    const at = this.now();
    if (at - this.missReadAt < this.missRefreshMs) return false;
    this.missReadAt = at;
    this.reload(at);
    return this.own.has(address);
  }

  /** True if `address` is the directed broadcast address of one of this host's IPv4 subnets. */
  isBroadcast(address: string): boolean {
    this.fresh();
    return this.broadcast.has(address);
  }

  /**
   * True if `address` is an IPv4 address of this host that is not the first (primary) one of
   * its interface: the kernel's route back from it usually prefers the primary as source.
   */
  isSecondaryIpv4(address: string): boolean {
    this.fresh();
    return this.secondary.has(address);
  }

  private fresh(): void {
    const at = this.now();
    if (at - this.readAt > this.maxAgeMs) this.reload(at);
  }

  private reload(at: number): void {
    this.readAt = at;
    const own = new Set<string>();
    const broadcast = new Set<string>();
    const secondary = new Set<string>();
    let interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>;
    try {
      interfaces = this.read();
    } catch {
      return; // keep what was known
    }
    for (const infos of Object.values(interfaces)) {
      let ipv4 = 0;
      for (const info of infos ?? []) {
        const address = canonicalAddress(info.address.split('%')[0] ?? '');
        if (address !== undefined) own.add(address);
        if (info.family !== 'IPv4') continue;
        if (ipv4++ > 0 && address !== undefined) secondary.add(address);
        if (info.cidr === null) continue;
        const b = broadcastOf(info.address, Number(info.cidr.split('/')[1]));
        if (b !== undefined) broadcast.add(b);
      }
    }
    this.own = own;
    this.broadcast = broadcast;
    this.secondary = secondary;
  }
}
