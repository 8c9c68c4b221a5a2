/**
 * Admission: which packets that passed the cheap checks get the expensive work (the Noise
 * steps for an initiation: two X25519), so that a flood can neither eat the CPU nor lock a
 * genuine peer out. One instance per kind of packet, each with its own rates.
 *
 * The policy, in one screen:
 * * Work is bounded: at most `perSecond` admissions a second (and `burst` after a quiet spell),
 *   split between two token buckets: a reserved share for sources that were recently a peer's
 *   endpoint (the same IPv4 address, or the same IPv6 /64: after a NAT remap the address
 *   usually stays), and the open rest for everyone, known sources included.
 * * While nothing waits and a token is there, a packet is admitted at once: no added latency.
 * * Otherwise it waits, one packet per source: a newer packet from the same source takes the
 *   held one's place with probability 1/n (n packets seen from it while it waited), so the one
 *   admitted is a uniform sample of what that source sent, not the first or the last.
 * * Waiting sources are served in turns, not first come: the open share goes round the
 *   networks (IPv4 /24, IPv6 /64) that have a packet waiting, and inside a network round its
 *   addresses, so a network with many addresses counts once and one address waits at most one
 *   round of its network's turns. The reserved share goes round the known sources the same way.
 * * Memory is bounded: at most `maxNetworks` networks and `maxPerNetwork` addresses in each
 *   wait; when full, a random one is dropped (an attacker cannot know which to push out).
 *   A packet that waited `maxWaitMs` is dropped as stale.
 *
 * Sending from the exact address of a peer's endpoint needs an on-path or spoofing attacker;
 * such a sender shares that one address's turns with the peer.
 */
import { endpointKeyOf, networkOf } from '../net/prefix.js';

export interface AdmissionOptions {
  /** admissions per second, both shares together, and how many may accumulate */
  readonly perSecond: number;
  readonly burst: number;
  /** share of perSecond and burst reserved for recent peer endpoints (0-1) */
  readonly reservedShare: number;
  /** how long an address counts as a peer's endpoint after it was last noted */
  readonly endpointMemoryMs: number;
  /** how many endpoints are remembered (oldest out first) */
  readonly maxEndpoints: number;
  readonly maxNetworks: number;
  readonly maxPerNetwork: number;
  readonly maxWaitMs: number;
}

/**
 * Handshake initiations: a genuine peer sends one every REKEY_TIMEOUT (5 s) while it retries,
 * so 200 a second is room for hundreds of peers; at ~0.25 ms each it is at most 5 % of a core.
 */
export const INITIATION_ADMISSION: AdmissionOptions = {
  perSecond: 200,
  burst: 50,
  reservedShare: 0.25,
  endpointMemoryMs: 24 * 3600_000,
  maxEndpoints: 4096,
  maxNetworks: 1024,
  maxPerNetwork: 256,
  maxWaitMs: 5000,
};

/**
 * Transport data handed to WireGuard (a send and a decryption attempt each): a roaming peer
 * needs a handful before WireGuard's answer opens the firewall for it; after a NAT remap its
 * address is usually a known endpoint, hence the larger reserved share.
 */
export const DATA_ADMISSION: AdmissionOptions = {
  ...INITIATION_ADMISSION,
  perSecond: 500,
  burst: 20,
  reservedShare: 0.5,
};

interface Held<T> {
  item: T;
  seen: number;
  since: number;
}

/** Addresses waiting, grouped; Map order is the turn order (served ones go to the back). */
class Turns<T> {
  readonly groups = new Map<string, Map<string, Held<T>>>();
  size = 0;

  constructor(
    private readonly maxGroups: number,
    private readonly maxPerGroup: number,
  ) {}

  /** Holds `hold()` for `address`; returns how many held packets were displaced (0 or 1). */
  hold(group: string, address: string, hold: () => T, now: number): number {
    let members = this.groups.get(group);
    const held = members?.get(address);
    if (held !== undefined) {
      held.seen++;
      if (Math.random() * held.seen < 1) held.item = hold();
      return 1;
    }
    let displaced = 0;
    if (members === undefined) {
      if (this.groups.size >= this.maxGroups) displaced += this.dropGroup(randomKey(this.groups));
      members = new Map();
      this.groups.set(group, members);
    } else if (members.size >= this.maxPerGroup) {
      const dropped = randomKey(members);
      if (dropped !== undefined) members.delete(dropped);
      this.size--;
      displaced++;
    }
    members.set(address, { item: hold(), seen: 1, since: now });
    this.size++;
    return displaced;
  }

  /** The next address's packet in turn order, after dropping what is older than `staleBefore`. */
  next(staleBefore: number): { item: T | undefined; stale: number } {
    let stale = 0;
    for (const [group, members] of this.groups) {
      this.groups.delete(group);
      for (const [address, held] of members) {
        members.delete(address);
        this.size--;
        if (held.since < staleBefore) {
          stale++;
          continue;
        }
        if (members.size > 0) this.groups.set(group, members); // its turn is over: to the back
        return { item: held.item, stale };
      }
    }
    return { item: undefined, stale };
  }

  private dropGroup(group: string | undefined): number {
    const members = group === undefined ? undefined : this.groups.get(group);
    if (group === undefined || members === undefined) return 0;
    this.groups.delete(group);
    this.size -= members.size;
    return members.size;
  }
}

function randomKey<K>(map: Map<K, unknown>): K | undefined {
  let skip = Math.floor(Math.random() * map.size);
  for (const key of map.keys()) if (skip-- === 0) return key;
  return undefined;
}

class Bucket {
  tokens: number;
  private at: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
  }

  /** ms until one token is there (0 if one is) */
  untilToken(): number {
    return this.tokens >= 1 || this.perSecond <= 0 ? 0 : ((1 - this.tokens) / this.perSecond) * 1000;
  }
}

export class Admission<T> {
  readonly options: AdmissionOptions;
  /** packets that will never be admitted: displaced while waiting, or stale */
  dropped = 0;
  admitted = 0;
  private readonly open: Bucket;
  private readonly reserved: Bucket;
  private readonly waitingOpen: Turns<T>;
  private readonly waitingKnown: Turns<T>;
  /** endpoint key → when it was last noted; Map order is oldest first */
  private readonly endpoints = new Map<string, number>();

  constructor(
    options: Partial<AdmissionOptions> = {},
    private readonly now: () => number = () => performance.now(),
  ) {
    this.options = { ...INITIATION_ADMISSION, ...options };
    const { perSecond, burst, reservedShare, maxNetworks, maxPerNetwork } = this.options;
    const at = now();
    this.open = new Bucket(perSecond * (1 - reservedShare), Math.max(1, burst * (1 - reservedShare)), at);
    this.reserved = new Bucket(perSecond * reservedShare, Math.max(1, burst * reservedShare), at);
    this.waitingOpen = new Turns(maxNetworks, maxPerNetwork);
    this.waitingKnown = new Turns(1, this.options.maxEndpoints);
  }

  /** Tells the policy that `address` is (or just was) a peer's endpoint. */
  notePeerEndpoint(address: string): void {
    const key = endpointKeyOf(address);
    this.endpoints.delete(key);
    this.endpoints.set(key, this.now());
    if (this.endpoints.size > this.options.maxEndpoints) {
      const oldest = this.endpoints.keys().next().value;
      if (oldest !== undefined) this.endpoints.delete(oldest);
    }
  }

  isKnown(address: string): boolean {
    const noted = this.endpoints.get(endpointKeyOf(address));
    return noted !== undefined && this.now() - noted <= this.options.endpointMemoryMs;
  }

  /**
   * True: do the work now with your own packet. False: it waits (`hold()` makes a copy the
   * policy may keep; it is called only then) or was dropped; waiting ones come out of drain().
   */
  offer(address: string, hold: () => T): boolean {
    const now = this.now();
    const known = this.isKnown(address);
    const waiting = known ? this.waitingKnown : this.waitingOpen;
    if (waiting.size === 0) {
      for (const bucket of known ? [this.reserved, this.open] : [this.open]) {
        bucket.refill(now);
        if (bucket.tokens >= 1 && (bucket === this.reserved || this.waitingOpen.size === 0)) {
          bucket.tokens -= 1;
          this.admitted++;
          return true;
        }
      }
    }
    this.dropped += waiting.hold(known ? 'known' : networkOf(address), address, hold, now);
    return false;
  }

  get waiting(): number {
    return this.waitingOpen.size + this.waitingKnown.size;
  }

  /** The waiting packets whose turn has come, as far as the tokens go. */
  drain(): T[] {
    const now = this.now();
    const staleBefore = now - this.options.maxWaitMs;
    const out: T[] = [];
    const serve = (bucket: Bucket, turns: Turns<T>): void => {
      bucket.refill(now);
      while (bucket.tokens >= 1 && turns.size > 0) {
        const { item, stale } = turns.next(staleBefore);
        this.dropped += stale;
        if (item === undefined) break;
        bucket.tokens -= 1;
        out.push(item);
      }
    };
    serve(this.reserved, this.waitingKnown);
    serve(this.open, this.waitingOpen);
    serve(this.open, this.waitingKnown); // known sources may use the open share too
    this.admitted += out.length;
    return out;
  }

  /** ms until drain() can admit something (undefined when nothing waits) */
  nextDrainMs(): number | undefined {
    if (this.waiting === 0) return undefined;
    const now = this.now();
    this.open.refill(now);
    this.reserved.refill(now);
    const open = this.open.untilToken();
    return this.waitingKnown.size > 0 ? Math.min(open, this.reserved.untilToken()) : open;
  }
}
