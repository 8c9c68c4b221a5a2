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
import type { Capture, CaptureOptions, CaptureStats } from '../net/capture.js';
import { initiationFilter } from '../net/filter.js';
import { decodeFrame, type Datagram } from '../net/packet.js';
import { openInitiation, screenInitiation, type VerifiedInitiation } from '../wireguard/initiation.js';
import { parseSecret } from '../wireguard/keys.js';
import { createResponder, type Responder } from '../wireguard/responder.js';
import { timestampToDate } from '../wireguard/tai64n.js';
import { readInterface, type InterfaceConfig, type PeerConfig, type WgRunner } from '../wireguard/wg.js';
import { applyEndpointChange } from './apply.js';
import { formatEndpoint, sameEndpoint } from './endpoint.js';
import { VerifyBudget } from './budget.js';
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
  readonly budget?: VerifyBudget;
}

export interface EndpointChange {
  readonly peer: string;
  readonly from: string | undefined;
  readonly to: string;
  /** who moved it; 'set' when absent */
  readonly how?: 'injected' | 'set' | 'roamed';
  /** epoch ms; when absent, the moment it was told */
  readonly at?: number;
}

/** What the listener knows of one peer, for the status file. */
export interface PeerView {
  readonly publicKey: string;
  readonly endpoint: string | undefined;
}

interface Keys {
  readonly config: InterfaceConfig;
  readonly responder: Responder;
}

export class Listener {
  /** reason → how many packets were ignored for it */
  readonly ignored = new Map<IgnoreReason, number>();
  /** peer → reason (accepted, updated, or why ignored) → count */
  private readonly byPeer = new Map<string, Map<string, number>>();
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
  private readonly budget: VerifyBudget;

  constructor(private readonly deps: ListenerDeps) {
    this.budget = deps.budget ?? new VerifyBudget();
    this.keeper = new CaptureKeeper({
      logger: deps.logger,
      device: deps.options.device,
      openCapture: deps.openCapture,
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
    // Keep the configuration without its private key; the Secret inside the responder is the one copy.
    return { config: { ...config, privateKey: undefined }, responder: createResponder(secret.value) };
  }

  /** (Re)opens the capture with the filter for `port`; throws only from start(). */
  private listenOn(port: number, reopen: boolean): void {
    this.capturePort = port;
    if (reopen) this.keeper.reopen(initiationFilter(port));
    else this.keeper.open(initiationFilter(port));
  }

  private ignore(reason: IgnoreReason, details: Record<string, unknown> = {}): void {
    const count = (this.ignored.get(reason) ?? 0) + 1;
    this.ignored.set(reason, count);
    // only known peers: anyone can make up keys, and each would cost memory here
    if (typeof details.peer === 'string' && this.keys?.config.peers.has(details.peer)) this.countFor(details.peer, reason);
    this.deps.logger.debug({ event: 'initiation.ignored', reason, count, ...details }, `ignored: ${reason}`);
  }

  /** Every captured frame comes through here. Never throws. */
  onFrame(frame: Buffer, timestampMs: number): void {
    const keys = this.keys;
    const link = this.keeper.link;
    if (keys === undefined || link === undefined) return;
    const decoded = decodeFrame(link, frame);
    if (!decoded.ok) return this.ignore(decoded.reason);
    const datagram = decoded.value;
    if (datagram.protocol !== 'udp' || datagram.dstPort !== keys.config.listenPort) {
      return this.ignore('wrong-port', { src: datagram.src });
    }
    const src = formatEndpoint(datagram.src, datagram.srcPort);
    const screened = screenInitiation(keys.responder, datagram.payload);
    if (!screened.ok) return this.ignore(screened.reason, { src });
    if (!this.budget.take(datagram.src)) return this.ignore('rate-limited', { src });
    const verified = openInitiation(keys.responder, datagram.payload);
    if (!verified.ok) return this.ignore(verified.reason, { src });
    this.enqueue(() => this.onAuthentic(datagram, verified.value, timestampMs));
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
    this.accepted++;
    this.countFor(peerKey, 'accepted');
    const sent = timestampToDate(initiation.timestamp);
    this.deps.logger.info(
      { event: 'initiation.accepted', interface: this.iface, peer: peerKey, src, timestamp: sent.ok ? sent.value.toISOString() : undefined },
      `authentic initiation from ${src}`,
    );
    // The endpoint may have moved since we last looked (WireGuard roams on authenticated
    // packets by itself), so ask wg for the current one before deciding.
    const current = await this.currentPeer(peerKey, peer);
    if (sameEndpoint(current.endpoint, src)) {
      this.deps.logger.debug({ event: 'endpoint.unchanged', interface: this.iface, peer: peerKey, endpoint: src }, 'endpoint already current');
      return;
    }
    await this.applyChange(current, src, capturedAt);
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
    this.countFor(change.peer, 'updated');
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

  private countFor(peer: string, reason: string): void {
    const counts = this.byPeer.get(peer) ?? new Map<string, number>();
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
    this.byPeer.set(peer, counts);
  }

  /** The peers as last read from `wg show` (or as last set here), and the listen port. */
  view(): { readonly listenPort: number; readonly peers: readonly PeerView[] } {
    const config = this.keys?.config;
    if (config === undefined) return { listenPort: this.capturePort, peers: [] };
    return { listenPort: config.listenPort, peers: [...config.peers.values()].map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint })) };
  }

  /** accepted, updated and ignored-by-reason counts of one peer's verified initiations. */
  peerCounts(peer: string): Record<string, number> {
    return Object.fromEntries(this.byPeer.get(peer) ?? []);
  }

  /** libpcap's counters for the open capture; undefined while none is open. */
  captureStats(): CaptureStats | undefined {
    return this.keeper.stats();
  }

  counters(): Record<string, number> {
    return { accepted: this.accepted, updated: this.updated, ...Object.fromEntries(this.ignored) };
  }

  /** Stops capturing and waits for queued work to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.keeper.stop();
    await this.queue;
  }
}
