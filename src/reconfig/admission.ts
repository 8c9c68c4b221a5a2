/**
 * Admission: which packets that passed the cheap checks get the expensive work (the Noise
 * steps for an initiation: two X25519), so that a flood can neither eat the CPU nor lock a
 * genuine peer out nor grow the memory. One instance per kind of packet, each with its own rates.
 *
 * The policy, in one screen:
 * * Work is bounded: at most `perSecond` admissions a second (and `burst` after a quiet spell),
 *   split between two token buckets: a reserved share for sources that were recently a peer's
 *   endpoint, and the open rest for everyone, known sources included.
 * * Three tiers of sender: a peer's exact recent endpoint address; an address in the same
 *   network as one (the same IPv6 /64: after a NAT remap or a privacy-address change the /64
 *   usually stays; for IPv4 the address itself); everyone else. The exact tier is served
 *   first from the reserved share, so a known peer's own address is never starved by its
 *   neighbours in its /64; the network tier comes next; the open tier gets the open share.
 * * While nothing waits and a token is there, a packet is admitted at once: no added latency.
 * * Otherwise it waits, one packet per source: a newer packet from the same source takes the
 *   held one's place with probability 1/n (n packets seen from it while it waited), so the one
 *   admitted is a uniform sample of what that source sent, not the first or the last.
 * * Waiting sources are served in turns, not first come: a tier goes round the networks
 *   (IPv4 /24, IPv6 /64) that have a packet waiting, and inside a network round its addresses,
 *   so a network with many addresses counts once and one address waits at most one round of
 *   its network's turns.
 * * Memory is bounded by a fixed total, whatever the spread of sources: at most `maxHeld`
 *   packets and `maxHeldBytes` bytes wait in the network and open tiers together, at most
 *   `maxPerNetwork` from one network; when full, a waiting packet of the network that holds most
 *   among a few sampled at random is dropped (an attacker cannot know which; the networks that
 *   hold most lose theirs, a lone sender keeps its place unless all are lone). The
 *   exact tier holds at most one packet per remembered endpoint (`maxEndpoints`). A packet
 *   that waited `maxWaitMs` is dropped as stale.
 *
 * Sending from the exact address of a peer's endpoint needs an on-path or spoofing attacker;
 * such a sender shares that one address's turns with the peer.
 */
import { endpointKeyOf, networkOf } from '../net/prefix.js';
import { REKEY_TIMEOUT_MS } from '../wireguard/constants.js';

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
  /** packets waiting in the network and open tiers together, and their bytes (sizeOf) */
  readonly maxHeld: number;
  readonly maxHeldBytes: number;
  /** packets waiting from one network (IPv4 /24, IPv6 /64) */
  readonly maxPerNetwork: number;
  readonly maxWaitMs: number;
}

/**
 * Handshake initiations: a genuine peer sends one every REKEY_TIMEOUT (5 s) while it retries,
 * so 200 a second is room for hundreds of peers; at ~0.25 ms each it is at most 5 % of a core.
 * A packet that waited one REKEY_TIMEOUT is stale (its sender has retried). At most 256 wait in
 * the network and open tiers (~1 KiB of heap each): a flood spread over many networks displaces
 * a waiting packet within milliseconds however many are held, and a peer's own endpoint and its
 * /64 have tiers of their own, so holding more would cost memory and buy nobody a turn.
 */
export const INITIATION_ADMISSION: AdmissionOptions = {
  perSecond: 200,
  burst: 50,
  reservedShare: 0.25,
  endpointMemoryMs: 24 * 3600_000,
  maxEndpoints: 4096,
  maxHeld: 256,
  maxHeldBytes: 1024 * 1024,
  maxPerNetwork: 256,
  maxWaitMs: REKEY_TIMEOUT_MS,
};

/**
 * Transport data handed to WireGuard (a send, a conntrack pinhole and a decryption attempt
 * each): a roaming peer needs a handful before WireGuard's answer opens the firewall for it,
 * and ten peers remapping at once need a few dozen; after a NAT remap its address is usually
 * a known endpoint, hence the larger reserved share.
 */
export const DATA_ADMISSION: AdmissionOptions = {
  ...INITIATION_ADMISSION,
  // a roaming peer keeps sending: a packet held longer than this is worth less than its next
  maxWaitMs: 1000,
  perSecond: 100,
  burst: 20,
  reservedShare: 0.5,
  maxHeld: 512,
};

/** How many waiting packets are looked at to choose the network that loses one (shed). */
const SHED_SAMPLES = 4;

/** Heap an item is assumed to take when the caller gives no sizeOf. */
const DEFAULT_ITEM_BYTES = 1024;

interface Held<T> {
  item: T;
  seen: number;
  readonly since: number;
  bytes: number;
  readonly group: string;
  readonly address: string;
  /** position in Turns.all, for O(1) random removal */
  slot: number;
}

/** Addresses waiting, grouped; Map order is the turn order (served ones go to the back). */
class Turns<T> {
  readonly groups = new Map<string, Map<string, Held<T>>>();
  /** every waiting packet, in no order: a random one is all[random] */
  readonly all: Held<T>[] = [];
  bytes = 0;

  constructor(private readonly maxPerGroup: number) {}

  get size(): number {
    return this.all.length;
  }

  /**
   * Holds `hold()` for `address`; returns how many held packets were displaced (0 or 1): a
   * newer packet from a waiting address, or a random address of a full network.
   */
  hold(group: string, address: string, hold: () => T, sizeOf: (item: T) => number, now: number): number {
    let members = this.groups.get(group);
    const held = members?.get(address);
    if (held !== undefined) {
      held.seen++;
      if (Math.random() * held.seen < 1) {
        held.item = hold();
        const bytes = sizeOf(held.item);
        this.bytes += bytes - held.bytes;
        held.bytes = bytes;
      }
      return 1;
    }
    let displaced = 0;
    if (members === undefined) {
      members = new Map();
      this.groups.set(group, members);
    } else if (members.size >= this.maxPerGroup) {
      const dropped = randomValue(members);
      if (dropped !== undefined) this.remove(dropped);
      displaced++;
    }
    const item = hold();
    const bytes = sizeOf(item);
    const added: Held<T> = { item, seen: 1, since: now, bytes, group, address, slot: this.all.length };
    members.set(address, added);
    this.all.push(added);
    this.bytes += bytes;
    return displaced;
  }

  /** Drops one waiting packet, chosen at random. */
  /** A waiting packet chosen at random, with how many its network holds. */
  sample(): { held: Held<T>; networkSize: number } | undefined {
    const held = this.all[Math.floor(Math.random() * this.all.length)];
    return held === undefined ? undefined : { held, networkSize: this.groups.get(held.group)?.size ?? 0 };
  }

  /** Drops a random waiting packet of `group`'s. */
  dropFrom(group: string): void {
    const members = this.groups.get(group);
    const held = members === undefined ? undefined : randomValue(members);
    if (held !== undefined) this.remove(held);
  }

  /** The next address's packet in turn order, after dropping what is older than `staleBefore`. */
  next(staleBefore: number): { item: T | undefined; stale: number } {
    let stale = 0;
    for (const [group, members] of this.groups) {
      for (const held of members.values()) {
        this.remove(held);
        if (held.since < staleBefore) {
          stale++;
          continue;
        }
        // its turn is over: to the back
        if (members.size > 0 && this.groups.delete(group)) this.groups.set(group, members);
        return { item: held.item, stale };
      }
    }
    return { item: undefined, stale };
  }

  private remove(held: Held<T>): void {
    const members = this.groups.get(held.group);
    if (members?.get(held.address) !== held) return;
    members.delete(held.address);
    if (members.size === 0) this.groups.delete(held.group);
    const last = this.all.pop();
    if (last !== undefined && last !== held) {
      last.slot = held.slot;
      this.all[held.slot] = last;
    }
    this.bytes -= held.bytes;
  }
}

/** A uniformly random value of a (small) map. */
function randomValue<V>(map: Map<unknown, V>): V | undefined {
  let skip = Math.floor(Math.random() * map.size);
  for (const value of map.values()) if (skip-- === 0) return value;
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

/** How close a sender is to a peer's endpoint. */
export type Tier = 'exact' | 'network' | 'open';

/** A bounded memory of addresses: Map order is oldest first. */
class Remembered {
  private readonly noted = new Map<string, number>();

  constructor(private readonly max: number) {}

  note(key: string, at: number): void {
    this.noted.delete(key);
    this.noted.set(key, at);
    if (this.noted.size > this.max) {
      const oldest = this.noted.keys().next().value;
      if (oldest !== undefined) this.noted.delete(oldest);
    }
  }

  within(key: string, at: number, memoryMs: number): boolean {
    const noted = this.noted.get(key);
    return noted !== undefined && at - noted <= memoryMs;
  }
}

export class Admission<T> {
  readonly options: AdmissionOptions;
  /** packets that will never be admitted: displaced while waiting, or stale */
  dropped = 0;
  admitted = 0;
  private readonly open: Bucket;
  private readonly reserved: Bucket;
  private readonly waitingExact: Turns<T>;
  private readonly waitingNetwork: Turns<T>;
  private readonly waitingOpen: Turns<T>;
  private readonly exactEndpoints: Remembered;
  private readonly endpointNetworks: Remembered;

  constructor(
    options: Partial<AdmissionOptions> = {},
    private readonly now: () => number = () => performance.now(),
    private readonly sizeOf: (item: T) => number = () => DEFAULT_ITEM_BYTES,
  ) {
    this.options = { ...INITIATION_ADMISSION, ...options };
    const { perSecond, burst, reservedShare, maxPerNetwork, maxEndpoints } = this.options;
    const at = now();
    this.open = new Bucket(perSecond * (1 - reservedShare), Math.max(1, burst * (1 - reservedShare)), at);
    this.reserved = new Bucket(perSecond * reservedShare, Math.max(1, burst * reservedShare), at);
    // One group: the exact tier is bounded by the endpoints remembered, one packet each.
    this.waitingExact = new Turns(maxEndpoints);
    this.waitingNetwork = new Turns(maxPerNetwork);
    this.waitingOpen = new Turns(maxPerNetwork);
    this.exactEndpoints = new Remembered(maxEndpoints);
    this.endpointNetworks = new Remembered(maxEndpoints);
  }

  /** Tells the policy that `address` is (or just was) a peer's endpoint. */
  notePeerEndpoint(address: string): void {
    const at = this.now();
    this.exactEndpoints.note(address, at);
    this.endpointNetworks.note(endpointKeyOf(address), at);
  }

  tierOf(address: string): Tier {
    const at = this.now();
    const memory = this.options.endpointMemoryMs;
    if (this.exactEndpoints.within(address, at, memory)) return 'exact';
    return this.endpointNetworks.within(endpointKeyOf(address), at, memory) ? 'network' : 'open';
  }

  isKnown(address: string): boolean {
    return this.tierOf(address) !== 'open';
  }

  /**
   * True: do the work now with your own packet. False: it waits (`hold()` makes a copy the
   * policy may keep; it is called only then) or was dropped; waiting ones come out of drain().
   */
  offer(address: string, hold: () => T): boolean {
    const now = this.now();
    const tier = this.tierOf(address);
    const waiting = tier === 'exact' ? this.waitingExact : tier === 'network' ? this.waitingNetwork : this.waitingOpen;
    // Nobody of this tier, nor of a tier served before it, waits: a token now means no wait.
    const ahead = tier === 'exact' ? 0 : tier === 'network' ? this.waitingExact.size : this.waitingExact.size + this.waitingNetwork.size;
    if (waiting.size === 0 && ahead === 0) {
      for (const bucket of tier === 'open' ? [this.open] : [this.reserved, this.open]) {
        bucket.refill(now);
        if (bucket.tokens >= 1 && (bucket === this.reserved || this.waitingOpen.size === 0)) {
          bucket.tokens -= 1;
          this.admitted++;
          return true;
        }
      }
    }
    const group = tier === 'exact' ? 'exact' : networkOf(address);
    this.dropped += waiting.hold(group, address, hold, this.sizeOf, now);
    if (tier !== 'exact') this.dropped += this.shed();
    return false;
  }

  /** Drops random waiting packets of the network and open tiers until both bounds hold. */
  /**
   * Drops waiting packets of the network and open tiers until both bounds hold: each time from
   * the network that holds most among a few waiting packets sampled at random, so a network
   * that fills the pool loses its own, and a lone sender elsewhere is dropped only when
   * everyone waiting is as lone as it (a flood spread over many networks).
   */
  private shed(): number {
    const { maxHeld, maxHeldBytes } = this.options;
    let shed = 0;
    const a = this.waitingNetwork;
    const b = this.waitingOpen;
    while (a.size + b.size > maxHeld || a.bytes + b.bytes > maxHeldBytes) {
      const total = a.size + b.size;
      if (total === 0) break;
      let victim: { turns: Turns<T>; group: string; size: number } | undefined;
      for (let i = 0; i < SHED_SAMPLES; i++) {
        const turns = Math.random() * total < a.size ? a : b;
        const sampled = turns.sample();
        if (sampled !== undefined && (victim === undefined || sampled.networkSize > victim.size)) {
          victim = { turns, group: sampled.held.group, size: sampled.networkSize };
        }
      }
      if (victim === undefined) break;
      victim.turns.dropFrom(victim.group);
      shed++;
    }
    return shed;
  }

  get waiting(): number {
    return this.waitingExact.size + this.waitingNetwork.size + this.waitingOpen.size;
  }

  /** Bytes held by waiting packets (sizeOf each). */
  get waitingBytes(): number {
    return this.waitingNetwork.bytes + this.waitingOpen.bytes;
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
    serve(this.reserved, this.waitingExact);
    serve(this.reserved, this.waitingNetwork);
    serve(this.open, this.waitingOpen);
    // known sources may use the open share too
    serve(this.open, this.waitingExact);
    serve(this.open, this.waitingNetwork);
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
    return this.waitingExact.size + this.waitingNetwork.size > 0 ? Math.min(open, this.reserved.untilToken()) : open;
  }
}
