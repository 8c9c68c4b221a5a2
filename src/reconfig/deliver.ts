/**
 * Hands a vouched-for packet to WireGuard itself: re-sent through a raw IP socket to R2's own
 * address with its original source kept, so WireGuard authenticates it, roams the endpoint and
 * answers, exactly as if R2's firewall had let it in. The answer then opens the firewall (its
 * conntrack entry sees a reply) and R1's NAT.
 *
 * The re-sent packet leaves through OUTPUT and comes back in on `lo`. Firewalls that accept `lo`
 * (OpenWrt's fw4, ufw) let it through; one that does not drops it as new, unless a conntrack entry
 * for its exact 5-tuple is there first in which it is the reply: the pinhole. Whether the
 * pinhole is needed is decided at start (`--pinhole auto`: by a self-test) and learned again if
 * an injection is not taken up.
 *
 * Narrowest thing that works: the caller hands over only packets addressed to one of R2's own
 * addresses on the listen port; every conntrack entry a hand-over made (the pinhole, or the
 * entry the re-sent packet itself left on its way out) is looked at again HANDOVER_SETTLE_MS
 * later and removed unless WireGuard took the packet up (its peer's endpoint is now that
 * source): a stranger's packet opens nothing that outlives a second or two. Outstanding
 * hand-overs are bounded (MAX_OUTSTANDING); past that, nothing more is pinholed.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../common/log.js';
import { fail, ok, type Result } from '../common/result.js';
import type { UdpTuple } from '../net/inject.js';
import type { Datagram } from '../net/packet.js';
import { LocalAddresses } from '../net/local.js';
import { LogLimiter } from '../common/log-limit.js';
import { isOwnUnicast } from '../net/martian.js';

export type PinholeMode = 'auto' | 'always' | 'never';
export const PINHOLE_MODES: readonly PinholeMode[] = ['auto', 'always', 'never'];

/**
 * The kernel's own timeout for a pinhole nothing used: far beyond the round trip WireGuard needs
 * to answer (its answer refreshes the entry). The re-sent packet, passing, gives it the kernel's
 * unreplied UDP timeout (30 s); the settle step removes it well before that.
 */
export const PINHOLE_TIMEOUT_SECONDS = 2;
/** When a hand-over's conntrack entry is looked at again: WireGuard has answered by then, or never will. */
export const HANDOVER_SETTLE_MS = 1500;
/** Hand-overs whose entries wait to be looked at; past this, nothing more is pinholed. */
export const MAX_OUTSTANDING = 256;

export type { UdpTuple };

/** The raw-socket sender (src/net/inject.ts). */
export interface PacketInjector {
  readonly families: ReadonlySet<4 | 6>;
  inject(tuple: UdpTuple, payload: Buffer): Result<true, string>;
  close(): void;
}

/** The conntrack writer (src/net/conntrack.ts). */
export interface PacketPinholer {
  /** `opened`: an entry of ours; `exists`: a live flow's, left alone */
  open(tuple: UdpTuple, timeoutSeconds: number): Result<'opened' | 'exists', string>;
  remove(tuple: UdpTuple): Result<true, string>;
  close(): void;
}

export interface DeliveryOptions {
  readonly logger: Logger;
  readonly injector: PacketInjector | undefined;
  readonly pinholer: PacketPinholer | undefined;
  readonly mode: PinholeMode;
  /** whether the firewall lets a re-sent packet in on `lo` (the self-test), when known */
  readonly loopbackAccepted?: boolean | undefined;
  readonly now?: () => number;
  /** R2's own addresses: the only destinations ever re-sent to (replaceable for tests) */
  readonly localAddresses?: LocalAddresses;
}

export interface Delivered {
  readonly pinholed: boolean;
}

export function tupleOf(datagram: Datagram): UdpTuple {
  return { family: datagram.family, src: datagram.src, srcPort: datagram.srcPort, dst: datagram.dst, dstPort: datagram.dstPort };
}

const tupleKey = (tuple: UdpTuple): string => `${tuple.src}|${tuple.srcPort}|${tuple.dst}|${tuple.dstPort}`;

export class Delivery {
  private pinhole: boolean;
  /** hand-overs whose conntrack entry is to be looked at again, by flow; Map order is due order */
  private readonly outstanding = new Map<string, { readonly tuple: UdpTuple; readonly dueAt: number; readonly ours: boolean }>();
  /** pinhole failures can come as fast as packets are handed over */
  private readonly limiter: LogLimiter;
  private listenPort: number | undefined;
  private readonly local: LocalAddresses;
  /** entries removed because WireGuard did not take the packet up, and kept because it did */
  removed = 0;
  kept = 0;

  constructor(private readonly options: DeliveryOptions) {
    const { mode, pinholer, loopbackAccepted } = options;
    this.pinhole = pinholer !== undefined && (mode === 'always' || (mode === 'auto' && loopbackAccepted === false));
    this.local = options.localAddresses ?? new LocalAddresses();
    this.limiter = new LogLimiter(options.logger, { summaryAfterMs: 0 });
  }

  /**
   * Decides, once the listen port is known, whether injections need a pinhole (auto mode: the
   * self-test), and says so. `selfTest` is replaceable for tests.
   */
  async prepare(listenPort: number, selfTest: typeof selfTestLoopback = selfTestLoopback): Promise<void> {
    const { injector, pinholer, mode, logger } = this.options;
    this.listenPort = listenPort;
    if (injector === undefined) return;
    let why: string;
    if (mode === 'never') why = 'pinhole never (--pinhole never)';
    else if (pinholer === undefined) why = 'no conntrack pinhole available';
    else if (mode === 'always') why = 'pinhole before each injection (--pinhole always)';
    else {
      const accepted = await selfTest(injector, listenPort);
      this.pinhole = accepted !== true;
      why =
        accepted === true
          ? 'the firewall lets re-sent packets in on lo: no pinhole needed'
          : accepted === false
            ? 'the firewall drops re-sent packets on lo: a conntrack pinhole before each injection'
            : 'could not test the firewall: a conntrack pinhole before each injection';
    }
    logger.info(
      { event: 'delivery', families: [...injector.families].map((f) => `ipv${f}`), pinhole: this.pinhole, mode },
      `handing vouched-for packets to WireGuard; ${why}`,
    );
  }

  /** True if a packet of this family can be handed to WireGuard (else: `wg set`, for initiations). */
  canInject(family: 4 | 6): boolean {
    return this.options.injector?.families.has(family) ?? false;
  }

  get pinholing(): boolean {
    return this.pinhole;
  }

  private now(): number {
    return (this.options.now ?? (() => performance.now()))();
  }

  /**
   * Pinhole (when needed), then re-send. The caller has checked that the packet is addressed to
   * R2 itself on the listen port (nothing else is ever re-sent). `pinhole`: open one even where
   * lo is accepted (data from a peer's own endpoint whose entry is gone: the re-sent packet is
   * then the entry's reply, so the peer's next packets are established whether or not WireGuard
   * answers this one). Never throws.
   */
  deliver(datagram: Datagram, options: { readonly pinhole?: boolean } = {}): Result<Delivered, string> {
    const injector = this.options.injector;
    if (injector === undefined || !injector.families.has(datagram.family)) return fail('no raw socket for this family');
    // The receive path decided this already; checked again here, where the packet is built,
    // so that nothing but R2 itself on the listen port can ever be a destination.
    if (datagram.dstPort !== this.listenPort || !isOwnUnicast(datagram.family, datagram.dst, this.local)) {
      return fail('not addressed to R2 on the listen port');
    }
    const tuple = tupleOf(datagram);
    const key = tupleKey(tuple);
    const pinholer = this.options.pinholer;
    if (!this.outstanding.has(key) && this.outstanding.size >= MAX_OUTSTANDING) return fail('too many hand-overs waiting to settle');
    // Kernel WireGuard answers a packet that came in on lo from the preferred source of its route
    // back (IPv4 only; wireguard-go and IPv6 keep the address it was sent to): for a secondary
    // address of R2 that answer never reaches the peer. A pinhole lets the peer's retry in on the
    // WAN side, where WireGuard keeps the address; so one is opened even where lo is accepted.
    const pinhole = this.pinhole || options.pinhole === true || (datagram.family === 4 && this.local.isSecondaryIpv4(datagram.dst));
    let pinholed = false;
    if (pinhole && pinholer !== undefined) {
      const opened = pinholer.open(tuple, PINHOLE_TIMEOUT_SECONDS);
      // Without its pinhole the packet may still get in (a firewall that accepts lo): send anyway.
      if (!opened.ok) this.limiter.log('warn', 'pinhole.failed', { event: 'pinhole.failed', reason: opened.reason }, `conntrack pinhole failed: ${opened.reason}`);
      pinholed = opened.ok && opened.value === 'opened';
    }
    const sent = injector.inject(tuple, datagram.payload);
    // The entry is ours if we opened it, or if the packet made it on its way out (no pinhole).
    const ours = pinholed || !pinhole;
    if (pinholer !== undefined && (sent.ok || pinholed) && !this.outstanding.has(key)) {
      this.outstanding.set(key, { tuple, dueAt: this.now() + HANDOVER_SETTLE_MS, ours });
    }
    return sent.ok ? ok({ pinholed }) : fail(sent.reason);
  }

  /** ms until the next hand-over is due to settle (undefined when none waits). */
  nextSettleMs(): number | undefined {
    const first = this.outstanding.values().next();
    return first.done === true ? undefined : Math.max(0, first.value.dueAt - this.now());
  }

  /**
   * Looks at every hand-over that is due: its conntrack entry stays if WireGuard took the packet
   * up (`takenUp`: the source is now a peer's endpoint), and is removed otherwise, so nothing a
   * stranger sent keeps a way in open. Never throws.
   */
  settle(takenUp: (tuple: UdpTuple) => boolean): void {
    const now = this.now();
    const pinholer = this.options.pinholer;
    for (const [key, handed] of this.outstanding) {
      if (handed.dueAt > now) break;
      this.outstanding.delete(key);
      if (takenUp(handed.tuple)) {
        this.kept++;
        continue;
      }
      if (!handed.ours || pinholer === undefined) continue;
      if (pinholer.remove(handed.tuple).ok) this.removed++;
    }
  }

  /**
   * In auto mode, an injection WireGuard did not take up means the firewall drops what comes in
   * on `lo`: pinhole from now on. Returns true if that changed anything (the caller may retry).
   */
  learnPinholeNeeded(): boolean {
    if (this.pinhole || this.options.mode !== 'auto' || this.options.pinholer === undefined) return false;
    this.pinhole = true;
    this.options.logger.warn(
      { event: 'pinhole.enabled', why: 'injection-not-taken-up' },
      'a re-sent packet did not reach WireGuard: the firewall drops it on lo; opening a conntrack pinhole for each from now on',
    );
    return true;
  }

  close(): void {
    this.limiter.stop();
    this.options.injector?.close();
    this.options.pinholer?.close();
  }
}

/**
 * IP packets that passed INPUT and were handed to a local protocol in this network namespace
 * (/proc/net/snmp `Ip: InDelivers`). The kernel counts them in the receive path itself, within
 * the send call for a packet on `lo`. (`Udp: InDatagrams` would not do: it counts a datagram
 * only when a socket reads it, and wireguard-go reads in its own thread, so whether it moved
 * right after the send was a race that a loaded machine lost.)
 */
export function ipDelivered(snmp: string): number | undefined {
  const lines = snmp.split('\n').filter((line) => line.startsWith('Ip: '));
  const names = lines[0]?.split(/\s+/);
  const values = lines[1]?.split(/\s+/);
  if (names === undefined || values === undefined) return undefined;
  const at = names.indexOf('InDelivers');
  const value = at < 0 ? Number.NaN : Number(values[at]);
  return Number.isFinite(value) ? value : undefined;
}

/** Where the self-test's packet claims to come from: a documentation address, the discard port. */
const SELF_TEST_SOURCE = { src: '198.51.100.254', srcPort: 9 } as const;
/** Message type 0 is no WireGuard message: WireGuard drops it without a word. */
const SELF_TEST_PAYLOAD = Buffer.alloc(4);
const SELF_TEST_TRIES = 3;

/** How long the self-test waits for the counter after each send: delivery on lo is normally
 *  done within the send call, but a busy machine may defer it to the softirq thread. */
const SELF_TEST_WAIT_MS = 50;

/**
 * Does a packet re-sent to the listen port get past the firewall on `lo`? Sends a message
 * WireGuard ignores and watches the IP delivery counter (InDelivers, counted as a packet passes
 * INPUT, whether or not the socket reads it yet). Delivery on lo is normally done within the
 * send call; a busy machine may defer it to the softirq thread, so each try waits briefly. Any
 * other packet arriving meanwhile would also move it, so every one of three tries must see it
 * move. Undefined when it cannot tell (no IPv4 raw socket, no counters).
 */
export async function selfTestLoopback(
  injector: PacketInjector,
  listenPort: number,
  readSnmp = (): string => readFileSync('/proc/net/snmp', 'utf8'),
): Promise<boolean | undefined> {
  if (!injector.families.has(4)) return undefined;
  const tuple: UdpTuple = { family: 4, ...SELF_TEST_SOURCE, dst: '127.0.0.1', dstPort: listenPort };
  for (let i = 0; i < SELF_TEST_TRIES; i++) {
    const before = ipDelivered(readSnmp());
    if (before === undefined) return undefined;
    if (!injector.inject(tuple, SELF_TEST_PAYLOAD).ok) return undefined;
    const deadline = performance.now() + SELF_TEST_WAIT_MS;
    let moved = false;
    for (;;) {
      const after = ipDelivered(readSnmp());
      if (after === undefined) return undefined;
      if (after !== before) {
        moved = true;
        break;
      }
      if (performance.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    if (!moved) return false;
  }
  return true;
}
