/**
 * Conntrack expiry. Data from a peer's current endpoint is left out of the capture: WireGuard
 * gets it. That holds only while R2's conntrack has an entry for the flow, which is what lets
 * it past the firewall. When the kernel forgets the entry (timeout, a flush on a WAN change, a
 * firewall reload, table pressure) the firewall drops the peer's data and nothing sees it: the
 * tunnel is dead until R2 itself sends.
 *
 * So the kernel's destroy events (net/conntrack-events.ts) are followed: while no entry is
 * known for a believed endpoint, its exclusion is lifted. Its next data packet is then
 * captured, vouched for as any other (a live session index of that very peer, rate-limited) and
 * handed to WireGuard with a pinhole (roam.ts: reentered), which leaves an entry for the flow;
 * then the exclusion is restored. When events were lost (the socket overflowed) any entry may
 * be gone: every endpoint's exclusion is lifted until its own next packet.
 *
 * A flow destroyed while it was not (yet) a believed endpoint is remembered for
 * RECENT_DESTROY_MS: a peer whose move is still being confirmed when the entry goes (a flush
 * on a WAN change while peers re-handshake) has its new endpoint lifted as it is adopted, or
 * its data would be left out of the capture and dropped by the firewall until it re-handshakes.
 *
 * A lifted exclusion lets the capture see more, nothing else: what is handed over is still
 * only data naming one of R2's live sessions of the endpoint's own peer, and WireGuard checks
 * its replay counter. Both sets are bounded: only believed endpoints are ever lifted, and at
 * most MAX_RECENT destroyed flows are remembered, the oldest forgotten first.
 */
import type { ConntrackFlow } from '../net/conntrack-events.js';
import type { Counters } from './counters.js';
import { endpointKeyOfParts } from './endpoint.js';

/** Endpoints lifted at once at most; past that (stale keys dropped first) nothing more is lifted. */
export const MAX_LIFTED = 4096;
/**
 * How long a destroyed flow that was no believed endpoint is remembered: past a confirmation's
 * whole back-off (about 0.5 s) and its `wg set` fallback.
 */
export const RECENT_DESTROY_MS = 2000;
/** Destroyed flows remembered at most (a flush of a large table), the oldest forgotten first. */
export const MAX_RECENT = 1024;

export interface ExpiryDeps {
  readonly counters: Counters;
  /** the believed endpoints, as endpointKeyOfParts keys (the sniffer's, as of its last filter) */
  readonly endpoints: () => ReadonlySet<string>;
  /** the capture filter should follow (the sniffer coalesces this to once per loop turn) */
  readonly changed: () => void;
  /** ms, monotonic (performance.now by default) */
  readonly now?: () => number;
}

export class Expiry {
  /** believed endpoints whose conntrack entry is gone, as far as we know */
  private readonly lifted = new Set<string>();
  /** flows of the listen port destroyed while they were no believed endpoint, with when (Map order is age) */
  private readonly recent = new Map<string, number>();
  /** exclusions lifted, restored, and event batches lost (for the counters record) */
  liftedCount = 0;
  restoredCount = 0;
  lostCount = 0;

  constructor(private readonly deps: ExpiryDeps) {}

  /** A destroyed flow: if it is a believed endpoint's flow with the listen port, lift its exclusion. */
  destroyed(flow: ConntrackFlow, listenPort: number | undefined): void {
    if (listenPort === undefined) return;
    // Either side may have started it: the peer (endpoint → R2) or R2 (R2 → endpoint).
    if (flow.dstPort === listenPort) this.lift(endpointKeyOfParts(flow.src, flow.srcPort));
    if (flow.srcPort === listenPort) this.lift(endpointKeyOfParts(flow.dst, flow.dstPort));
  }

  /** Events were lost: any entry may be gone, so every endpoint is lifted. */
  lost(): void {
    this.lostCount++;
    for (const key of this.deps.endpoints()) this.lift(key);
  }

  isLifted(key: string): boolean {
    return this.lifted.has(key);
  }

  /**
   * Of the endpoints a new capture filter is built for, those to leave in it; endpoints no
   * longer believed are forgotten (a peer that moved has a new flow, which WireGuard's answer made).
   */
  liftedAmong(endpoints: ReadonlySet<string>): ReadonlySet<string> {
    for (const key of this.lifted) if (!endpoints.has(key)) this.lifted.delete(key);
    // An endpoint adopted since its flow was destroyed: no entry lets its data in.
    const now = this.now();
    for (const [key, at] of this.recent) {
      if (now - at > RECENT_DESTROY_MS) this.recent.delete(key);
      else if (endpoints.has(key) && this.lifted.size < MAX_LIFTED) {
        this.recent.delete(key);
        this.lifted.add(key);
        this.liftedCount++;
      }
    }
    return this.lifted;
  }

  /** An entry exists again for this endpoint's flow: its data goes back out of the capture. */
  reestablished(key: string): void {
    if (!this.lifted.delete(key)) return;
    this.restoredCount++;
    this.deps.changed();
  }

  private now(): number {
    return (this.deps.now ?? (() => performance.now()))();
  }

  private lift(key: string): void {
    if (this.lifted.has(key)) return;
    const endpoints = this.deps.endpoints();
    if (!endpoints.has(key)) return this.remember(key);
    if (this.lifted.size >= MAX_LIFTED) {
      for (const old of this.lifted) if (!endpoints.has(old)) this.lifted.delete(old);
      if (this.lifted.size >= MAX_LIFTED) return this.deps.counters.ignore('expiry-full', {}, 'conntrack.ignored');
    }
    this.lifted.add(key);
    this.liftedCount++;
    this.deps.changed();
  }

  /** A destroyed flow that is no believed endpoint (yet): kept a while, in case it becomes one. */
  private remember(key: string): void {
    this.recent.delete(key);
    this.recent.set(key, this.now());
    for (const old of this.recent.keys()) {
      if (this.recent.size <= MAX_RECENT) break;
      this.recent.delete(old);
    }
  }

  record(): Record<string, number> {
    return { expiryLifted: this.liftedCount, expiryRestored: this.restoredCount, conntrackEventsLost: this.lostCount };
  }
}
