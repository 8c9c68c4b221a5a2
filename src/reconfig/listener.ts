/**
 * capture → decode → classify → verify → deliver → confirm → tell, for one WireGuard interface.
 *
 * Three kinds of packet reach user space (see wireguardFilter):
 * * an incoming handshake initiation: verified (mac1, then the Noise IK responder steps) and,
 *   if fresh, handed to WireGuard itself (initiation.ts decides);
 * * R2's own handshake messages leaving the port: they name R2's session indices (sessions.ts);
 * * incoming transport data from an address that is not its peer's endpoint: handed to
 *   WireGuard only if its receiver index names one of R2's live sessions.
 * The synchronous part runs for every captured frame and never throws; everything that waits
 * for `wg` runs in one queue per peer, so calls for the same peer never race.
 */
import { rmSync } from 'node:fs';
import { readOwnFile } from '../common/own-file.js';
import { writeFileAtomic } from '../common/atomic.js';
import type { Logger } from '../common/log.js';
import { ReconfigError, isReconfigError } from '../common/errors.js';
import { CaptureKeeper } from '../common/capture-keeper.js';
import { SCREEN_DROP, SCREEN_PASS, type Capture, type CaptureOptions, type ScreenVerdict } from '../net/capture.js';
import { wireguardFilter, type ExcludedSource } from '../net/filter.js';
import { capturedOnLoopback, frameDirection } from '../net/link.js';
import { LocalAddresses, canonicalAddress } from '../net/local.js';
import { isOwnUnicast, martianSource } from '../net/martian.js';
import { decodeFrame, type Datagram } from '../net/packet.js';
import {
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  REJECT_AFTER_TIME_MS,
  REKEY_TIMEOUT_MS,
  TRANSPORT_MIN_SIZE,
  TRANSPORT_RECEIVER_OFFSET,
} from '../wireguard/constants.js';
import { IndexTable } from '../wireguard/indextable.js';
import { openInitiation, screenInitiation, type VerifiedInitiation } from '../wireguard/initiation.js';
import { parseSecret } from '../wireguard/keys.js';
import { mac1KeyOf } from '../wireguard/mac1.js';
import { createResponder, type Responder } from '../wireguard/responder.js';
import { identifySent, responseReceiver, type PeerMac1Key } from '../wireguard/sent.js';
import { timestampToDate } from '../wireguard/tai64n.js';
import { readEndpoints, readInterface, type InterfaceConfig, type PeerConfig, type WgRunner } from '../wireguard/wg.js';
import { applyEndpointChange } from './apply.js';
import { Admission, DATA_ADMISSION } from './admission.js';
import type { Delivery } from './deliver.js';
import { endpointAddress, formatEndpoint, parseEndpoint, sameEndpoint } from './endpoint.js';
import { screenFrame } from './screen.js';
import type { CaptureStats } from '../net/capture.js';
import type { ReconfigOptions } from './options.js';
import type { Watermarks } from './replay.js';

export type IgnoreReason = string;

export interface ListenerDeps {
  readonly logger: Logger;
  readonly options: ReconfigOptions & { readonly interface: string };
  readonly watermarks: Watermarks;
  readonly openCapture: (options: CaptureOptions) => Capture;
  readonly run?: WgRunner;
  readonly now?: () => number;
  /** bounds the Noise work an unauthenticated sender can cause (admission.ts) */
  readonly admission?: Admission<HeldPacket>;
  /** bounds how many data packets are handed to WireGuard */
  readonly dataAdmission?: Admission<HeldPacket>;
  /** hands packets to WireGuard; without it, verified initiations are applied with `wg set` */
  readonly delivery?: Delivery;
  /** waits between `wg show` reads while confirming an injection (ms, cumulative) */
  readonly confirmDelaysMs?: readonly number[];
  /**
   * Where the live session indices are left on stop and taken over on start (a runtime file:
   * written once per stop, never per handshake), so a restarted or knock-started instance can
   * vouch for data packets of sessions that began before it.
   */
  readonly sessionsFile?: string;
  /** R2's own addresses (read from the interfaces; replaceable for tests) */
  readonly localAddresses?: LocalAddresses;
}

/** The screen checked this initiation's mac1 in place (screen.ts): the full path need not again. */
const SCREEN_MAC1_CHECKED: ScreenVerdict = 2;
/** Heap a waiting packet takes besides its payload (the Datagram record, its strings). */
const HELD_OVERHEAD_BYTES = 512;
const heldSize = (held: HeldPacket): number => held.datagram.payload.length + HELD_OVERHEAD_BYTES;

/** A packet that passed the cheap checks, waiting for its turn (admission.ts). */
export interface HeldPacket {
  readonly datagram: Datagram;
  readonly capturedAt: number;
  /** a data packet: the peer whose session its receiver index names */
  readonly peer?: string;
}

/**
 * The kernel hands captured packets over in blocks at most this many ms late: under a flood
 * one wake-up reads hundreds, and a genuine packet waits at most this long.
 */
export const CAPTURE_BUFFER_TIMEOUT_MS = 10;
/** Waiting packets are looked at no more often than this. */
const ADMISSION_TICK_MS = 10;

/** Who moved the endpoint: WireGuard on a packet we handed it, our `wg set`, or WireGuard on its own. */
export type ChangeHow = 'injected' | 'set' | 'roamed';

export interface EndpointChange {
  readonly peer: string;
  readonly from: string | undefined;
  readonly to: string;
  readonly how: ChangeHow;
  /** wall-clock ms when the change was confirmed */
  readonly at: number;
}

/** What the listener knows of one peer, for the status file. */
export interface PeerView {
  readonly publicKey: string;
  readonly endpoint: string | undefined;
}

interface Keys {
  readonly config: InterfaceConfig;
  readonly responder: Responder;
  /** each peer's mac1 key: names the peer of a handshake message R2 sends */
  readonly peerMacs: ReadonlyMap<string, PeerMac1Key>;
}

interface Injected {
  readonly src: string;
  readonly kind: 'initiation' | 'data';
  readonly capturedAt: number;
  readonly injectedAt: number;
  readonly datagram: Datagram;
}

/**
 * WireGuard takes an injected packet up within a millisecond or two; `wg show` is read after
 * each of these waits until the endpoint is the new one (about 0.5 s in all).
 */
export const CONFIRM_DELAYS_MS = [1, 2, 4, 8, 16, 32, 64, 128, 256] as const;
/**
 * How long an initiator's index is kept to match R2's response to it: R2 answers within
 * milliseconds; two REKEY_TIMEOUTs outlast the initiator's own retry with a new index.
 */
const INITIATOR_HINT_MS = 2 * REKEY_TIMEOUT_MS;
/**
 * Bytes kept of each captured packet: a whole data packet of a 1500-byte path with every header
 * (it is re-sent as it came), and a handshake message with room to spare. In immediate mode
 * libpcap's kernel ring has one fixed-size slot per packet, sized by this: at 64 KiB a 1 MiB
 * ring holds 16 packets, and a busy moment drops R2's own handshake messages; at 2 KiB it holds
 * about 490. A larger data packet (jumbo frames) is cut short, so it is only counted.
 */
export const SNAP_LENGTH = 2048;
const MAX_INITIATOR_HINTS = 1024;
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
const DATA_CONFIRM_COOLDOWN_MS = 1000;
/** When reading the endpoints to settle hand-overs fails, the next try comes after this. */
const SETTLE_RETRY_MS = 1000;
/** Sources remembered per peer while its confirmation runs (the newest kept). */
const MAX_HANDED_OVER_SOURCES = 16;

/** An address as the decoders write it, and a port, as one key (wg's text goes through canonicalAddress first). */
const endpointKeyOfParts = (address: string, port: number): string => `${address}|${port}`;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class Listener {
  /** reason → how many packets were ignored for it */
  readonly ignored = new Map<IgnoreReason, number>();
  /** peer → reason (authentic, updated, or why ignored) → count */
  private readonly byPeer = new Map<string, Map<string, number>>();
  /** verified and fresh: the initiation.accepted log lines */
  authentic = 0;
  /** authentic and carried out: handed to WireGuard and taken up, or the endpoint set (or already current) */
  accepted = 0;
  updated = 0;
  injected = 0;
  sessionsLearned = 0;

  private keys: Keys | undefined;
  private readonly keeper: CaptureKeeper;
  private capturePort = 0;
  private captureFilter = '';
  private filterUpdate: NodeJS.Immediate | undefined;
  private readonly peerQueues = new Map<string, Promise<void>>();
  private readonly work = new Set<Promise<void>>();
  /** per peer with a confirmation running: the packets handed over meanwhile, by source */
  private readonly handedOver = new Map<string, Map<string, Injected>>();
  private readonly restartWatch = new Set<string>();
  private readonly indices = new IndexTable();
  private readonly initiators = new Map<number, { peer: string; at: number }>();
  private lastUnknownRefresh = Number.NEGATIVE_INFINITY;
  private interfaceMissing = false;
  private stopped = false;
  private changeListeners: ((change: EndpointChange) => void)[] = [];
  private readonly admission: Admission<HeldPacket>;
  private readonly dataAdmission: Admission<HeldPacket>;
  private readonly drainTimers = new Map<Admission<HeldPacket>, NodeJS.Timeout>();
  private settleTimer: NodeJS.Timeout | undefined;
  /** every peer's endpoint as last known, as endpointKeyOfParts keys */
  private endpointKeys = new Set<string>();
  private readonly debug: boolean;
  private readonly local: LocalAddresses;
  /**
   * Sources whose data packet was handed over and not taken up: not handed over again for a
   * while (a stranger replaying a live index costs one injection per address, not a stream).
   */
  private readonly spent = new Map<string, number>();
  /** per peer: when a confirmation started by data alone may start again */
  private readonly dataConfirmAfter = new Map<string, number>();

  constructor(private readonly deps: ListenerDeps) {
    this.admission = deps.admission ?? new Admission<HeldPacket>({}, undefined, heldSize);
    this.dataAdmission = deps.dataAdmission ?? new Admission<HeldPacket>(DATA_ADMISSION, undefined, heldSize);
    this.local = deps.localAddresses ?? new LocalAddresses();
    this.debug = deps.logger.isLevelEnabled('debug');
    this.keeper = new CaptureKeeper({
      logger: deps.logger,
      device: deps.options.device,
      openCapture: deps.openCapture,
      bufferTimeoutMs: CAPTURE_BUFFER_TIMEOUT_MS,
      screen: (frame, length) => this.screen(frame, length),
      snapLength: SNAP_LENGTH,
      onFrame: (frame, timestampMs, verdict) => this.onFrame(frame, timestampMs, verdict),
      onOpen: (capture, reopened) => {
        if (reopened === 'filter') {
          deps.logger.debug({ event: 'filter.updated', interface: this.iface, excluded: this.excludedCount() }, 'capture filter updated');
          return;
        }
        deps.logger.info(
          {
            event: 'listening',
            interface: this.iface,
            device: capture.device,
            link: capture.link,
            port: this.capturePort,
            peers: this.keys?.config.peers.size ?? 0,
            inject: this.injecting,
            pinhole: deps.delivery?.pinholing ?? false,
            dryRun: deps.options.dryRun,
            once: deps.options.once,
            ...(reopened ? { reopened } : {}),
          },
          `watching ${capture.device} for WireGuard packets to port ${this.capturePort}`,
        );
      },
    });
  }

  private get iface(): string {
    return this.deps.options.interface;
  }

  private get injecting(): boolean {
    return this.deps.delivery !== undefined && this.deps.options.inject && !this.deps.options.dryRun;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Reads the interface and opens the capture; startup errors are thrown to the caller. */
  async start(): Promise<void> {
    this.keys = await this.loadKeys();
    this.takeOverSessions();
    if (this.injecting) await this.deps.delivery?.prepare(this.keys.config.listenPort);
    this.captureFilter = this.filterFor(this.keys.config);
    this.capturePort = this.keys.config.listenPort;
    this.keeper.open(this.captureFilter);
  }

  onChange(listener: (change: EndpointChange) => void): void {
    this.changeListeners.push(listener);
  }

  private async loadKeys(): Promise<Keys> {
    const config = await readInterface(this.iface, this.deps.run);
    if (config.privateKey === undefined) {
      throw new ReconfigError(
        'E_NO_PRIVATE_KEY',
        `Interface ${this.iface} has no private key, so no initiation can be verified. Set one: wg set ${this.iface} private-key FILE.`,
      );
    }
    const secret = parseSecret(config.privateKey);
    if (!secret.ok) throw new ReconfigError('E_WG', `wg printed a private key for ${this.iface} that is not a valid key.`);
    for (const peer of config.peers.values()) if (peer.endpoint !== undefined) this.notePeerEndpoint(peer.endpoint);
    // Keep the configuration without its private key; the Secret inside the responder is the one copy.
    return { config: { ...config, privateKey: undefined }, responder: createResponder(secret.value), peerMacs: this.peerMacsFor(config) };
  }

  private peerMacsFor(config: InterfaceConfig): Map<string, PeerMac1Key> {
    const previous = this.keys?.peerMacs;
    const macs = new Map<string, PeerMac1Key>();
    for (const peer of config.peers.keys()) {
      const known = previous?.get(peer);
      macs.set(peer, known ?? { peer, mac1Key: mac1KeyOf(Buffer.from(peer, 'base64')) });
    }
    return macs;
  }

  /** The capture filter for `config`; also notes every peer's endpoint (endpointKeys). */
  private filterFor(config: InterfaceConfig): string {
    const exclude: ExcludedSource[] = [];
    const keys = new Set<string>();
    for (const peer of config.peers.values()) {
      const endpoint = peer.endpoint === undefined ? undefined : parseEndpoint(peer.endpoint);
      if (endpoint === undefined) continue;
      exclude.push(endpoint);
      keys.add(endpointKeyOfParts(canonicalAddress(endpoint.address) ?? endpoint.address, endpoint.port));
    }
    this.endpointKeys = keys;
    return wireguardFilter(config.listenPort, exclude);
  }

  private excludedCount(): number {
    return [...(this.keys?.config.peers.values() ?? [])].filter((peer) => peer.endpoint !== undefined).length;
  }

  /** Rebuilds the capture filter from the current endpoints, once per turn of the event loop. */
  private scheduleFilterUpdate(): void {
    if (this.filterUpdate !== undefined || this.stopped) return;
    this.filterUpdate = setImmediate(() => {
      this.filterUpdate = undefined;
      this.updateFilter();
    });
  }

  private updateFilter(): void {
    const keys = this.keys;
    if (keys === undefined || this.stopped) return;
    const filter = this.filterFor(keys.config);
    if (filter === this.captureFilter) return;
    const portChanged = keys.config.listenPort !== this.capturePort;
    this.captureFilter = filter;
    this.capturePort = keys.config.listenPort;
    if (portChanged) this.keeper.reopen(filter);
    else this.keeper.replace(filter);
  }

  private ignore(reason: IgnoreReason, details: Record<string, unknown> = {}, event = 'packet.ignored', count = 1): void {
    const total = (this.ignored.get(reason) ?? 0) + count;
    this.ignored.set(reason, total);
    // only known peers: anyone can make up keys, and each would cost memory here
    if (typeof details.peer === 'string' && this.keys?.config.peers.has(details.peer)) this.countFor(details.peer, reason, count);
    if (this.debug) this.deps.logger.debug({ event, reason, count: total, ...details }, `ignored: ${reason}`);
  }

  private notePeerEndpoint(endpoint: string): void {
    const address = endpointAddress(endpoint);
    this.admission.notePeerEndpoint(address);
    this.dataAdmission.notePeerEndpoint(address);
  }

  /**
   * The capture's first look, in its reused buffer, before any copy (screen.ts). Its verdict
   * travels with the frame to onFrame: MAC1_CHECKED only for an initiation whose mac1 it did
   * check, PASS for what it left to the full path.
   */
  private screen(frame: Buffer, length: number): ScreenVerdict {
    const keys = this.keys;
    const link = this.keeper.link;
    if (keys === undefined || link === undefined) return SCREEN_DROP;
    const screened = screenFrame(link, frame, length, keys.config.listenPort, keys.responder);
    if (screened === 'mac1-ok') return SCREEN_MAC1_CHECKED;
    if (screened === 'unchecked') return SCREEN_PASS;
    this.ignore(screened, {}, screened === 'wrong-port' ? 'packet.ignored' : 'initiation.ignored');
    return SCREEN_DROP;
  }

  /**
   * Offers a packet to `admission`: `work` runs now, or later from a drain, or never (counted
   * as rate-limited with `event`). One `work` per admission: what it needs travels in `held`.
   */
  private admit(admission: Admission<HeldPacket>, held: HeldPacket, work: (held: HeldPacket) => void, event: string): void {
    const dropped = admission.dropped;
    if (admission.offer(held.datagram.src, () => held)) work(held);
    else this.scheduleDrain(admission, work, event);
    if (admission.dropped > dropped) this.ignore('rate-limited', { src: held.datagram.src }, event, admission.dropped - dropped);
  }

  /** Waiting packets get their turns as tokens come (admission.ts). */
  private scheduleDrain(admission: Admission<HeldPacket>, work: (held: HeldPacket) => void, event: string): void {
    if (this.drainTimers.has(admission) || this.stopped) return;
    const wait = admission.nextDrainMs();
    if (wait === undefined) return;
    const timer = setTimeout(() => {
      this.drainTimers.delete(admission);
      if (this.stopped) return;
      const dropped = admission.dropped;
      for (const held of admission.drain()) work(held);
      if (admission.dropped > dropped) this.ignore('rate-limited', {}, event, admission.dropped - dropped);
      this.scheduleDrain(admission, work, event);
    }, Math.max(ADMISSION_TICK_MS, wait));
    timer.unref();
    this.drainTimers.set(admission, timer);
  }

  /** Packets received and lost by the capture, over every capture opened (for the status output). */
  captureStats(): CaptureStats {
    return this.keeper.stats();
  }

  /**
   * Every captured frame comes through here, in the order of RoutineReceiveIncoming: decode,
   * port, direction, then per kind. Never throws.
   */
  onFrame(frame: Buffer, timestampMs: number, verdict: ScreenVerdict = SCREEN_PASS): void {
    const keys = this.keys;
    const link = this.keeper.link;
    if (keys === undefined || link === undefined) return;
    // Our own re-sent packets, seen again on lo: handing them over again would loop.
    if (capturedOnLoopback(link, frame)) return this.ignore('loopback', {}, 'packet.ignored');
    const decoded = decodeFrame(link, frame);
    if (!decoded.ok) return this.ignore(decoded.reason);
    const datagram = decoded.value;
    const port = keys.config.listenPort;
    if (datagram.protocol !== 'udp' || (datagram.dstPort !== port && datagram.srcPort !== port)) {
      return this.ignore('wrong-port', { src: datagram.src });
    }
    const type = datagram.payload[0];
    if (this.sentByUs(link, frame, datagram)) {
      // R2's own handshake message leaving the listen port: it names one of R2's session indices.
      if (datagram.srcPort !== port || (type !== MESSAGE_INITIATION && type !== MESSAGE_RESPONSE)) {
        return this.ignore('bad-type', {}, 'handshake.ignored');
      }
      if (!this.onSent(keys, datagram)) this.ignore('unknown-receiver', {}, 'handshake.ignored');
      return;
    }
    // From outside. Before anything else: a source that could never arrive from outside, and a
    // destination that is not R2 itself on the listen port, are refused (martian.ts).
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    const martian = martianSource(datagram.family, datagram.src, this.local);
    if (martian !== undefined) return this.ignore(martian, { src }, 'packet.ignored');
    if (datagram.dstPort !== port) return this.ignore('wrong-port', { src }, 'packet.ignored');
    if (!isOwnUnicast(datagram.family, datagram.dst, this.local)) return this.ignore('not-for-us', { src, dst: datagram.dst }, 'packet.ignored');
    if (type === MESSAGE_INITIATION) {
      // Where the capture's screen checked mac1 in place (screen.ts), it is not checked again.
      const checked = verdict === SCREEN_MAC1_CHECKED ? ({ ok: true } as const) : screenInitiation(keys.responder, datagram.payload);
      if (!checked.ok) return this.ignore(checked.reason, { src }, 'initiation.ignored');
      return this.admit(this.admission, { datagram, capturedAt: timestampMs }, (held) => this.onInitiation(held), 'initiation.ignored');
    }
    if (type === MESSAGE_TRANSPORT) return this.onData(keys, datagram, timestampMs);
    return this.ignore('bad-type', { src }, 'packet.ignored');
  }

  /**
   * Did R2 itself send this frame? Learning R2's session indices from a forged "sent" message
   * would let a stranger evict a peer's live indices or plant their own, so only what R2 really
   * sent counts: a cooked frame says its direction (PACKET_OUTGOING); for other link types the
   * capture filter passes handshake messages from the listen port only `outbound`, and a frame
   * from one of R2's own addresses to somewhere else is R2's. A packet from outside claiming
   * one of R2's addresses is a martian either way.
   */
  private sentByUs(link: NonNullable<CaptureKeeper['link']>, frame: Buffer, datagram: Datagram): boolean {
    const direction = frameDirection(link, frame);
    if (direction === 'incoming') return false;
    const fromUs = this.local.isOwn(datagram.src);
    if (direction === 'outgoing') return fromUs;
    return fromUs && !this.local.isOwn(datagram.dst);
  }

  /** R2's own initiation or response: learn the session index it names. */
  private onSent(keys: Keys, datagram: Datagram): boolean {
    const receiver = responseReceiver(datagram.payload);
    const hintPeer = receiver === undefined ? undefined : this.initiators.get(receiver)?.peer;
    const hint = hintPeer === undefined ? undefined : keys.peerMacs.get(hintPeer);
    const sent = identifySent(datagram.payload, keys.peerMacs.values(), hint);
    if (!sent.ok) return false;
    this.indices.learn(sent.value.index, sent.value.peer, this.now());
    this.sessionsLearned++;
    this.deps.logger.debug(
      { event: 'session.learned', interface: this.iface, peer: sent.value.peer, index: sent.value.index, from: sent.value.kind },
      `R2 sent a handshake ${sent.value.kind}: session index ${sent.value.index}`,
    );
    return true;
  }

  /** Admitted: the Noise steps. */
  private onInitiation({ datagram, capturedAt }: HeldPacket): void {
    const keys = this.keys;
    if (keys === undefined || this.stopped) return;
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    const verified = openInitiation(keys.responder, datagram.payload);
    if (!verified.ok) return this.ignore(verified.reason, { src }, 'initiation.ignored');
    const peerKey = verified.value.staticKey.toString('base64');
    const peer = keys.config.peers.get(peerKey);
    if (peer === undefined) {
      this.enqueue(peerKey, () => this.onUnknownKey(datagram, verified.value, capturedAt));
      return;
    }
    this.onGenuine(peer, datagram, verified.value, capturedAt);
  }

  /** A genuine initiation from a key we do not know: maybe the peer was just added. */
  private async onUnknownKey(datagram: Datagram, initiation: VerifiedInitiation, capturedAt: number): Promise<void> {
    const peerKey = initiation.staticKey.toString('base64');
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    // Anyone who knows our public key can make one, hence the rate limit on re-reading.
    if (this.now() - this.lastUnknownRefresh >= this.deps.options.unknownPeerRefreshMs) {
      this.lastUnknownRefresh = this.now();
      await this.refresh('unknown-peer');
    }
    const peer = this.keys?.config.peers.get(peerKey);
    if (peer === undefined || this.stopped) return this.ignore('unknown-peer', { src, peer: peerKey }, 'initiation.ignored');
    this.onGenuine(peer, datagram, initiation, capturedAt);
  }

  /** Synchronous from the capture: checks freshness, hands the packet on, then persists. */
  private onGenuine(peer: PeerConfig, datagram: Datagram, initiation: VerifiedInitiation, capturedAt: number): void {
    const peerKey = peer.publicKey;
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    const marks = this.deps.watermarks;
    if (!marks.isFresh(peerKey, initiation.timestamp)) return this.ignore('replay', { src, peer: peerKey }, 'initiation.ignored');
    this.authentic++;
    this.countFor(peerKey, 'authentic');
    this.rememberInitiator(initiation.sender, peerKey);
    const sent = timestampToDate(initiation.timestamp);
    let injected = false;
    if (this.injecting && this.deps.delivery?.canInject(datagram.family) === true) {
      injected = this.inject(datagram, 'initiation');
    }
    try {
      marks.advance(peerKey, initiation.timestamp);
    } catch (error) {
      // The watermark is raised in memory; losing it on disk must not stop the tunnel.
      this.logError(error);
    }
    this.deps.logger.info(
      { event: 'initiation.accepted', interface: this.iface, peer: peerKey, src, injected, timestamp: sent.ok ? sent.value.toISOString() : undefined },
      `authentic initiation from ${src}`,
    );
    if (injected) {
      if (!sameEndpoint(peer.endpoint, src)) this.handedOverFor(peerKey, { src, kind: 'initiation', capturedAt, injectedAt: Date.now(), datagram });
      else this.accepted++;
      return;
    }
    this.enqueue(peerKey, () => this.applyWithWg(peerKey, peer, src, capturedAt));
  }

  private rememberInitiator(index: number, peer: string): void {
    const at = this.now();
    if (this.initiators.size >= MAX_INITIATOR_HINTS) {
      for (const [old, hint] of this.initiators) {
        if (at - hint.at > INITIATOR_HINT_MS || this.initiators.size >= MAX_INITIATOR_HINTS) this.initiators.delete(old);
        if (this.initiators.size < MAX_INITIATOR_HINTS / 2) break;
      }
    }
    this.initiators.set(index, { peer, at });
  }

  /** Transport data to the listen port from an address that is not (yet) its peer's endpoint. */
  private onData(keys: Keys, datagram: Datagram, capturedAt: number): void {
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    if (datagram.payload.length < TRANSPORT_MIN_SIZE) return this.ignore('bad-size', { src }, 'data.ignored');
    const index = datagram.payload.readUInt32LE(TRANSPORT_RECEIVER_OFFSET);
    const peerKey = this.indices.lookup(index, this.now());
    if (peerKey === undefined) return this.ignore('unknown-index', { src, index }, 'data.ignored');
    const peer = keys.config.peers.get(peerKey);
    if (peer === undefined) return this.ignore('unknown-index', { src, index }, 'data.ignored');
    // The filter leaves a peer's own endpoint out; one that slipped in while the filter was
    // being replaced. Another peer's endpoint is never handed over for this one (its flow is
    // that peer's, and settling would remove it).
    if (this.endpointKeys.has(endpointKeyOfParts(datagram.src, datagram.srcPort))) return this.ignore('from-endpoint', { src, peer: peerKey }, 'data.ignored');
    if (!this.injecting || this.deps.delivery?.canInject(datagram.family) !== true) {
      // A data packet never moves an endpoint by our hand: without injection it is only counted.
      return this.ignore(this.deps.options.dryRun ? 'dry-run' : 'not-injected', { src, peer: peerKey }, 'data.ignored');
    }
    const now = this.now();
    const spentUntil = this.spent.get(datagram.src);
    if (spentUntil !== undefined && spentUntil > now) return this.ignore('source-spent', { src, peer: peerKey }, 'data.ignored');
    if (!this.handedOver.has(peerKey) && (this.dataConfirmAfter.get(peerKey) ?? 0) > now) {
      return this.ignore('rate-limited', { src, peer: peerKey }, 'data.ignored');
    }
    this.admit(this.dataAdmission, { datagram, capturedAt, peer: peerKey }, (held) => this.handOverData(held), 'data.ignored');
  }

  /** Admitted: hand the data packet to WireGuard and watch for the endpoint to move. */
  private handOverData({ datagram, capturedAt, peer: peerKey }: HeldPacket): void {
    if (this.stopped || peerKey === undefined || !this.inject(datagram, 'data')) return;
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    this.handedOverFor(peerKey, { src, kind: 'data', capturedAt, injectedAt: Date.now(), datagram });
  }

  private inject(datagram: Datagram, kind: 'initiation' | 'data'): boolean {
    const delivered = this.deps.delivery?.deliver(datagram);
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    if (delivered === undefined || !delivered.ok) {
      this.ignore('inject-failed', { src, why: delivered?.ok === false ? delivered.reason : 'no delivery' }, `${kind}.ignored`);
      return false;
    }
    this.injected++;
    this.scheduleSettle();
    this.deps.logger.debug({ event: `${kind}.injected`, interface: this.iface, src, pinholed: delivered.value.pinholed }, `handed a ${kind} packet from ${src} to WireGuard`);
    return true;
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
      endpoints = await readEndpoints(this.iface, this.deps.run);
    } catch {
      return this.scheduleSettle(SETTLE_RETRY_MS);
    }
    const current = new Set<string>();
    for (const endpoint of endpoints.values()) {
      const parsed = endpoint === undefined ? undefined : parseEndpoint(endpoint);
      if (parsed !== undefined) current.add(endpointKeyOfParts(canonicalAddress(parsed.address) ?? parsed.address, parsed.port));
    }
    delivery.settle((tuple) => current.has(endpointKeyOfParts(tuple.src, tuple.srcPort)));
    this.scheduleSettle();
  }

  /** Runs `task` after every earlier task for the same peer. */
  private enqueue(peer: string, task: () => Promise<void>): void {
    const previous = this.peerQueues.get(peer) ?? Promise.resolve();
    const next = previous.then(task).catch((error: unknown) => this.logError(error));
    this.peerQueues.set(peer, next);
    this.work.add(next);
    void next.finally(() => {
      this.work.delete(next);
      if (this.peerQueues.get(peer) === next) this.peerQueues.delete(peer);
    });
  }

  private logError(error: unknown): void {
    const code = isReconfigError(error) ? error.code : 'E_INTERNAL';
    this.deps.logger.error({ event: 'error', code }, (error as Error).message);
  }

  /**
   * Remembers a packet handed over for `peerKey` and makes sure one confirmation runs for that
   * peer: however many packets are handed over meanwhile (a flood of replayed data naming a live
   * index among them), a peer has one `wg show` loop at a time. A new initiation restarts its
   * waits, so each genuine one gets the whole window before falling back.
   */
  private handedOverFor(peerKey: string, injected: Injected): void {
    let pending = this.handedOver.get(peerKey);
    const starting = pending === undefined;
    if (pending === undefined) {
      pending = new Map();
      this.handedOver.set(peerKey, pending);
    }
    pending.delete(injected.src);
    pending.set(injected.src, injected);
    for (const src of pending.keys()) {
      if (pending.size <= MAX_HANDED_OVER_SOURCES) break;
      pending.delete(src);
    }
    if (injected.kind === 'initiation') this.restartWatch.add(peerKey);
    if (starting) this.enqueue(peerKey, () => this.confirmPeer(peerKey));
  }

  /** Waits for WireGuard to take up what was handed over; falls back to `wg set` for an initiation. */
  private async confirmPeer(peerKey: string): Promise<void> {
    try {
      let pinholeTried = false;
      for (;;) {
        if ((await this.watchEndpoint(peerKey)) || this.stopped) return;
        const pending = [...(this.handedOver.get(peerKey)?.values() ?? [])];
        const initiation = pending.filter((p) => p.kind === 'initiation').at(-1);
        if (initiation === undefined) {
          this.deps.logger.debug({ event: 'data.not-taken-up', interface: this.iface, peer: peerKey, sources: pending.map((p) => p.src) }, 'WireGuard did not move the endpoint');
          this.dataNotTakenUp(peerKey, pending);
          return;
        }
        // The firewall may drop what comes in on lo: pinhole and hand the same packet over again
        // (WireGuard never saw it, so it is still fresh to WireGuard).
        if (!pinholeTried && this.deps.delivery?.learnPinholeNeeded() === true && this.inject(initiation.datagram, 'initiation')) {
          pinholeTried = true;
          this.restartWatch.add(peerKey);
          continue;
        }
        const peer = this.keys?.config.peers.get(peerKey);
        if (peer !== undefined) await this.applyWithWg(peerKey, peer, initiation.src, initiation.capturedAt);
        return;
      }
    } finally {
      this.handedOver.delete(peerKey);
      this.restartWatch.delete(peerKey);
    }
  }

  /** Data handed over for `peerKey` that WireGuard did not take up: its sources rest a while. */
  private dataNotTakenUp(peerKey: string, pending: readonly Injected[]): void {
    const now = this.now();
    this.dataConfirmAfter.set(peerKey, now + DATA_CONFIRM_COOLDOWN_MS);
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
  private async watchEndpoint(peerKey: string): Promise<boolean> {
    const delays = this.deps.confirmDelaysMs ?? CONFIRM_DELAYS_MS;
    for (let i = 0; i < delays.length; i++) {
      if (this.restartWatch.delete(peerKey)) i = 0;
      await sleep(delays[i] ?? 0);
      if (this.stopped) return false;
      const endpoint = (await readEndpoints(this.iface, this.deps.run)).get(peerKey);
      const known = this.keys?.config.peers.get(peerKey)?.endpoint;
      if (endpoint === undefined || sameEndpoint(endpoint, known)) continue;
      const injected = [...(this.handedOver.get(peerKey)?.values() ?? [])].find((p) => sameEndpoint(p.src, endpoint));
      if (injected === undefined) this.changed(peerKey, endpoint, 'roamed');
      else {
        if (injected.kind === 'initiation') this.accepted++;
        this.changed(peerKey, endpoint, 'injected', { capturedAt: injected.capturedAt, doneAt: injected.injectedAt });
      }
      return true;
    }
    return false;
  }

  /** Today's path: `wg set` with a keepalive edge, for verified initiations only. */
  private async applyWithWg(peerKey: string, fallback: PeerConfig, src: string, capturedAt: number): Promise<void> {
    if (this.stopped) return;
    // The endpoint may have moved since we last looked (WireGuard roams on authenticated
    // packets by itself), so ask wg for the current one before deciding.
    await this.refresh('initiation');
    const current = this.keys?.config.peers.get(peerKey) ?? fallback;
    if (sameEndpoint(current.endpoint, src)) {
      this.accepted++;
      this.deps.logger.debug({ event: 'endpoint.unchanged', interface: this.iface, peer: peerKey, endpoint: src }, 'endpoint already current');
      return;
    }
    if (this.deps.options.dryRun) {
      this.accepted++;
      this.deps.logger.info(
        { event: 'endpoint.updated', dryRun: true, interface: this.iface, peer: peerKey, from: current.endpoint, to: src, how: 'set' },
        `dry run: would point peer at ${src}`,
      );
      this.emit({ peer: peerKey, from: current.endpoint, to: src, how: 'set', at: Date.now() });
      return;
    }
    const setAt = await applyEndpointChange(this.iface, current, src, this.deps.run);
    const confirmed = (await readEndpoints(this.iface, this.deps.run)).get(peerKey);
    if (!sameEndpoint(confirmed, src)) {
      throw new ReconfigError('E_WG', `wg set did not move peer ${peerKey} to ${src}: wg show says ${confirmed ?? '(none)'}.`);
    }
    this.accepted++;
    this.changed(peerKey, src, 'set', { capturedAt, doneAt: setAt });
  }

  /** A confirmed change: remember it, leave its data out of the capture, tell. */
  private changed(peerKey: string, to: string, how: ChangeHow, timing?: { capturedAt: number; doneAt: number }): void {
    const keys = this.keys;
    const peer = keys?.config.peers.get(peerKey);
    if (keys === undefined || peer === undefined || sameEndpoint(peer.endpoint, to)) return;
    const from = peer.endpoint;
    this.notePeerEndpoint(to);
    this.setKnownEndpoint(peerKey, to);
    this.scheduleFilterUpdate();
    const at = Date.now();
    this.deps.logger.info(
      {
        event: 'endpoint.updated',
        interface: this.iface,
        peer: peerKey,
        from,
        to,
        how,
        ...(timing === undefined
          ? {}
          : {
              // capture → packet handed to WireGuard (or endpoint set); and → confirmed with wg show
              latencyMs: Number((timing.doneAt - timing.capturedAt).toFixed(3)),
              confirmedMs: Number((at - timing.capturedAt).toFixed(3)),
              setAt: new Date(timing.doneAt).toISOString(),
            }),
      },
      `peer now at ${to} (${how})`,
    );
    this.updated++;
    this.countFor(peerKey, 'updated');
    this.emit({ peer: peerKey, from, to, how, at });
  }

  private emit(change: EndpointChange): void {
    for (const listener of this.changeListeners) listener(change);
  }

  /**
   * Re-reads the interface: new peers, endpoints WireGuard moved by itself, a new key or listen
   * port (the interface was recreated, or SIGHUP). The capture filter follows. Never throws.
   */
  async refresh(why: string): Promise<void> {
    let fresh: Keys;
    try {
      fresh = await this.loadKeys();
    } catch (error) {
      if (!this.interfaceMissing) {
        this.interfaceMissing = true;
        this.logError(error);
      }
      return;
    }
    if (this.interfaceMissing) {
      this.interfaceMissing = false;
      this.deps.logger.info({ event: 'interface.ready', interface: this.iface, why }, `interface ${this.iface} is back`);
    }
    const before = this.keys;
    const keyChanged = before !== undefined && !fresh.responder.publicKey.equals(before.responder.publicKey);
    this.keys = keyChanged || before === undefined ? fresh : { ...fresh, responder: before.responder };
    if (keyChanged) {
      this.deps.logger.info({ event: 'config.reloaded', interface: this.iface, why, keyChanged: true }, 'interface key changed');
    }
    this.indices.retainPeers(new Set(fresh.config.peers.keys()));
    if (before !== undefined && !keyChanged) this.noticeRoams(before.config, fresh.config);
    this.updateFilter();
  }

  /** Endpoints that moved between two reads without us: WireGuard roamed on a packet it was let in. */
  private noticeRoams(before: InterfaceConfig, after: InterfaceConfig): void {
    for (const peer of after.peers.values()) {
      const old = before.peers.get(peer.publicKey);
      if (old === undefined || peer.endpoint === undefined || sameEndpoint(old.endpoint, peer.endpoint)) continue;
      // Told from the endpoint known before; a change being confirmed is told by its
      // confirmation, with how it was made.
      this.setKnownEndpoint(peer.publicKey, old.endpoint);
      if (!this.handedOver.has(peer.publicKey)) this.changed(peer.publicKey, peer.endpoint, 'roamed');
    }
  }

  /** Records `endpoint` as the peer's known endpoint (the configuration read is kept immutable). */
  private setKnownEndpoint(peerKey: string, endpoint: string | undefined): void {
    const keys = this.keys;
    const peer = keys?.config.peers.get(peerKey);
    if (keys === undefined || peer === undefined) return;
    const peers = new Map(keys.config.peers);
    peers.set(peerKey, { ...peer, endpoint });
    this.keys = { ...keys, config: { ...keys.config, peers } };
  }

  /** Resolves when every queued task has been handled. */
  async settled(): Promise<void> {
    for (let round = 0; round < 100 && this.work.size > 0; round++) await Promise.allSettled([...this.work]);
  }

  private countFor(peer: string, reason: string, count = 1): void {
    const counts = this.byPeer.get(peer) ?? new Map<string, number>();
    counts.set(reason, (counts.get(reason) ?? 0) + count);
    this.byPeer.set(peer, counts);
  }

  /** The peers as last read from `wg show` (or as last changed here), and the listen port. */
  view(): { readonly listenPort: number; readonly peers: readonly PeerView[] } {
    const config = this.keys?.config;
    if (config === undefined) return { listenPort: this.capturePort, peers: [] };
    return { listenPort: config.listenPort, peers: [...config.peers.values()].map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint })) };
  }

  /** authentic (verified, fresh) initiations, endpoint updates and ignored-by-reason counts of one peer. */
  peerCounts(peer: string): Record<string, number> {
    return Object.fromEntries(this.byPeer.get(peer) ?? []);
  }

  counters(): Record<string, number> {
    return {
      authentic: this.authentic,
      accepted: this.accepted,
      updated: this.updated,
      injected: this.injected,
      sessionsLearned: this.sessionsLearned,
      ...Object.fromEntries(this.ignored),
    };
  }

  /** Stops capturing and waits for queued work to finish; leaves the live indices behind. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.filterUpdate !== undefined) clearImmediate(this.filterUpdate);
    if (this.settleTimer !== undefined) clearTimeout(this.settleTimer);
    for (const timer of this.drainTimers.values()) clearTimeout(timer);
    this.drainTimers.clear();
    this.keeper.stop();
    await this.settled();
    this.leaveSessions();
  }

  private takeOverSessions(): void {
    const file = this.deps.sessionsFile;
    const peers = this.keys?.config.peers;
    if (file === undefined || peers === undefined) return;
    const checked = readOwnFile(file);
    if (checked === undefined) return; // none left behind
    if (!checked.ok) {
      this.deps.logger.warn({ event: 'sessions.ignored', file, why: checked.reason }, `ignoring ${file}: ${checked.reason}`);
      return;
    }
    const text = checked.value;
    const at = this.now();
    let taken = 0;
    try {
      const saved = JSON.parse(text) as { interface?: unknown; publicKey?: unknown; sessions?: unknown };
      // Left by this interface with this key: indices of another key's sessions name nothing.
      if (saved.interface !== this.iface || saved.publicKey !== this.publicKey() || !Array.isArray(saved.sessions)) throw new Error('not ours');
      for (const entry of saved.sessions as { index?: unknown; peer?: unknown; learnedAt?: unknown }[]) {
        const { index, peer, learnedAt } = entry;
        if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 0xffffffff) continue;
        if (typeof peer !== 'string' || !peers.has(peer) || typeof learnedAt !== 'number' || learnedAt > at) continue;
        if (at - learnedAt > REJECT_AFTER_TIME_MS) continue;
        this.indices.learn(index, peer, learnedAt);
        taken++;
      }
    } catch {
      this.deps.logger.warn({ event: 'sessions.ignored', file }, `ignoring ${file}: not a session list of ${this.iface}`);
      return;
    }
    if (taken > 0) this.deps.logger.info({ event: 'sessions.taken-over', interface: this.iface, sessions: taken }, `took over ${taken} live session indices`);
  }

  private publicKey(): string | undefined {
    return this.keys?.responder.publicKey.toString('base64');
  }

  private leaveSessions(): void {
    const file = this.deps.sessionsFile;
    if (file === undefined) return;
    const sessions = this.indices.live(this.now());
    try {
      // Nothing live: nothing to leave (and no file left behind).
      if (sessions.length === 0) rmSync(file, { force: true });
      else writeFileAtomic(file, `${JSON.stringify({ interface: this.iface, publicKey: this.publicKey(), sessions })}\n`, 0o600);
    } catch (error) {
      this.deps.logger.warn({ event: 'sessions.not-saved', file }, `could not leave the session indices in ${file}: ${(error as Error).message}`);
    }
  }
}
