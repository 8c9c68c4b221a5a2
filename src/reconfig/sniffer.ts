/**
 * The listener's capture: kept open by the capture keeper (reopened when its device comes
 * back or the listen port changes, its filter replaced in place when only the endpoints do),
 * and the screen's first look at each frame in the capture's own buffer (screen.ts). The
 * screen's verdict travels with the frame as a value; nothing downstream reads it back.
 */
import { CaptureKeeper } from '../net/capture-keeper.js';
import type { Logger } from '../common/log.js';
import { CapturePace, type CapturePaceOptions } from '../net/capture-pace.js';
import { SCREEN_DROP, SCREEN_PASS, type Capture, type CaptureOptions, type CaptureStats, type ScreenVerdict } from '../net/capture.js';
import { wireguardFilter, type ExcludedSource } from '../net/filter.js';
import type { LinkType } from '../net/link.js';
import type { Counters } from './counters.js';
import { endpointKeyOfParsed, endpointKeyOfParts, parseEndpoint } from './endpoint.js';
import type { Peers } from './peers.js';
import { dataReceiverAt, screenFrame } from './screen.js';
import type { IgnoreReason } from './counters.js';

/**
 * Under load the kernel hands captured packets over in blocks at most this many ms late: under
 * a flood one wake-up reads hundreds, and a genuine packet waits at most this long.
 */
export const CAPTURE_BUFFER_TIMEOUT_MS = 10;
/**
 * When the capture is under load (capture-pace.ts). A quiet R2 captures a few packets a second
 * (its own handshake messages, a peer's first packets from a new address, a scan), each handed
 * over as it comes; from 500 a second on, blocks take over until the rate has stayed under 100 a
 * second for 5 s.
 */
export const CAPTURE_PACE: CapturePaceOptions = {
  batchTimeoutMs: CAPTURE_BUFFER_TIMEOUT_MS,
  batchAbovePerSecond: 500,
  immediateBelowPerSecond: 100,
  quietForMs: 5000,
};
/**
 * How long endpoint changes are gathered before the filter that leaves their data out is
 * replaced: until none has come for FILTER_UPDATE_AFTER_MS, and no longer than
 * FILTER_UPDATE_WITHIN_MS after the first. Each replacement opens a capture and closes the old
 * one, and the kernel sets up and tears down a ring only after RCU grace periods
 * (packet_set_ring's and packet_release's synchronize_net): the event loop stops for 5-60 ms,
 * measured, and every packet captured meanwhile waits. Peers that roam together (a carrier's
 * NAT remapping all its customers) are one replacement, after the last of them, instead of one
 * in the middle of their first packets; meanwhile their data packets reach the receive path and
 * are dropped there (`from-endpoint`). A filter that must capture an endpoint again (its
 * conntrack entry expired) is replaced at once.
 */
export const FILTER_UPDATE_AFTER_MS = 250;
export const FILTER_UPDATE_WITHIN_MS = 2000;
/**
 * Bytes kept of each captured packet: a whole data packet of a 1500-byte path with every header
 * (it is re-sent as it came), and a handshake message with room to spare. In immediate mode
 * libpcap's kernel ring has one fixed-size slot per packet, sized by this plus its headers, in
 * page-sized blocks: at 64 KiB a 1 MiB ring holds 16 packets, and a busy moment drops R2's own
 * handshake messages; at 2048 bytes a slot is a little over 2 KiB, one per 4 KiB page, and the
 * 4 MiB ring took 8 MB of kernel memory for about 1,960 slots (measured: the mmap'd size); at
 * 1920 two slots share a page, 2,080 slots in 4.3 MB. A larger data packet (jumbo frames) is cut
 * short, so it is only counted.
 */
export const SNAP_LENGTH = 1920;
/** The screen checked this initiation's mac1 in place (screen.ts): the full path need not again. */
const SCREEN_MAC1_CHECKED: ScreenVerdict = 2;

/** What the screen vouched for: an initiation's mac1, or nothing (the full path checks all). */
export type Screened = 'mac1-ok' | 'unchecked';
export const screenedOf = (verdict: ScreenVerdict): Screened => (verdict === SCREEN_MAC1_CHECKED ? 'mac1-ok' : 'unchecked');

export interface SnifferDeps {
  readonly logger: Logger;
  readonly iface: string;
  readonly device: string;
  readonly openCapture: (options: CaptureOptions) => Capture;
  readonly peers: Peers;
  readonly counters: Counters;
  /** what the `listening` line says of the listener, as it is when the capture opens */
  readonly listening: () => Readonly<Record<string, unknown>>;
  readonly onFrame: (link: LinkType, frame: Buffer, timestampMs: number, screened: Screened) => void;
  /** why data naming `index` is not wanted now (no live session, its peer resting), if it is not */
  readonly dataRefusal?: (index: number) => IgnoreReason | undefined;
  /** of these endpoints, those whose data the filter must not leave out (no conntrack entry: expiry.ts) */
  readonly lifted?: (endpoints: ReadonlySet<string>) => ReadonlySet<string>;
}

export class Sniffer {
  private readonly keeper: CaptureKeeper;
  private capturePort = 0;
  private captureFilter = '';
  private filterUpdate: { readonly timer: NodeJS.Timeout | NodeJS.Immediate; readonly soon: boolean; readonly firstAt: number } | undefined;
  /** every peer's endpoint as of the current filter, as endpointKeyOfParts keys */
  private endpointKeys = new Set<string>();
  /** those the current filter leaves out (all but the lifted ones) */
  private excludedKeys = new Set<string>();
  /** those the capture's filter leaves out now (excludedKeys runs ahead while an update waits) */
  private filterExcludes = new Set<string>();
  private stopped = false;

  constructor(private readonly deps: SnifferDeps) {
    this.keeper = new CaptureKeeper({
      logger: deps.logger,
      device: deps.device,
      openCapture: deps.openCapture,
      pace: new CapturePace(CAPTURE_PACE),
      screen: (frame, length) => this.screen(frame, length),
      snapLength: SNAP_LENGTH,
      onFrame: (frame, timestampMs, verdict) => {
        const link = this.keeper.link;
        if (link !== undefined) deps.onFrame(link, frame, timestampMs, screenedOf(verdict));
      },
      onOpen: (capture, reopened) => this.opened(capture, reopened),
    });
  }

  get link(): LinkType | undefined {
    return this.keeper.link;
  }

  /** Opens the capture for the peers as read; errors are thrown to the caller. */
  open(): void {
    this.captureFilter = this.filterFor();
    this.filterExcludes = this.excludedKeys;
    this.capturePort = this.deps.peers.listenPort ?? 0;
    this.keeper.open(this.captureFilter);
  }

  /** Packets received and lost by the capture, over every capture opened (for the status output). */
  stats(): CaptureStats {
    return this.keeper.stats();
  }

  /** Is this a peer's endpoint the filter leaves out? (one may slip in while the filter is replaced) */
  excludes(address: string, port: number): boolean {
    return this.excludedKeys.has(endpointKeyOfParts(address, port));
  }

  /** Is this (an endpointKeyOfParts key) a peer's endpoint, left out of the filter or not? */
  isEndpoint(key: string): boolean {
    return this.endpointKeys.has(key);
  }

  /** Every peer's endpoint as of the current filter. */
  endpoints(): ReadonlySet<string> {
    return this.endpointKeys;
  }

  /**
   * Rebuilds the capture filter from the current endpoints: at once (next turn of the event loop)
   * when it must capture an endpoint's data again, else once no change has come for
   * FILTER_UPDATE_AFTER_MS (at most FILTER_UPDATE_WITHIN_MS after the first). What it will leave out is left out of excludes() now, so data from a new endpoint that
   * reaches the screen meanwhile is not handed over (it would come to nothing, and its peer rest).
   */
  scheduleFilterUpdate(): void {
    if (this.stopped) return;
    this.filterFor();
    const lift = [...this.filterExcludes].some((key) => this.endpointKeys.has(key) && !this.excludedKeys.has(key));
    const pending = this.filterUpdate;
    if (pending?.soon === true) return;
    const run = (): void => {
      this.filterUpdate = undefined;
      this.updateFilter();
    };
    if (lift) {
      this.cancelFilterUpdate();
      this.filterUpdate = { timer: setImmediate(run), soon: true, firstAt: 0 };
      return;
    }
    // Another change while one waits: the wait starts again, up to FILTER_UPDATE_WITHIN_MS after the first.
    const now = performance.now();
    const firstAt = pending?.firstAt ?? now;
    const delay = Math.max(0, Math.min(FILTER_UPDATE_AFTER_MS, firstAt + FILTER_UPDATE_WITHIN_MS - now));
    this.cancelFilterUpdate();
    this.filterUpdate = { timer: setTimeout(run, delay), soon: false, firstAt };
  }

  private cancelFilterUpdate(): void {
    const pending = this.filterUpdate;
    if (pending === undefined) return;
    if (pending.soon) clearImmediate(pending.timer as NodeJS.Immediate);
    else clearTimeout(pending.timer as NodeJS.Timeout);
    this.filterUpdate = undefined;
  }

  updateFilter(): void {
    const port = this.deps.peers.listenPort;
    if (port === undefined || this.stopped) return;
    this.cancelFilterUpdate();
    const filter = this.filterFor();
    this.filterExcludes = this.excludedKeys;
    if (filter === this.captureFilter) return;
    const portChanged = port !== this.capturePort;
    this.captureFilter = filter;
    this.capturePort = port;
    if (portChanged) this.keeper.reopen(filter);
    else this.keeper.replace(filter);
  }

  stop(): void {
    this.stopped = true;
    this.cancelFilterUpdate();
    this.keeper.stop();
  }

  /**
   * The capture filter for the believed endpoints, leaving out each one's data unless its
   * exclusion is lifted (its conntrack entry is gone); also notes them (endpointKeys).
   */
  private filterFor(): string {
    const endpoints: { key: string; source: ExcludedSource }[] = [];
    const keys = new Set<string>();
    for (const peer of this.deps.peers.configured()) {
      const endpoint = peer.endpoint === undefined ? undefined : parseEndpoint(peer.endpoint);
      if (endpoint === undefined) continue;
      const key = endpointKeyOfParsed(endpoint);
      endpoints.push({ key, source: endpoint });
      keys.add(key);
    }
    const lifted = this.deps.lifted?.(keys);
    const excluded = lifted === undefined || lifted.size === 0 ? endpoints : endpoints.filter((e) => !lifted.has(e.key));
    this.endpointKeys = keys;
    this.excludedKeys = new Set(excluded.map((e) => e.key));
    return wireguardFilter(this.deps.peers.listenPort ?? 0, excluded.map((e) => e.source));
  }

  private opened(capture: Capture, reopened: boolean | 'filter'): void {
    const { logger, iface, peers } = this.deps;
    if (reopened === 'filter') {
      const excluded = this.excludedKeys.size;
      logger.debug({ event: 'filter.updated', interface: iface, excluded, lifted: this.endpointKeys.size - excluded }, 'capture filter updated');
      return;
    }
    logger.info(
      {
        event: 'listening',
        interface: iface,
        device: capture.device,
        link: capture.link,
        port: this.capturePort,
        peers: peers.configured().length,
        ...this.deps.listening(),
        ...(reopened ? { reopened } : {}),
      },
      `watching ${capture.device} for WireGuard packets to port ${this.capturePort}`,
    );
  }

  /**
   * The capture's first look, in its reused buffer, before any copy (screen.ts): MAC1_CHECKED
   * only for an initiation whose mac1 it did check, PASS for what it left to the full path.
   */
  private screen(frame: Buffer, length: number): ScreenVerdict {
    const { responder, listenPort } = this.deps.peers;
    const link = this.keeper.link;
    if (responder === undefined || listenPort === undefined || link === undefined) return SCREEN_DROP;
    const screened = screenFrame(link, frame, length, listenPort, responder);
    if (screened === 'mac1-ok') return SCREEN_MAC1_CHECKED;
    if (screened === 'unchecked') {
      // Data is decoded only when its session is live and its peer may take a hand-over now.
      const index = this.deps.dataRefusal === undefined ? -1 : dataReceiverAt(link, frame, length, listenPort);
      const refused = index < 0 ? undefined : this.deps.dataRefusal?.(index);
      if (refused === undefined) return SCREEN_PASS;
      this.deps.counters.ignore(refused, {}, 'data.ignored');
      return SCREEN_DROP;
    }
    this.deps.counters.ignore(screened, {}, screened === 'wrong-port' ? 'packet.ignored' : 'initiation.ignored');
    return SCREEN_DROP;
  }
}
