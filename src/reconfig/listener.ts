/**
 * capture → decode → classify → verify → deliver → confirm → tell, for one WireGuard interface.
 * This file only wires the stages, each a file of its own, the data flowing one way:
 * sniffer (the capture and its filter) → receive (decode, classify, route) → ratelimit →
 * handshake (initiations) or roam (data) → roam (confirm, fall back, tell through change.ts).
 * What they share: peers (what `wg show` said and what we believe of each peer), sessions
 * (R2's session indices) and counters.
 *
 * Three kinds of packet reach user space (see wireguardFilter):
 * * an incoming handshake initiation: verified (mac1, then the Noise IK responder steps) and,
 *   if fresh, handed to WireGuard itself (handshake.ts decides);
 * * R2's own handshake messages leaving the port: they name R2's session indices (sessions.ts);
 * * incoming transport data from an address that is not its peer's endpoint: handed to
 *   WireGuard only if its receiver index names one of R2's live sessions; and from a peer's own
 *   endpoint while R2's conntrack entry for it is gone (expiry: the firewall dropped it).
 * The synchronous part runs for every captured frame and never throws; everything that waits
 * for `wg` runs in one queue per peer, so calls for the same peer never race.
 */
import { logError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { DestroyEvents } from '../net/conntrack-events.js';
import { SCREEN_PASS, type Capture, type CaptureOptions, type CaptureStats, type ScreenVerdict } from '../net/capture.js';
import { LocalAddresses } from '../net/local.js';
import type { ModelPeer } from '../registry/server.js';
import type { WgRunner } from '../wireguard/wg.js';
import type { Admission } from './admission.js';
import { ChangeListeners, type EndpointChange } from './change.js';
import { Counters, type IgnoreReason } from './counters.js';
import type { Delivery } from './deliver.js';
import { Expiry } from './expiry.js';
import { Handshake } from './handshake.js';
import type { ReconfigOptions } from './options.js';
import { Peers, type Shown } from './peers.js';
import { RateLimit, type HeldPacket } from './ratelimit.js';
import { Receive } from './receive.js';
import type { Watermarks } from './replay.js';
import { createEndpointReader, type EndpointReader } from '../wireguard/endpoints.js';
import { CONFIRM_DELAYS_MS, Roam } from './roam.js';
import { Sessions } from './sessions.js';
import { Sniffer, screenedOf } from './sniffer.js';

export type { ChangeHow, EndpointChange } from './change.js';
export type { HeldPacket } from './ratelimit.js';

export interface ListenerDeps {
  readonly logger: Logger;
  readonly options: ReconfigOptions & { readonly interface: string };
  readonly watermarks: Watermarks;
  readonly openCapture: (options: CaptureOptions) => Capture;
  readonly run?: WgRunner;
  /** the clock every time comparison reads (ms) */
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
  /** conntrack's destroy events: a peer's endpoint whose entry is gone is captured again (expiry.ts) */
  readonly destroyEvents?: DestroyEvents;
}

/** What the listener knows of one peer, for the status file. */
export interface PeerView {
  readonly publicKey: string;
  readonly endpoint: string | undefined;
}

export class Listener {
  private readonly peers = new Peers();
  private readonly counts: Counters;
  private readonly changes = new ChangeListeners();
  private readonly rateLimit: RateLimit;
  private readonly sessions: Sessions;
  private readonly sniffer: Sniffer;
  private readonly roam: Roam;
  private readonly handshake: Handshake;
  private readonly receive: Receive;
  private readonly expiry: Expiry;
  private readonly endpoints: EndpointReader;
  private readonly injecting: boolean;
  private interfaceMissing = false;

  constructor(private readonly deps: ListenerDeps) {
    const { logger, options, delivery } = deps;
    const iface = options.interface;
    const now = deps.now ?? Date.now;
    const peers = this.peers;
    const counters = (this.counts = new Counters(logger, (peer) => peers.has(peer)));
    this.injecting = delivery !== undefined && options.inject && !options.dryRun;
    const injecting = this.injecting;
    const rateLimit = (this.rateLimit = new RateLimit(counters, deps.admission, deps.dataAdmission));
    const sessions = (this.sessions = new Sessions({ logger, iface, peers, counters, now, file: deps.sessionsFile }));
    const sniffer = (this.sniffer = new Sniffer({
      logger,
      iface,
      device: options.device,
      openCapture: deps.openCapture,
      peers,
      counters,
      listening: () => ({ inject: injecting, pinhole: delivery?.pinholing ?? false, dryRun: options.dryRun, once: options.once }),
      onFrame: (link, frame, timestampMs, screened) => this.receive.onFrame(link, frame, timestampMs, screened),
      // In the capture's buffer, before any copy: data for no live session, or for a resting peer.
      dataRefusal: (index) => {
        const peerKey = this.sessions.lookup(index);
        const peer = peerKey === undefined ? undefined : peers.get(peerKey);
        if (peer === undefined) return 'unknown-index';
        return this.roam.resting(peer) ? 'rate-limited' : undefined;
      },
      lifted: (endpoints) => this.expiry.liftedAmong(endpoints),
    }));
    const expiry = (this.expiry = new Expiry({ counters, endpoints: () => sniffer.endpoints(), changed: () => sniffer.scheduleFilterUpdate() }));
    const reread = (why: string): Promise<void> => this.refresh(why);
    this.endpoints = createEndpointReader(deps.run === undefined ? {} : { run: deps.run });
    const roam = (this.roam = new Roam({
      logger,
      iface,
      dryRun: options.dryRun,
      run: deps.run,
      endpoints: this.endpoints,
      delivery,
      confirmDelaysMs: deps.confirmDelaysMs ?? CONFIRM_DELAYS_MS,
      peers,
      counters,
      changes: this.changes,
      now,
      reread,
      moved: (to) => {
        rateLimit.notePeerEndpoint(to);
        sniffer.scheduleFilterUpdate();
      },
      expiry,
      durable: () => deps.watermarks.durable(),
    }));
    deps.watermarks.onWriteError = (error) => logError(logger, error);
    const handshake = (this.handshake = new Handshake({
      logger,
      iface,
      peers,
      counters,
      sessions,
      roam,
      watermarks: deps.watermarks,
      delivery,
      injecting,
      now,
      unknownPeerRefreshMs: options.unknownPeerRefreshMs,
      reread,
    }));
    this.receive = new Receive({
      peers,
      counters,
      local: deps.localAddresses ?? new LocalAddresses(),
      sniffer,
      sessions,
      rateLimit,
      handshake,
      roam,
      delivery,
      expiry,
      injecting,
      dryRun: options.dryRun,
    });
  }

  private get iface(): string {
    return this.deps.options.interface;
  }

  /** Reads the interface and opens the capture; startup errors are thrown to the caller. */
  async start(): Promise<void> {
    try {
      this.adopt(await this.peers.read(this.iface, this.deps.run));
      this.sessions.takeOver();
      const listenPort = this.peers.listenPort;
      if (this.injecting && listenPort !== undefined) await this.deps.delivery?.prepare(listenPort);
      this.followExpiry();
      this.sniffer.open();
    } catch (error) {
      // The events' watch would keep the process alive.
      this.deps.destroyEvents?.close();
      throw error;
    }
  }

  /** Conntrack's destroy events lift the exclusion of the endpoints whose entry is gone (expiry.ts). */
  private followExpiry(): void {
    const events = this.deps.destroyEvents;
    if (events === undefined || !this.injecting) return;
    const { counts, expiry, peers, iface } = this;
    events.follow(() => peers.listenPort, {
      destroyed: (flow) => expiry.destroyed(flow, peers.listenPort),
      lost: () => expiry.lost(),
      malformed: (count) => counts.ignore('bad-event', {}, 'conntrack.ignored', count),
      failed: (message) => counts.limited('warn', 'conntrack.failed', { event: 'conntrack.failed', interface: iface, message }, `conntrack events: ${message}`),
    });
  }

  onChange(listener: (change: EndpointChange) => void): void {
    this.changes.add(listener);
  }

  /** A captured frame, as the capture delivers it (with the screen's verdict). Never throws. */
  onFrame(frame: Buffer, timestampMs: number, verdict: ScreenVerdict = SCREEN_PASS): void {
    const link = this.sniffer.link;
    if (link !== undefined) this.receive.onFrame(link, frame, timestampMs, screenedOf(verdict));
  }

  /**
   * Re-reads the interface: new peers, endpoints WireGuard moved by itself, a new key or listen
   * port (the interface was recreated, or SIGHUP). The capture filter follows. Never throws.
   */
  async refresh(why: string): Promise<void> {
    let fresh: Shown;
    try {
      fresh = await this.peers.read(this.iface, this.deps.run);
    } catch (error) {
      if (!this.interfaceMissing) {
        this.interfaceMissing = true;
        logError(this.deps.logger, error);
      }
      return;
    }
    if (this.interfaceMissing) {
      this.interfaceMissing = false;
      this.deps.logger.info({ event: 'interface.ready', interface: this.iface, why }, `interface ${this.iface} is back`);
    }
    const { keyChanged, moved } = this.adopt(fresh);
    if (keyChanged) {
      this.deps.logger.info({ event: 'config.reloaded', interface: this.iface, why, keyChanged: true }, 'interface key changed');
    }
    this.sessions.retainPeers(new Set(fresh.config.peers.keys()));
    // Endpoints that moved between two reads without us: WireGuard roamed on a packet it was let
    // in. Told from the endpoint believed before; a change being confirmed is told by its
    // confirmation, with how it was made.
    for (const { peer, to } of moved) if (peer.handedOver === undefined) this.roam.changed(peer.publicKey, to, 'roamed');
    this.sniffer.updateFilter();
  }

  /** Takes a read of the interface; every endpoint it names is a peer's, for admission. */
  private adopt(fresh: Shown): ReturnType<Peers['adopt']> {
    for (const peer of fresh.config.peers.values()) if (peer.endpoint !== undefined) this.rateLimit.notePeerEndpoint(peer.endpoint);
    return this.peers.adopt(fresh);
  }

  /** Resolves when every queued task has been handled and the replay watermarks are on disk. */
  async settled(): Promise<void> {
    await this.roam.settled();
    await this.deps.watermarks.durable();
  }

  /** The peers as last read from `wg show` (or as last changed here), and the listen port. */
  view(): { readonly listenPort: number; readonly peers: readonly PeerView[] } {
    return { listenPort: this.peers.listenPort ?? 0, peers: this.peers.configured().map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint })) };
  }

  /**
   * What the endpoint registry serves, from what this listener already holds (no `wg` read):
   * each configured peer's believed endpoint, and its allowed IPs and latest handshake as the
   * last `wg show` said. Never a key other than the peer's public key.
   */
  registryModel(): ModelPeer[] {
    return this.peers.configured().map((peer) => {
      const config = this.peers.configOf(peer);
      return { publicKey: peer.publicKey, endpoint: peer.endpoint, allowedIps: config?.allowedIps ?? [], latestHandshake: config?.latestHandshake ?? 0 };
    });
  }

  /** reason → how many packets were ignored for it */
  get ignored(): ReadonlyMap<IgnoreReason, number> {
    return this.counts.ignored;
  }

  /** verified and fresh: the initiation.accepted log lines */
  get authentic(): number {
    return this.counts.authentic;
  }

  /** authentic and carried out: handed to WireGuard and taken up, or the endpoint set (or already current) */
  get accepted(): number {
    return this.counts.accepted;
  }

  get updated(): number {
    return this.counts.updated;
  }

  get injected(): number {
    return this.counts.injected;
  }

  get sessionsLearned(): number {
    return this.counts.sessionsLearned;
  }

  /** authentic (verified, fresh) initiations, endpoint updates and ignored-by-reason counts of one peer. */
  peerCounts(peer: string): Record<string, number> {
    return this.counts.peerCounts(peer);
  }

  counters(): Record<string, number> {
    return { ...this.counts.record(), ...this.expiry.record() };
  }

  /** Packets received and lost by the capture, over every capture opened (for the status output). */
  captureStats(): CaptureStats {
    return this.sniffer.stats();
  }

  /** Stops capturing and waits for queued work to finish; leaves the live indices behind. */
  async stop(): Promise<void> {
    this.deps.destroyEvents?.close();
    this.handshake.stop();
    this.roam.stop();
    this.rateLimit.stop();
    this.sniffer.stop();
    await this.settled();
    this.endpoints.close();
    this.sessions.leave();
    this.counts.stop();
  }
}
