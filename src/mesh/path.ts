/**
 * The path to one other peer, as the mesh client sees it: a pure state machine driven by the
 * clock, by what `wg show` says about the peer, and by what the registry says. It decides; the
 * daemon does what it decides (wireguard.ts) and reads WireGuard again.
 *
 *   probing ── handshake completes ──► direct ── nothing received for deadAfter ──► quiet
 *      │                          (the peer is removed; the hub carries it again) ── 2 × deadAfter ──► probing
 *      └── none within the probe window ──► backed off (30 s, doubling to 10 min) ──► probing
 *
 * A path can break one way only. The side that stops hearing falls back; the other still hears
 * its keepalives and would go on sending into the broken direction until the session expires
 * (minutes). So the side that falls back removes the peer and stays silent for twice deadAfter:
 * the other side then hears nothing and falls back too. Both probe afresh, with a new handshake,
 * which only completes when both directions work.
 *
 * A probe is the peer with its endpoint from the registry, a persistent keepalive and no allowed
 * IPs: handshakes need none, so nothing is ever routed to a path that does not work. Only a
 * completed handshake (or data from the peer under a live session) promotes the path; then the
 * peer gets its specific prefixes, which win over the hub's aggregates (longest prefix).
 */
import type { Prefix } from './prefix.js';

/** WireGuard's timers (whitepaper §6.1, wireguard-go device/constants.go). */
export const REKEY_TIMEOUT_MS = 5_000;
export const REJECT_AFTER_TIME_MS = 180_000;
/** Two handshake attempts of each side, plus the other side's next look at the registry. */
export const PROBE_WINDOW_MS = 2 * REKEY_TIMEOUT_MS + 2_000;
export const BACKOFF_FIRST_MS = 30_000;
export const BACKOFF_MAX_MS = 600_000;

export type PathKind = 'probing' | 'direct' | 'quiet' | 'backed-off';

/** What `wg show IFACE dump` says about the peer now; undefined when it is not configured. */
export interface PeerObservation {
  readonly endpoint: string | undefined;
  /** epoch ms; 0 when there has been none */
  readonly latestHandshakeMs: number;
  readonly rxBytes: number;
  readonly txBytes: number;
}

/** What the registry says, after the scope check: where to reach it, what to route to it. */
export interface Wanted {
  readonly endpoint: string;
  readonly allowed: readonly Prefix[];
}

export type PathAction =
  /** configure the peer (adding it if needed): endpoint, keepalive, no allowed IPs */
  | { readonly do: 'probe'; readonly endpoint: string }
  /** set its endpoint only */
  | { readonly do: 'follow'; readonly endpoint: string }
  /** give it these allowed IPs (replacing what it has) */
  | { readonly do: 'promote'; readonly allowed: readonly string[] }
  /** take every allowed IP away: the hub's aggregates carry the traffic again */
  | { readonly do: 'demote' }
  /** remove the peer */
  | { readonly do: 'remove' };

export interface PathTimers {
  /** no authenticated packet from the peer for this long: the direct path is dead */
  readonly deadAfterMs: number;
  readonly probeWindowMs: number;
  readonly backoffFirstMs: number;
  readonly backoffMaxMs: number;
}

export interface PathView {
  readonly kind: PathKind;
  readonly since: number;
  readonly why: string;
  readonly endpoint: string;
  /** what the peer routes now (direct only) */
  readonly allowed: readonly string[];
  /** failed probes in a row */
  readonly failures: number;
  /** backed off or quiet: when the next probe starts */
  readonly until: number | undefined;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

export class PeerPath {
  private kind: PathKind = 'probing';
  private since: number;
  private why = 'new in the registry';
  private endpoint: string;
  private allowed: readonly string[] = [];
  private failures = 0;
  private until: number | undefined;
  /** probing: the handshake time and rx count when the probe began */
  private handshakeAtStart = 0;
  private rxAtStart = 0;
  /** direct: the last rx count and when it last moved */
  private lastRx = 0;
  private lastRxAt = 0;
  /** the endpoint of the probe that failed last (backed off) */
  private failedEndpoint: string | undefined;
  /** what the registry said last */
  private wanted: Wanted;

  constructor(
    now: number,
    wanted: Wanted,
    private readonly timers: PathTimers,
  ) {
    this.since = now;
    this.endpoint = wanted.endpoint;
    this.wanted = wanted;
  }

  /** The first step: begin a probe. `seen` is the peer as WireGuard has it, if it has it. */
  begin(seen: PeerObservation | undefined): PathAction[] {
    this.startProbe(this.since, seen, this.why);
    return [{ do: 'probe', endpoint: this.endpoint }];
  }

  view(): PathView {
    return { kind: this.kind, since: this.since, why: this.why, endpoint: this.endpoint, allowed: this.allowed, failures: this.failures, until: this.until };
  }

  private startProbe(now: number, seen: PeerObservation | undefined, why: string): void {
    this.kind = 'probing';
    this.since = now;
    this.why = why;
    this.allowed = [];
    this.until = undefined;
    this.handshakeAtStart = seen?.latestHandshakeMs ?? 0;
    this.rxAtStart = seen?.rxBytes ?? 0;
  }

  /**
   * One look: `seen` is the peer in WireGuard now (undefined: not configured), `wanted` what the
   * registry says now (undefined: the registry could not be asked, nothing new from it).
   */
  step(now: number, seen: PeerObservation | undefined, fresh: Wanted | undefined): PathAction[] {
    const wanted = fresh;
    if (fresh !== undefined) this.wanted = fresh;
    const target = fresh?.endpoint ?? this.endpoint;
    switch (this.kind) {
      case 'quiet': {
        if (wanted !== undefined && wanted.endpoint !== this.endpoint) {
          // a remap: that side fell back too (nothing it sent reaches the old mapping)
          this.endpoint = wanted.endpoint;
          this.startProbe(now, undefined, `the registry shows a new endpoint (${wanted.endpoint})`);
          return [{ do: 'probe', endpoint: this.endpoint }];
        }
        if (this.until !== undefined && now < this.until) return [];
        this.endpoint = target;
        this.startProbe(now, undefined, 'probing again after the direct path died');
        return [{ do: 'probe', endpoint: this.endpoint }];
      }
      case 'backed-off': {
        if (wanted !== undefined && wanted.endpoint !== this.failedEndpoint) {
          this.endpoint = wanted.endpoint;
          this.startProbe(now, undefined, `the registry shows a new endpoint (${wanted.endpoint})`);
          return [{ do: 'probe', endpoint: this.endpoint }];
        }
        if (this.until !== undefined && now < this.until) return [];
        this.endpoint = target;
        this.startProbe(now, undefined, `probe ${this.failures + 1} after backing off`);
        return [{ do: 'probe', endpoint: this.endpoint }];
      }
      case 'probing': {
        if (seen === undefined) {
          this.endpoint = target;
          this.startProbe(now, undefined, 'the peer was gone from WireGuard; added again');
          return [{ do: 'probe', endpoint: this.endpoint }];
        }
        const handshook = seen.latestHandshakeMs > this.handshakeAtStart;
        const heard = seen.rxBytes > this.rxAtStart && seen.latestHandshakeMs > 0 && now - seen.latestHandshakeMs < REJECT_AFTER_TIME_MS;
        if (handshook || heard) {
          this.kind = 'direct';
          this.why = handshook ? `handshake completed after ${seconds(now - this.since)}` : `the peer's packets arrive directly again after ${seconds(now - this.since)}`;
          this.since = now;
          this.failures = 0;
          this.failedEndpoint = undefined;
          this.lastRx = seen.rxBytes;
          this.lastRxAt = now;
          this.allowed = this.wanted.allowed.map((prefix) => prefix.text);
          return this.allowed.length === 0 ? [] : [{ do: 'promote', allowed: this.allowed }];
        }
        if (target !== this.endpoint) {
          // a remap: follow it, and give the new endpoint a whole window
          this.endpoint = target;
          this.since = now;
          this.why = `following the peer to ${target}`;
          return [{ do: 'follow', endpoint: target }];
        }
        if (now - this.since >= this.timers.probeWindowMs) {
          this.failures++;
          const wait = Math.min(this.timers.backoffFirstMs * 2 ** (this.failures - 1), this.timers.backoffMaxMs);
          this.kind = 'backed-off';
          this.why = `no handshake within ${seconds(this.timers.probeWindowMs)} (a NAT that maps per destination, or a firewall, on one side?); probe ${this.failures} failed, next in ${seconds(wait)}`;
          this.since = now;
          this.until = now + wait;
          this.failedEndpoint = this.endpoint;
          this.allowed = [];
          return [{ do: 'remove' }];
        }
        return [];
      }
      case 'direct': {
        if (seen === undefined) {
          this.endpoint = target;
          this.startProbe(now, undefined, 'the peer was gone from WireGuard; added again');
          return [{ do: 'probe', endpoint: this.endpoint }];
        }
        if (seen.rxBytes !== this.lastRx) {
          this.lastRx = seen.rxBytes;
          this.lastRxAt = now;
        }
        const silent = now - this.lastRxAt;
        const stale = seen.latestHandshakeMs > 0 && now - seen.latestHandshakeMs > REJECT_AFTER_TIME_MS + REKEY_TIMEOUT_MS;
        if (silent > this.timers.deadAfterMs || stale) {
          const why = stale ? 'no handshake for longer than a session lives' : `nothing received directly for ${seconds(silent)}`;
          const quietMs = 2 * this.timers.deadAfterMs;
          this.kind = 'quiet';
          this.why = `direct path died (${why}); via the hub, silent for ${seconds(quietMs)} so the peer falls back too, then probing again`;
          this.since = now;
          this.until = now + quietMs;
          this.allowed = [];
          return [{ do: 'demote' }, { do: 'remove' }];
        }
        const allowed = this.wanted.allowed.map((prefix) => prefix.text);
        if (allowed.join(',') !== this.allowed.join(',')) {
          this.allowed = allowed;
          return [allowed.length === 0 ? { do: 'demote' } : { do: 'promote', allowed }];
        }
        return [];
      }
    }
  }
}
