/**
 * A handshake initiation, once admitted: the Noise IK responder steps (initiation.ts), the
 * unknown key that may be a peer just added, the replay check against the peer's newest
 * timestamp (replay.ts), and the decision: hand it to WireGuard and let roam.ts confirm, or
 * queue the `wg set` fallback.
 */
import type { Logger } from '../common/log.js';
import type { Datagram } from '../net/packet.js';
import { openInitiation, type VerifiedInitiation } from '../wireguard/initiation.js';
import { timestampToDate } from '../wireguard/tai64n.js';
import { preciseWallClock } from './change.js';
import type { Counters } from './counters.js';
import type { Delivery } from './deliver.js';
import { formatEndpoint, sameEndpoint } from './endpoint.js';
import type { Peer, Peers } from './peers.js';
import type { HeldPacket } from './ratelimit.js';
import type { Watermarks } from './replay.js';
import type { Roam } from './roam.js';
import type { Sessions } from './sessions.js';

export interface HandshakeDeps {
  readonly logger: Logger;
  readonly iface: string;
  readonly peers: Peers;
  readonly counters: Counters;
  readonly sessions: Sessions;
  readonly roam: Roam;
  readonly watermarks: Watermarks;
  readonly delivery: Delivery | undefined;
  /** packets are handed to WireGuard (else every verified initiation goes to `wg set`) */
  readonly injecting: boolean;
  readonly now: () => number;
  /** how often a genuine initiation from an unknown key may cause a re-read */
  readonly unknownPeerRefreshMs: number;
  /** re-reads the interface (the listener's refresh) */
  readonly reread: (why: string) => Promise<void>;
}

export class Handshake {
  private lastUnknownRefresh = Number.NEGATIVE_INFINITY;
  private stopped = false;

  constructor(private readonly deps: HandshakeDeps) {}

  /** Admitted: the Noise steps. */
  onInitiation({ datagram, capturedAt }: HeldPacket): void {
    const { peers, counters } = this.deps;
    const responder = peers.responder;
    if (responder === undefined || this.stopped) return;
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    const verified = openInitiation(responder, datagram.payload);
    if (!verified.ok) return counters.ignore(verified.reason, { src }, 'initiation.ignored');
    const peerKey = verified.value.staticKey.toString('base64');
    const peer = peers.get(peerKey);
    if (peer === undefined) {
      this.deps.roam.enqueue(peers.worker(peerKey), () => this.onUnknownKey(datagram, verified.value, capturedAt));
      return;
    }
    this.onGenuine(peer, datagram, verified.value, capturedAt);
  }

  stop(): void {
    this.stopped = true;
  }

  /** A genuine initiation from a key we do not know: maybe the peer was just added. */
  private async onUnknownKey(datagram: Datagram, initiation: VerifiedInitiation, capturedAt: number): Promise<void> {
    const peerKey = initiation.staticKey.toString('base64');
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    // Anyone who knows our public key can make one, hence the rate limit on re-reading.
    if (this.deps.now() - this.lastUnknownRefresh >= this.deps.unknownPeerRefreshMs) {
      this.lastUnknownRefresh = this.deps.now();
      await this.deps.reread('unknown-peer');
    }
    const peer = this.deps.peers.get(peerKey);
    if (peer === undefined || this.stopped) return this.deps.counters.ignore('unknown-peer', { src, peer: peerKey }, 'initiation.ignored');
    this.onGenuine(peer, datagram, initiation, capturedAt);
  }

  /** Synchronous from the capture: checks freshness, hands the packet on, raises the watermark. */
  private onGenuine(peer: Peer, datagram: Datagram, initiation: VerifiedInitiation, capturedAt: number): void {
    const { counters, roam, watermarks: marks } = this.deps;
    const peerKey = peer.publicKey;
    const config = this.deps.peers.configOf(peer);
    if (config === undefined) return;
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    if (!marks.isFresh(peerKey, initiation.timestamp)) return counters.ignore('replay', { src, peer: peerKey }, 'initiation.ignored');
    counters.authentic++;
    counters.countFor(peerKey, 'authentic');
    this.deps.sessions.rememberInitiator(initiation.sender, peerKey);
    const sent = timestampToDate(initiation.timestamp);
    let injected = false;
    if (this.deps.injecting && this.deps.delivery?.canInject(datagram.family) === true) {
      injected = roam.inject(datagram, 'initiation');
    }
    // Raised in memory now, on disk shortly (replay.ts): `wg set` waits for the disk.
    marks.advance(peerKey, initiation.timestamp);
    this.deps.logger.info(
      { event: 'initiation.accepted', interface: this.deps.iface, peer: peerKey, src, injected, timestamp: sent.ok ? sent.value.toISOString() : undefined },
      `authentic initiation from ${src}`,
    );
    if (injected) {
      if (!sameEndpoint(config.endpoint, src)) roam.handedOverFor(peer, { src, kind: 'initiation', capturedAt, injectedAt: preciseWallClock(), datagram });
      else counters.accepted++;
      return;
    }
    roam.enqueue(peer, () => roam.applyWithWg(peerKey, config, src, capturedAt));
  }
}
