/**
 * After a packet is handed to WireGuard: one work queue per peer (calls for the same peer never
 * race), one confirmation per peer reading `wg show` with back-off until the endpoint moves,
 * the pinhole retry when the firewall dropped what came in on lo, the `wg set` fallback for a
 * verified initiation, the settling of hand-overs (deliver.ts), and changed(): the one place a
 * confirmed move is recorded and told.
 */
import { logError, ReconfigError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Datagram } from '../net/packet.js';
import { REKEY_TIMEOUT_MS } from '../wireguard/constants.js';
import type { EndpointReader } from '../wireguard/endpoints.js';
import type { PeerConfig, WgRunner } from '../wireguard/wg.js';
import { applyEndpointChange } from './apply.js';
import { preciseWallClock, wallClock, type ChangeHow, type ChangeListeners } from './change.js';
import type { Counters, IgnoreReason } from './counters.js';
import type { Delivery } from './deliver.js';
import type { Expiry } from './expiry.js';
import { endpointKeyOf, endpointKeyOfParts, formatEndpoint, sameEndpoint } from './endpoint.js';
import type { HandedOver, Peer, Peers } from './peers.js';
import type { HeldPacket } from './ratelimit.js';

/**
 * WireGuard takes an injected packet up within a millisecond or two; `wg show` is read after
 * each of these waits until the endpoint is the new one (about 0.5 s in all). While only data
 * was handed over (what a stranger with an on-path view of an index can send at will), it is
 * read after every DATA_READ_EVERY-th wait only: each read is a process started.
 */
export const CONFIRM_DELAYS_MS = [1, 2, 4, 8, 16, 32, 64, 128, 256] as const;
const DATA_READ_EVERY = 3;
/**
 * A source whose data packet WireGuard did not take up is not handed over again for this long:
 * a stranger replaying a live index costs one injection per address per SPENT_SOURCE_MS. A
 * genuine peer whose data was refused (a stale index) still gets in with its next handshake
 * (which this does not touch), due one REKEY_TIMEOUT after its last.
 */
const SPENT_SOURCE_MS = REKEY_TIMEOUT_MS;
const MAX_SPENT_SOURCES = 4096;
/**
 * After a confirmation that data alone started came to nothing, the next one for the same peer
 * waits this long: each costs a few `wg show` reads, and a stream of data naming a peer's
 * index from ever new addresses must not become a stream of them.
 */
const DATA_CONFIRM_COOLDOWN_MS = 2000;
/** When reading the endpoints to settle hand-overs fails, the next try comes after this. */
const SETTLE_RETRY_MS = 1000;
/**
 * Settling reads `wg show` once for every hand-over due; the next read comes no sooner than
 * this, however many hand-overs fall due meanwhile (under a flood, one every few ms): an entry
 * is then looked at between HANDOVER_SETTLE_MS and that plus this.
 */
const SETTLE_EVERY_MS = 500;
/** Sources remembered per peer while its confirmation runs (the newest kept). */
const MAX_HANDED_OVER_SOURCES = 16;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface RoamDeps {
  readonly logger: Logger;
  readonly iface: string;
  readonly dryRun: boolean;
  readonly run: WgRunner | undefined;
  /** each peer's endpoint as WireGuard has it now (in-process; `wg show` when that cannot be) */
  readonly endpoints: EndpointReader;
  readonly delivery: Delivery | undefined;
  readonly confirmDelaysMs: readonly number[];
  readonly peers: Peers;
  readonly counters: Counters;
  readonly changes: ChangeListeners;
  readonly now: () => number;
  /** re-reads the interface (the listener's refresh) */
  readonly reread: (why: string) => Promise<void>;
  /** a confirmed move to `to`: what follows the endpoints (admission, capture filter) is told */
  readonly moved: (to: string) => void;
  /** endpoints whose conntrack entry is gone (expiry.ts): their data is handed over as a re-entry */
  readonly expiry?: Pick<Expiry, 'isLifted' | 'reestablished'>;
  /** resolves once the replay watermarks raised so far are on disk (replay.ts) */
  readonly durable?: () => Promise<void>;
}

export class Roam {
  private readonly work = new Set<Promise<void>>();
  /**
   * Sources whose data packet was handed over and not taken up: not handed over again for a
   * while (a stranger replaying a live index costs one injection per address, not a stream).
   */
  private readonly spent = new Map<string, number>();
  private settleTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: RoamDeps) {}

  /** Runs `task` after every earlier task for the same peer. */
  enqueue(peer: Peer, task: () => Promise<void>): void {
    const next = (peer.queue ?? Promise.resolve()).then(task).catch((error: unknown) => logError(this.deps.logger, error));
    peer.queue = next;
    this.work.add(next);
    void next.finally(() => {
      this.work.delete(next);
      if (peer.queue !== next) return;
      peer.queue = undefined;
      this.deps.peers.release(peer);
    });
  }

  /** Resolves when every queued task has been handled. */
  async settled(): Promise<void> {
    for (let round = 0; round < 100 && this.work.size > 0; round++) await Promise.allSettled([...this.work]);
  }

  /**
   * Why data from `address` (`src`, with its port) for `peer` is not handed over now, if it is
   * not. An initiation of the peer's just handed over from that very source: WireGuard's response
   * opened the firewall for it and the confirmation already watches that source, so handing the
   * data over too would only spend the data budget (which peers roaming at once share).
   */
  dataRefusal(address: string, peer: Peer, src?: string): IgnoreReason | undefined {
    if (src !== undefined && peer.handedOver?.get(src)?.kind === 'initiation') return 'initiation-pending';
    const spentUntil = this.spent.get(address);
    if (spentUntil !== undefined && spentUntil > this.deps.now()) return 'source-spent';
    return this.resting(peer) ? 'rate-limited' : undefined;
  }

  /**
   * True while `peer` takes no data hand-over: its last data-only confirmation came to nothing,
   * or the one running has as many sources to look at as it keeps (more tell it nothing new).
   */
  resting(peer: Peer): boolean {
    if (peer.handedOver !== undefined) return peer.handedOver.size >= MAX_HANDED_OVER_SOURCES;
    return peer.dataConfirmAfter > this.deps.now();
  }

  /** Hands `datagram` to WireGuard (deliver.ts); false, counted, if it could not be. */
  inject(datagram: Datagram, kind: 'initiation' | 'data', pinhole = false): boolean {
    const delivered = this.deps.delivery?.deliver(datagram, { pinhole });
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    if (delivered === undefined || !delivered.ok) {
      this.deps.counters.ignore('inject-failed', { src, why: delivered?.ok === false ? delivered.reason : 'no delivery' }, `${kind}.ignored`);
      return false;
    }
    this.deps.counters.injected++;
    this.scheduleSettle();
    this.deps.counters.limited('debug', `${kind}.injected`, { event: `${kind}.injected`, interface: this.deps.iface, src, pinholed: delivered.value.pinholed }, `handed a ${kind} packet from ${src} to WireGuard`);
    return true;
  }

  /** Admitted: hand the data packet to WireGuard and watch for the endpoint to move. */
  handOverData({ datagram, capturedAt, peer: peerKey }: HeldPacket): void {
    if (this.stopped || peerKey === undefined) return;
    const peer = this.deps.peers.worker(peerKey);
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    // It may have waited its turn while the peer came to rest: asked again at hand-over time.
    const refused = this.dataRefusal(datagram.src, peer, src);
    if (refused !== undefined) return this.deps.counters.ignore(refused, { src, peer: peerKey }, 'data.ignored');
    const key = endpointKeyOfParts(datagram.src, datagram.srcPort);
    if (endpointKeyOf(peer.endpoint) === key) return this.reenter(peer, key, datagram);
    if (!this.inject(datagram, 'data')) return;
    this.handedOverFor(peer, { src, kind: 'data', capturedAt, injectedAt: preciseWallClock(), datagram });
  }

  /**
   * Data from the peer's own endpoint, whose conntrack entry is gone (expiry.ts): the firewall
   * dropped it. Handed over with a pinhole, which leaves an entry for the flow (kept when the
   * hand-over settles: the source is the peer's endpoint), and the endpoint's data goes back out
   * of the capture. Nothing moves, so nothing is confirmed. Once the entry is back (an earlier
   * packet re-entered while this one waited its turn), it is WireGuard's already.
   */
  private reenter(peer: Peer, key: string, datagram: Datagram): void {
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    if (this.deps.expiry?.isLifted(key) !== true) return this.deps.counters.ignore('from-endpoint', { src, peer: peer.publicKey }, 'data.ignored');
    if (!this.inject(datagram, 'data', true)) return;
    this.deps.expiry.reestablished(key);
    this.deps.counters.countFor(peer.publicKey, 'reentered');
    this.deps.counters.limited(
      'debug',
      'data.reentered',
      { event: 'data.reentered', interface: this.deps.iface, peer: peer.publicKey, src },
      `handed data from ${src}, the peer's own endpoint, to WireGuard: its conntrack entry was gone`,
    );
  }

  /**
   * Remembers a packet handed over for `peer` and makes sure one confirmation runs for that
   * peer: however many packets are handed over meanwhile (a flood of replayed data naming a live
   * index among them), a peer has one `wg show` loop at a time. A new initiation restarts its
   * waits, so each genuine one gets the whole window before falling back.
   */
  handedOverFor(peer: Peer, handed: HandedOver): void {
    let pending = peer.handedOver;
    const starting = pending === undefined;
    if (pending === undefined) {
      pending = new Map();
      peer.handedOver = pending;
    }
    pending.delete(handed.src);
    pending.set(handed.src, handed);
    for (const src of pending.keys()) {
      if (pending.size <= MAX_HANDED_OVER_SOURCES) break;
      pending.delete(src);
    }
    if (handed.kind === 'initiation') peer.restartWatch = true;
    if (starting) this.enqueue(peer, () => this.confirm(peer));
  }

  /** Waits for WireGuard to take up what was handed over; falls back to `wg set` for an initiation. */
  private async confirm(peer: Peer): Promise<void> {
    try {
      let pinholeTried = false;
      for (;;) {
        if ((await this.watchEndpoint(peer)) || this.stopped) return;
        const pending = [...(peer.handedOver?.values() ?? [])];
        const initiation = pending.filter((p) => p.kind === 'initiation').at(-1);
        if (initiation === undefined) {
          this.deps.counters.limited('debug', 'data.not-taken-up', { event: 'data.not-taken-up', interface: this.deps.iface, peer: peer.publicKey, sources: pending.map((p) => p.src) }, 'WireGuard did not move the endpoint');
          this.dataNotTakenUp(peer, pending);
          return;
        }
        // The firewall may drop what comes in on lo: pinhole and hand the same packet over again
        // (WireGuard never saw it, so it is still fresh to WireGuard).
        if (!pinholeTried && this.deps.delivery?.learnPinholeNeeded() === true && this.inject(initiation.datagram, 'initiation')) {
          pinholeTried = true;
          peer.restartWatch = true;
          continue;
        }
        const config = peer.configured ? this.deps.peers.configOf(peer) : undefined;
        if (config !== undefined) await this.applyWithWg(peer.publicKey, config, initiation.src, initiation.capturedAt);
        return;
      }
    } finally {
      peer.handedOver = undefined;
      peer.restartWatch = false;
    }
  }

  /** Data handed over for `peer` that WireGuard did not take up: its sources rest a while. */
  private dataNotTakenUp(peer: Peer, pending: readonly HandedOver[]): void {
    const now = this.deps.now();
    peer.dataConfirmAfter = now + DATA_CONFIRM_COOLDOWN_MS;
    for (const handed of pending) {
      this.spent.delete(handed.datagram.src);
      this.spent.set(handed.datagram.src, now + SPENT_SOURCE_MS);
    }
    for (const [address, until] of this.spent) {
      if (this.spent.size <= MAX_SPENT_SOURCES && until > now) break;
      this.spent.delete(address);
    }
  }

  /**
   * Reads `wg show` after each wait until the peer's endpoint moves; tells the change (injected
   * if it moved to a source we handed a packet over from, else roamed). False if it did not move.
   */
  private async watchEndpoint(peer: Peer): Promise<boolean> {
    const delays = this.deps.confirmDelaysMs;
    for (let i = 0; i < delays.length; i++) {
      if (peer.restartWatch) {
        peer.restartWatch = false;
        i = 0;
      }
      await sleep(delays[i] ?? 0);
      if (this.stopped) return false;
      const dataOnly = ![...(peer.handedOver?.values() ?? [])].some((p) => p.kind === 'initiation');
      if (dataOnly && i % DATA_READ_EVERY !== DATA_READ_EVERY - 1 && i !== delays.length - 1) continue;
      const endpoint = (await this.deps.endpoints.read(this.deps.iface)).get(peer.publicKey);
      const known = peer.configured ? peer.endpoint : undefined;
      if (endpoint === undefined || sameEndpoint(endpoint, known)) continue;
      const injected = [...(peer.handedOver?.values() ?? [])].find((p) => sameEndpoint(p.src, endpoint));
      if (injected === undefined) this.changed(peer.publicKey, endpoint, 'roamed');
      else {
        if (injected.kind === 'initiation') this.deps.counters.accepted++;
        this.changed(peer.publicKey, endpoint, 'injected', { capturedAt: injected.capturedAt, doneAt: injected.injectedAt });
      }
      return true;
    }
    return false;
  }

  /** Today's path: `wg set` with a keepalive edge, for verified initiations only. */
  async applyWithWg(peerKey: string, fallback: PeerConfig, src: string, capturedAt: number): Promise<void> {
    if (this.stopped) return;
    const { logger, iface, peers, counters } = this.deps;
    // The initiation's watermark is on disk before our own hand moves anything: after a crash,
    // a replay of it must not pass.
    await this.deps.durable?.();
    if (this.stopped) return;
    // The endpoint may have moved since we last looked (WireGuard roams on authenticated
    // packets by itself), so ask wg for the current one before deciding.
    await this.deps.reread('initiation');
    const known = peers.get(peerKey);
    const current = (known === undefined ? undefined : peers.configOf(known)) ?? fallback;
    if (sameEndpoint(current.endpoint, src)) {
      counters.accepted++;
      logger.debug({ event: 'endpoint.unchanged', interface: iface, peer: peerKey, endpoint: src }, 'endpoint already current');
      return;
    }
    if (this.deps.dryRun) {
      counters.accepted++;
      logger.info(
        { event: 'endpoint.updated', dryRun: true, interface: iface, peer: peerKey, from: current.endpoint, to: src, how: 'set' },
        `dry run: would point peer at ${src}`,
      );
      this.deps.changes.emit({ peer: peerKey, from: current.endpoint, to: src, how: 'set', at: wallClock() });
      return;
    }
    const setAt = await applyEndpointChange(iface, current, src, this.deps.run);
    const confirmed = (await this.deps.endpoints.read(iface)).get(peerKey);
    if (!sameEndpoint(confirmed, src)) {
      throw new ReconfigError('E_WG', `wg set did not move peer ${peerKey} to ${src}: wg show says ${confirmed ?? '(none)'}.`);
    }
    counters.accepted++;
    this.changed(peerKey, src, 'set', { capturedAt, doneAt: setAt });
  }

  /** A confirmed change of a configured peer: believe it, let the capture follow, tell. */
  changed(peerKey: string, to: string, how: ChangeHow, timing?: { capturedAt: number; doneAt: number }): void {
    const peer = this.deps.peers.get(peerKey);
    if (peer === undefined || sameEndpoint(peer.endpoint, to)) return;
    const from = peer.endpoint;
    peer.endpoint = to;
    this.deps.moved(to);
    const at = wallClock();
    const confirmedAt = preciseWallClock();
    this.deps.logger.info(
      {
        event: 'endpoint.updated',
        interface: this.deps.iface,
        peer: peerKey,
        from,
        to,
        how,
        ...(timing === undefined
          ? {}
          : {
              // capture → packet handed to WireGuard (or endpoint set); and → confirmed by reading the endpoints
              latencyMs: Number((timing.doneAt - timing.capturedAt).toFixed(3)),
              confirmedMs: Number((confirmedAt - timing.capturedAt).toFixed(3)),
              setAt: new Date(timing.doneAt).toISOString(),
            }),
      },
      `peer now at ${to} (${how})`,
    );
    this.deps.counters.updated++;
    this.deps.counters.countFor(peerKey, 'updated');
    this.deps.changes.emit({ peer: peerKey, from, to, how, at });
  }

  /** Settles hand-overs when the first is due (deliver.ts): one `wg show` read for all of them. */
  private scheduleSettle(delayMs = this.deps.delivery?.nextSettleMs()): void {
    if (this.settleTimer !== undefined || this.stopped || delayMs === undefined) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      void this.settleHandOvers();
    }, delayMs);
    this.settleTimer.unref();
  }

  private async settleHandOvers(): Promise<void> {
    const delivery = this.deps.delivery;
    if (delivery === undefined || this.stopped) return;
    let endpoints: ReadonlyMap<string, string | undefined>;
    try {
      endpoints = await this.deps.endpoints.read(this.deps.iface);
    } catch {
      return this.scheduleSettle(SETTLE_RETRY_MS);
    }
    const current = new Set([...endpoints.values()].flatMap((endpoint) => endpointKeyOf(endpoint) ?? []));
    delivery.settle((tuple) => current.has(endpointKeyOfParts(tuple.src, tuple.srcPort)));
    const next = delivery.nextSettleMs();
    if (next !== undefined) this.scheduleSettle(Math.max(next, SETTLE_EVERY_MS));
  }

  /** Stops confirming and settling; queued work ends at its next step. */
  stop(): void {
    this.stopped = true;
    if (this.settleTimer !== undefined) clearTimeout(this.settleTimer);
  }
}
