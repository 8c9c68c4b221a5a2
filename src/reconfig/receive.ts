/**
 * Every captured frame, in the order of wireguard-go's RoutineReceiveIncoming: decode, port,
 * direction, then per kind. R2's own handshake messages teach the session indices
 * (sessions.ts); from outside, martian sources and other destinations are refused first, then
 * an initiation goes through mac1 and the rate limiter to handshake.ts, and transport data
 * naming a live session index through the rate limiter to roam.ts. Never throws: whatever is
 * not passed on is a counted reason.
 */
import { capturedOnLoopback, frameDirection, type LinkType } from '../net/link.js';
import type { LocalAddresses } from '../net/local.js';
import { isOwnUnicast, martianSource } from '../net/martian.js';
import { decodeFrame, type Datagram } from '../net/packet.js';
import { MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT, TRANSPORT_MIN_SIZE, TRANSPORT_RECEIVER_OFFSET } from '../wireguard/constants.js';
import { screenInitiation } from '../wireguard/initiation.js';
import type { Counters } from './counters.js';
import type { Delivery } from './deliver.js';
import { endpointKeyOf, endpointKeyOfParts, formatEndpoint } from './endpoint.js';
import type { Expiry } from './expiry.js';
import type { Handshake } from './handshake.js';
import type { Peers } from './peers.js';
import type { Gate, RateLimit } from './ratelimit.js';
import type { Roam } from './roam.js';
import type { Sessions } from './sessions.js';
import type { Screened, Sniffer } from './sniffer.js';

export interface ReceiveDeps {
  readonly peers: Peers;
  readonly counters: Counters;
  readonly local: LocalAddresses;
  readonly sniffer: Sniffer;
  readonly sessions: Sessions;
  readonly rateLimit: RateLimit;
  readonly handshake: Handshake;
  readonly roam: Roam;
  readonly delivery: Delivery | undefined;
  /** endpoints whose conntrack entry is gone: their own peer's data from there is let in */
  readonly expiry?: Pick<Expiry, 'isLifted'>;
  /** packets are handed to WireGuard (else data is only counted) */
  readonly injecting: boolean;
  readonly dryRun: boolean;
}

export class Receive {
  private readonly initiations: Gate;
  private readonly data: Gate;

  constructor(private readonly deps: ReceiveDeps) {
    const { rateLimit, handshake, roam } = deps;
    this.initiations = { admission: rateLimit.initiations, work: (held) => handshake.onInitiation(held), event: 'initiation.ignored' };
    this.data = { admission: rateLimit.data, work: (held) => roam.handOverData(held), event: 'data.ignored' };
  }

  onFrame(link: LinkType, frame: Buffer, timestampMs: number, screened: Screened): void {
    const { peers, counters, local } = this.deps;
    const port = peers.listenPort;
    const responder = peers.responder;
    if (port === undefined || responder === undefined) return;
    // Our own re-sent packets, seen again on lo: handing them over again would loop.
    if (capturedOnLoopback(link, frame)) return counters.ignore('loopback', {}, 'packet.ignored');
    const decoded = decodeFrame(link, frame);
    if (!decoded.ok) return counters.ignore(decoded.reason);
    const datagram = decoded.value;
    if (datagram.protocol !== 'udp' || (datagram.dstPort !== port && datagram.srcPort !== port)) {
      return counters.ignore('wrong-port', { src: datagram.src });
    }
    const type = datagram.payload[0];
    if (this.sentByUs(link, frame, datagram)) {
      // R2's own handshake message leaving the listen port: it names one of R2's session indices.
      if (datagram.srcPort !== port || (type !== MESSAGE_INITIATION && type !== MESSAGE_RESPONSE)) {
        return counters.ignore('bad-type', {}, 'handshake.ignored');
      }
      if (!this.deps.sessions.learnSent(datagram)) counters.ignore('unknown-receiver', {}, 'handshake.ignored');
      return;
    }
    // From outside. Before anything else: a source that could never arrive from outside, and a
    // destination that is not R2 itself on the listen port, are refused (martian.ts).
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    const martian = martianSource(datagram.family, datagram.src, local);
    if (martian !== undefined) return counters.ignore(martian, { src }, 'packet.ignored');
    if (datagram.dstPort !== port) return counters.ignore('wrong-port', { src }, 'packet.ignored');
    if (!isOwnUnicast(datagram.family, datagram.dst, local)) return counters.ignore('not-for-us', { src, dst: datagram.dst }, 'packet.ignored');
    if (type === MESSAGE_INITIATION) {
      // Where the capture's screen checked mac1 in place (screen.ts), it is not checked again.
      const checked = screened === 'mac1-ok' ? ({ ok: true } as const) : screenInitiation(responder, datagram.payload);
      if (!checked.ok) return counters.ignore(checked.reason, { src }, 'initiation.ignored');
      return this.deps.rateLimit.admit(this.initiations, { datagram, capturedAt: timestampMs });
    }
    if (type === MESSAGE_TRANSPORT) return this.onData(datagram, timestampMs);
    return counters.ignore('bad-type', { src }, 'packet.ignored');
  }

  /**
   * Did R2 itself send this frame? Learning R2's session indices from a forged "sent" message
   * would let a stranger evict a peer's live indices or plant their own, so only what R2 really
   * sent counts: a cooked frame says its direction (PACKET_OUTGOING); for other link types the
   * capture filter passes handshake messages from the listen port only `outbound`, and a frame
   * from one of R2's own addresses to somewhere else is R2's. A packet from outside claiming
   * one of R2's addresses is a martian either way.
   */
  private sentByUs(link: LinkType, frame: Buffer, datagram: Datagram): boolean {
    const direction = frameDirection(link, frame);
    if (direction === 'incoming') return false;
    const fromUs = this.deps.local.isOwn(datagram.src);
    if (direction === 'outgoing') return fromUs;
    return fromUs && !this.deps.local.isOwn(datagram.dst);
  }

  /** Transport data to the listen port from an address that is not (yet) its peer's endpoint. */
  private onData(datagram: Datagram, capturedAt: number): void {
    const { counters } = this.deps;
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    if (datagram.payload.length < TRANSPORT_MIN_SIZE) return counters.ignore('bad-size', { src }, 'data.ignored');
    const index = datagram.payload.readUInt32LE(TRANSPORT_RECEIVER_OFFSET);
    const peerKey = this.deps.sessions.lookup(index);
    if (peerKey === undefined) return counters.ignore('unknown-index', { src, index }, 'data.ignored');
    const peer = this.deps.peers.get(peerKey);
    if (peer === undefined) return counters.ignore('unknown-index', { src, index }, 'data.ignored');
    // The filter leaves a peer's own endpoint out; one that slipped in while the filter was
    // being replaced. Another peer's endpoint is never handed over for this one (its flow is
    // that peer's, and settling would remove it). The peer's own endpoint whose conntrack entry
    // is gone is let in (expiry.ts): the firewall dropped this packet.
    const key = endpointKeyOfParts(datagram.src, datagram.srcPort);
    if (this.deps.sniffer.isEndpoint(key) && (endpointKeyOf(peer.endpoint) !== key || this.deps.expiry?.isLifted(key) !== true)) {
      return counters.ignore('from-endpoint', { src, peer: peerKey }, 'data.ignored');
    }
    if (!this.deps.injecting || this.deps.delivery?.canInject(datagram.family) !== true) {
      // A data packet never moves an endpoint by our hand: without injection it is only counted.
      return counters.ignore(this.deps.dryRun ? 'dry-run' : 'not-injected', { src, peer: peerKey }, 'data.ignored');
    }
    const refused = this.deps.roam.dataRefusal(datagram.src, peer, src);
    if (refused !== undefined) return counters.ignore(refused, { src, peer: peerKey }, 'data.ignored');
    this.deps.rateLimit.admit(this.data, { datagram, capturedAt, peer: peerKey });
  }
}
