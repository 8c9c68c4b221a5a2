/**
 * capture → decode → verify → decide → apply, for one WireGuard interface.
 *
 * The synchronous part (decode, mac1, Noise) runs for every captured frame and never throws;
 * what survives it is authentic and goes through one queue, so `wg` calls for the same peer
 * never race. A packet without the peer's private key behind it can at most be counted.
 */
import type { Logger } from '../common/log.js';
import { ReconfigError, isReconfigError } from '../common/errors.js';
import { CaptureKeeper } from '../common/capture-keeper.js';
import type { Capture, CaptureOptions } from '../net/capture.js';
import { initiationFilter } from '../net/filter.js';
import { decodeFrame, type Datagram } from '../net/packet.js';
import { openInitiation, screenInitiation, type VerifiedInitiation } from '../wireguard/initiation.js';
import { parseSecret } from '../wireguard/keys.js';
import { createResponder, type Responder } from '../wireguard/responder.js';
import { timestampToDate } from '../wireguard/tai64n.js';
import { readInterface, type InterfaceConfig, type PeerConfig, type WgRunner } from '../wireguard/wg.js';
import { applyEndpointChange } from './apply.js';
import { endpointAddress, formatEndpoint, sameEndpoint } from './endpoint.js';
import { Admission } from './admission.js';
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
  /** bounds the Noise work an unauthenticated sender can cause */
  readonly admission?: Admission<HeldInitiation>;
}

/** A mac1-valid initiation waiting for its turn at the Noise steps. */
export interface HeldInitiation {
  readonly datagram: Datagram;
  readonly capturedAt: number;
}

/**
 * The kernel hands captured packets over in blocks at most this many ms late: under a flood
 * one wake-up reads hundreds, and a genuine initiation waits at most this long.
 */
export const CAPTURE_BUFFER_TIMEOUT_MS = 10;
/** Waiting initiations are looked at no more often than this. */
const ADMISSION_TICK_MS = 10;

export interface EndpointChange {
  readonly peer: string;
  readonly from: string | undefined;
  readonly to: string;
}

interface Keys {
  readonly config: InterfaceConfig;
  readonly responder: Responder;
}

export class Listener {
  /** reason → how many packets were ignored for it */
  readonly ignored = new Map<IgnoreReason, number>();
  /** verified and fresh: the initiation.accepted log lines */
  authentic = 0;
  /** authentic and carried out: the endpoint was already current, or was changed */
  accepted = 0;
  updated = 0;

  private keys: Keys | undefined;
  private readonly keeper: CaptureKeeper;
  private capturePort = 0;
  private queue: Promise<void> = Promise.resolve();
  private lastUnknownRefresh = Number.NEGATIVE_INFINITY;
  private interfaceMissing = false;
  private stopped = false;
  private changeListeners: ((change: EndpointChange) => void)[] = [];
  private readonly admission: Admission<HeldInitiation>;
  private drainTimer: NodeJS.Timeout | undefined;
  /** set by the capture's screen for the frame it is about to deliver */
  private screened = false;
  private readonly debug: boolean;

  constructor(private readonly deps: ListenerDeps) {
    this.admission = deps.admission ?? new Admission<HeldInitiation>();
    this.debug = deps.logger.isLevelEnabled('debug');
    this.keeper = new CaptureKeeper({
      logger: deps.logger,
      device: deps.options.device,
      openCapture: deps.openCapture,
      bufferTimeoutMs: CAPTURE_BUFFER_TIMEOUT_MS,
      screen: (frame, length) => this.screen(frame, length),
      onFrame: (frame, timestampMs) => this.onFrame(frame, timestampMs),
      onOpen: (capture, reopened) =>
        deps.logger.info(
          {
            event: 'listening',
            interface: this.iface,
            device: capture.device,
            link: capture.link,
            port: this.capturePort,
            peers: this.keys?.config.peers.size ?? 0,
            dryRun: deps.options.dryRun,
            once: deps.options.once,
            ...(reopened ? { reopened } : {}),
          },
          `watching ${capture.device} for WireGuard initiations to port ${this.capturePort}`,
        ),
    });
  }

  private get iface(): string {
    return this.deps.options.interface;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Reads the interface and opens the capture; startup errors are thrown to the caller. */
  async start(): Promise<void> {
    this.keys = await this.loadKeys();
    this.listenOn(this.keys.config.listenPort, false);
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
    for (const peer of config.peers.values()) if (peer.endpoint !== undefined) this.admission.notePeerEndpoint(endpointAddress(peer.endpoint));
    // Keep the configuration without its private key; the Secret inside the responder is the one copy.
    return { config: { ...config, privateKey: undefined }, responder: createResponder(secret.value) };
  }

  /** (Re)opens the capture with the filter for `port`; throws only from start(). */
  private listenOn(port: number, reopen: boolean): void {
    this.capturePort = port;
    if (reopen) this.keeper.reopen(initiationFilter(port));
    else this.keeper.open(initiationFilter(port));
  }

  private ignore(reason: IgnoreReason, details?: Record<string, unknown>): void {
    const count = (this.ignored.get(reason) ?? 0) + 1;
    this.ignored.set(reason, count);
    if (this.debug) this.deps.logger.debug({ event: 'initiation.ignored', reason, count, ...details }, `ignored: ${reason}`);
  }

  /** The capture's first look, in its reused buffer, before any copy (screen.ts). */
  private screen(frame: Buffer, length: number): boolean {
    const keys = this.keys;
    const link = this.keeper.link;
    if (keys === undefined || link === undefined) return false;
    const reason = screenFrame(link, frame, length, keys.config.listenPort, keys.responder);
    if (reason !== undefined) this.ignore(reason);
    this.screened = reason === undefined;
    return this.screened;
  }

  /** Every captured frame comes through here. Never throws. */
  onFrame(frame: Buffer, timestampMs: number): void {
    const screened = this.screened;
    this.screened = false;
    const keys = this.keys;
    const link = this.keeper.link;
    if (keys === undefined || link === undefined) return;
    const decoded = decodeFrame(link, frame);
    if (!decoded.ok) return this.ignore(decoded.reason);
    const datagram = decoded.value;
    if (datagram.protocol !== 'udp' || datagram.dstPort !== keys.config.listenPort) {
      return this.ignore('wrong-port', { src: datagram.src });
    }
    if (!screened) {
      const checked = screenInitiation(keys.responder, datagram.payload);
      if (!checked.ok) return this.ignore(checked.reason, { src: formatEndpoint(datagram.src, datagram.srcPort) });
    }
    const held: HeldInitiation = { datagram, capturedAt: timestampMs };
    if (this.admission.offer(datagram.src, () => held)) this.verify(held);
    else this.scheduleDrain();
  }

  /** Admitted: the Noise steps, then the decision in order with every other authentic one. */
  private verify({ datagram, capturedAt }: HeldInitiation): void {
    const keys = this.keys;
    if (keys === undefined) return;
    const verified = openInitiation(keys.responder, datagram.payload);
    if (!verified.ok) return this.ignore(verified.reason, { src: formatEndpoint(datagram.src, datagram.srcPort) });
    this.enqueue(() => this.onAuthentic(datagram, verified.value, capturedAt));
  }

  /** Waiting initiations get their turns as tokens come (admission.ts). */
  private scheduleDrain(): void {
    if (this.drainTimer !== undefined || this.stopped) return;
    const wait = this.admission.nextDrainMs();
    if (wait === undefined) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      if (this.stopped) return;
      for (const held of this.admission.drain()) this.verify(held);
      this.scheduleDrain();
    }, Math.max(ADMISSION_TICK_MS, wait));
  }

  /** Packets received and lost by the capture, over every capture opened (for the status output). */
  captureStats(): CaptureStats {
    return this.keeper.stats();
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((error: unknown) => this.logError(error));
  }

  private logError(error: unknown): void {
    const code = isReconfigError(error) ? error.code : 'E_INTERNAL';
    this.deps.logger.error({ event: 'error', code }, (error as Error).message);
  }

  private async onAuthentic(datagram: Datagram, initiation: VerifiedInitiation, capturedAt: number): Promise<void> {
    if (this.stopped) return;
    const peerKey = initiation.staticKey.toString('base64');
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    let peer = this.keys?.config.peers.get(peerKey);
    if (peer === undefined && this.now() - this.lastUnknownRefresh >= this.deps.options.unknownPeerRefreshMs) {
      // A genuine initiation from a key we do not know: maybe the peer was just added.
      // Anyone who knows our public key can make one, hence the rate limit on re-reading.
      this.lastUnknownRefresh = this.now();
      await this.refresh('unknown-peer');
      peer = this.keys?.config.peers.get(peerKey);
    }
    if (peer === undefined) return this.ignore('unknown-peer', { src, peer: peerKey });
    if (!this.deps.watermarks.isFresh(peerKey, initiation.timestamp)) return this.ignore('replay', { src, peer: peerKey });
    try {
      this.deps.watermarks.advance(peerKey, initiation.timestamp);
    } catch (error) {
      // The watermark is raised in memory; losing it on disk must not stop the tunnel.
      this.logError(error);
    }
    this.authentic++;
    const sent = timestampToDate(initiation.timestamp);
    this.deps.logger.info(
      { event: 'initiation.accepted', interface: this.iface, peer: peerKey, src, timestamp: sent.ok ? sent.value.toISOString() : undefined },
      `authentic initiation from ${src}`,
    );
    // The endpoint may have moved since we last looked (WireGuard roams on authenticated
    // packets by itself), so ask wg for the current one before deciding.
    const current = await this.currentPeer(peerKey, peer);
    if (sameEndpoint(current.endpoint, src)) {
      this.accepted++;
      this.deps.logger.debug({ event: 'endpoint.unchanged', interface: this.iface, peer: peerKey, endpoint: src }, 'endpoint already current');
      return;
    }
    await this.applyChange(current, src, capturedAt);
    this.accepted++;
  }

  private async currentPeer(peerKey: string, fallback: PeerConfig): Promise<PeerConfig> {
    await this.refresh('initiation');
    return this.keys?.config.peers.get(peerKey) ?? fallback;
  }

  private async applyChange(peer: PeerConfig, to: string, capturedAt: number): Promise<void> {
    const change: EndpointChange = { peer: peer.publicKey, from: peer.endpoint, to };
    if (this.deps.options.dryRun) {
      this.deps.logger.info(
        { event: 'endpoint.updated', dryRun: true, interface: this.iface, ...change },
        `dry run: would point peer at ${to}`,
      );
    } else {
      const setAt = await applyEndpointChange(this.iface, peer, to, this.deps.run);
      this.rememberEndpoint(peer, to);
      this.admission.notePeerEndpoint(endpointAddress(to));
      this.deps.logger.info(
        {
          event: 'endpoint.updated',
          interface: this.iface,
          ...change,
          // capture → endpoint set and send triggered; and → the peer's keepalive restored
          latencyMs: Number((setAt - capturedAt).toFixed(3)),
          doneMs: Number((this.now() - capturedAt).toFixed(3)),
          setAt: new Date(setAt).toISOString(),
        },
        `peer now at ${to}`,
      );
    }
    this.updated++;
    for (const listener of this.changeListeners) listener(change);
  }

  private rememberEndpoint(peer: PeerConfig, endpoint: string): void {
    const keys = this.keys;
    if (keys === undefined) return;
    const peers = new Map(keys.config.peers);
    peers.set(peer.publicKey, { ...peer, endpoint });
    this.keys = { ...keys, config: { ...keys.config, peers } };
  }

  /**
   * Re-reads the interface: new peers, endpoints, a new key or listen port (the interface was
   * recreated, or SIGHUP). The capture filter follows the port. Never throws.
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
    this.keys = fresh.responder.publicKey.equals(before?.responder.publicKey ?? Buffer.alloc(0))
      ? { config: fresh.config, responder: before?.responder ?? fresh.responder }
      : fresh;
    if (before !== undefined && !fresh.responder.publicKey.equals(before.responder.publicKey)) {
      this.deps.logger.info({ event: 'config.reloaded', interface: this.iface, why, keyChanged: true }, 'interface key changed');
    }
    if (fresh.config.listenPort !== this.capturePort && !this.stopped) this.listenOn(fresh.config.listenPort, true);
  }

  /** Resolves when every queued initiation has been handled. */
  settled(): Promise<void> {
    return this.queue;
  }

  counters(): Record<string, number> {
    const limited = this.admission.dropped;
    return {
      authentic: this.authentic,
      accepted: this.accepted,
      updated: this.updated,
      ...Object.fromEntries(this.ignored),
      ...(limited > 0 ? { 'rate-limited': limited } : {}),
    };
  }

  /** Stops capturing and waits for queued work to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.drainTimer);
    this.keeper.stop();
    await this.queue;
  }
}
