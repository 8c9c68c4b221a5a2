/**
 * Keeps a capture open for a daemon: when it fails after opening (its device went down or
 * away), it is reopened with backoff until the device is back, each failure logged as an
 * `error` line. The first open throws, so a bad device or missing permission at startup is
 * the caller's clear error; later failures never are.
 *
 * It also watches libpcap's drop counter (packets the kernel ring had no room for, genuine
 * ones among them under a flood): growth is logged as `capture.drops`, at most once every
 * DROP_LOG_EVERY_MS, and the totals over every capture it opened are in stats().
 *
 * With a pace (capture-pace.ts), it reads the received counter every PACE_CHECK_MS and, when the
 * pace wants the other mode (immediate or blocks), swaps in a capture opened in that mode the way
 * replace() swaps a filter: the new one first, the old one kept for the overlap, nothing lost.
 */
import type { Capture, CaptureOptions, CaptureStats, ScreenVerdict } from './capture.js';
import type { CapturePace } from './capture-pace.js';
import type { LinkType } from './packet.js';
import { isReconfigError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { LogLimiter } from '../common/log-limit.js';

export interface CaptureKeeperOptions {
  readonly logger: Logger;
  readonly device: string;
  readonly openCapture: (options: CaptureOptions) => Capture;
  readonly onFrame: (frame: Buffer, timestampMs: number, verdict: ScreenVerdict) => void;
  /** called after every successful open, to log the daemon's own `listening` line; `filter`
   *  when only the filter was replaced on a working capture */
  readonly onOpen: (capture: Capture, reopened: boolean | 'filter') => void;
  /** waits between reopen attempts, the last one repeating */
  readonly retryMs?: readonly number[];
  /** the kernel's ring for this capture, in bytes; the capture's default when absent */
  readonly bufferSize?: number;
  /** bytes kept of each packet (see capture.ts); the kernel ring holds more packets when small */
  readonly snapLength?: number;
  readonly screen?: CaptureOptions['screen'];
  /** a fixed buffer timeout (capture.ts; 0, the default, is immediate mode), when there is no pace */
  readonly bufferTimeoutMs?: number;
  /** chooses immediate or batch mode from the packet rate; overrides bufferTimeoutMs */
  readonly pace?: CapturePace;
  /** how often the drop counter is read (tests shorten it) */
  readonly dropCheckMs?: number;
  /** how often the pace is given the received counter (tests shorten it) */
  readonly paceCheckMs?: number;
}

export const CAPTURE_RETRY_MS = [500, 1000, 2000, 5000, 10_000] as const;
const DROP_CHECK_MS = 1000;
export const DROP_LOG_EVERY_MS = 5000;
/** How long a replaced capture stays open beside its successor (see replace()). */
export const OVERLAP_MS = 50;
/**
 * How often the pace measures the rate: a flood is captured in immediate mode (one wake-up per
 * packet) for at most about this long before blocks take over.
 */
export const PACE_CHECK_MS = 250;
/** Frames remembered during an overlap to pass each on once: a fixed ceiling, whatever the rate. */
export const MAX_OVERLAP_SEEN = 4096;
/** Timer and jiffy slack on a block's delivery, past its buffer timeout (CONFIG_HZ=100: 10 ms). */
const BLOCK_SLACK_MS = 20;

export class CaptureKeeper {
  private capture: Capture | undefined;
  private filter: string | undefined;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** captures replaced but still open for the overlap, and what was passed on meanwhile */
  /** with what each had counted when its successor opened: what it counts after that, the successor sees too */
  private readonly retiring = new Map<Capture, CaptureStats>();
  private readonly seen = new Set<string>();
  private overlapUntil = 0;
  /** the buffer timeout the current capture was opened with */
  private openedTimeoutMs = 0;
  private paceTimer: NodeJS.Timeout | undefined;
  /** what captures closed before the current one counted */
  private closedTotals: CaptureStats = { received: 0, dropped: 0 };
  private dropTimer: NodeJS.Timeout | undefined;
  private droppedLogged = 0;
  private dropLoggedAt = Number.NEGATIVE_INFINITY;
  /** failures and filter updates that fail: a device that flaps, or a flood of updates, is a few lines and a count */
  private readonly captureLog: LogLimiter;
  /** said once: a filter could not be replaced in place */
  private inPlaceFailed = false;

  constructor(private readonly options: CaptureKeeperOptions) {
    this.captureLog = new LogLimiter(options.logger);
  }

  /**
   * Packets received and dropped over every capture opened so far. A replaced capture counts up
   * to its successor's opening (what it counts later, such as its ring filling during the overlap
   * while the successor takes the same packets, is no loss), also while it retires: the totals
   * only grow, so the pace reads a swap as no burst.
   */
  stats(): CaptureStats {
    let { received, dropped } = this.closedTotals;
    for (const figures of [this.currentStats(), ...this.retiring.values()]) {
      received += figures.received;
      dropped += figures.dropped;
    }
    return { received, dropped };
  }

  private currentStats(): CaptureStats {
    try {
      return this.capture?.stats() ?? { received: 0, dropped: 0 };
    } catch {
      // a capture whose device just went away: its figures come with its close
      return { received: 0, dropped: 0 };
    }
  }

  /** What a capture opened now gets: the pace's mode, else the fixed timeout, else immediate mode. */
  private bufferTimeoutMs(): number {
    return this.options.pace?.bufferTimeoutMs ?? this.options.bufferTimeoutMs ?? 0;
  }

  private captureOptions(filter: string, bufferTimeoutMs: number): CaptureOptions {
    return {
      device: this.options.device,
      ...(this.options.bufferSize === undefined ? {} : { bufferSize: this.options.bufferSize }),
      filter,
      onFrame: (frame, timestampMs, verdict) => this.deliver(frame, timestampMs, verdict),
      onError: (error) => this.failed(error),
      ...(this.options.snapLength === undefined ? {} : { snapLength: this.options.snapLength }),
      ...(this.options.screen === undefined ? {} : { screen: this.options.screen }),
      bufferTimeoutMs,
    };
  }

  /** Closes a capture for good (capture.ts releases its socket) and keeps its counts (or `counted`). */
  private retire(capture: Capture | undefined, counted?: CaptureStats): void {
    if (capture === undefined) return;
    capture.close();
    const last = counted ?? capture.stats();
    this.closedTotals = { received: this.closedTotals.received + last.received, dropped: this.closedTotals.dropped + last.dropped };
  }

  /** Logs drop growth, rate-limited; runs every DROP_CHECK_MS while a capture is kept. */
  private checkDrops(): void {
    const { received, dropped } = this.stats();
    const now = performance.now();
    if (dropped <= this.droppedLogged || now - this.dropLoggedAt < DROP_LOG_EVERY_MS) return;
    this.options.logger.warn(
      { event: 'capture.drops', device: this.options.device, dropped, received, since: dropped - this.droppedLogged },
      `the capture on ${this.options.device} lost ${dropped - this.droppedLogged} packets for lack of buffer space (${dropped} in all)`,
    );
    this.droppedLogged = dropped;
    this.dropLoggedAt = now;
  }

  get link(): LinkType | undefined {
    return this.capture?.link;
  }

  /** Opens (or reopens) the capture with `filter`; throws if that fails. */
  open(filter: string): void {
    clearTimeout(this.retryTimer);
    this.retire(this.capture);
    this.capture = undefined;
    this.filter = filter;
    const timeout = this.bufferTimeoutMs();
    this.capture = this.options.openCapture(this.captureOptions(filter, timeout));
    this.openedTimeoutMs = timeout;
    this.dropTimer ??= setInterval(() => this.checkDrops(), this.options.dropCheckMs ?? DROP_CHECK_MS).unref();
    if (this.options.pace !== undefined) this.paceTimer ??= setInterval(() => this.checkPace(), this.options.paceCheckMs ?? PACE_CHECK_MS).unref();
    const reopened = this.failures > 0;
    this.failures = 0;
    this.options.onOpen(this.capture, reopened);
  }

  /** Opens again now with `filter` (default: the last one); a failure goes the retry path. */
  reopen(filter = this.filter): void {
    if (this.stopped || filter === undefined) return;
    try {
      this.open(filter);
    } catch (error) {
      this.failed(error as Error);
    }
  }

  /**
   * Puts `filter` on the open capture in place of the old one (capture.ts's setFilter: atomic,
   * nothing opened, the event loop not held). Where that cannot be done, swaps it in without a
   * gap: the capture with the new filter is opened first and the old one is kept for OVERLAP_MS
   * more, because a new libpcap socket misses what arrives while its filter is being installed
   * (measured: about 10 ms of packets at every swap). While both are open, a frame seen twice is
   * passed on once. On failure the old capture and its filter stay.
   */
  replace(filter: string): void {
    const capture = this.capture;
    if (this.stopped || capture === undefined) return this.swap(filter, this.bufferTimeoutMs(), 'filter');
    const set = capture.setFilter?.(filter);
    if (set?.ok === true) {
      this.filter = filter;
      this.options.onOpen(capture, 'filter');
      return;
    }
    if (set !== undefined && !this.inPlaceFailed) {
      this.inPlaceFailed = true;
      this.options.logger.info({ event: 'capture.filter-in-place', device: this.options.device, reason: set.reason }, `the capture filter cannot be replaced in place (${set.reason}): a new capture is opened for each change`);
    }
    this.swap(filter, this.bufferTimeoutMs(), 'filter');
  }

  /** Gives the pace the received counter; swaps in a capture of the mode it wants. */
  private checkPace(): void {
    const pace = this.options.pace;
    if (pace === undefined || this.stopped || this.capture === undefined || this.filter === undefined) return;
    const before = pace.mode;
    pace.observe(this.stats().received, performance.now());
    if (pace.bufferTimeoutMs === this.openedTimeoutMs) return;
    if (pace.mode !== before) {
      this.options.logger.info(
        { event: 'capture.mode', device: this.options.device, mode: pace.mode, perSecond: Math.round(pace.perSecond) },
        pace.mode === 'batch'
          ? `${Math.round(pace.perSecond)} packets a second on ${this.options.device}: captured in blocks at most ${pace.bufferTimeoutMs} ms late`
          : `${this.options.device} is quiet again: each packet captured as it comes`,
      );
    }
    // a swap that failed (logged there) is tried again at the next check
    this.swap(this.filter, pace.bufferTimeoutMs, 'pace');
  }

  private swap(filter: string, bufferTimeoutMs: number, why: 'filter' | 'pace'): void {
    if (this.stopped) return;
    const old = this.capture;
    if (old === undefined) return this.reopen(filter);
    let fresh: Capture;
    try {
      fresh = this.options.openCapture(this.captureOptions(filter, bufferTimeoutMs));
    } catch (error) {
      this.captureLog.log(
        'error',
        why === 'filter' ? 'capture.filter-failed' : 'capture.mode-failed',
        { event: 'error', code: isReconfigError(error) ? error.code : 'E_CAPTURE' },
        `${why === 'filter' ? 'capture filter not updated' : 'capture mode not changed'}: ${(error as Error).message.replace(/\.$/, '')}`,
      );
      return;
    }
    // The old capture hands over its last block before it is closed, and frames the new one
    // passes on up to its own timeout late are still checked against those the old one did.
    const oldTimeoutMs = this.openedTimeoutMs;
    const counted = this.currentStats();
    this.capture = fresh;
    this.filter = filter;
    this.openedTimeoutMs = bufferTimeoutMs;
    const retireAfter = OVERLAP_MS + (oldTimeoutMs > 0 ? oldTimeoutMs + BLOCK_SLACK_MS : 0);
    this.overlapUntil = Math.max(this.overlapUntil, performance.now() + retireAfter + (bufferTimeoutMs > 0 ? bufferTimeoutMs + BLOCK_SLACK_MS : 0));
    this.retiring.set(old, counted);
    setTimeout(() => {
      this.retiring.delete(old);
      this.retire(old, counted);
    }, retireAfter).unref();
    if (why === 'filter') this.options.onOpen(fresh, 'filter');
  }

  /** Every frame of every capture: passed on once, also while two captures overlap. */
  private deliver(frame: Buffer, timestampMs: number, verdict: ScreenVerdict): void {
    if (this.retiring.size > 0 || performance.now() < this.overlapUntil) {
      const key = frame.toString('base64');
      if (this.seen.has(key)) return;
      // Under a flood the overlap sees more than this: the rest is passed on unchecked (a frame
      // passed on twice is one the receive path counts again, nothing more).
      if (this.seen.size < MAX_OVERLAP_SEEN) this.seen.add(key);
    } else if (this.seen.size > 0) this.seen.clear();
    this.options.onFrame(frame, timestampMs, verdict);
  }

  private failed(error: Error): void {
    if (this.stopped) return;
    this.retire(this.capture);
    this.capture = undefined;
    const retries = this.options.retryMs ?? CAPTURE_RETRY_MS;
    const delay = retries[Math.min(this.failures, retries.length - 1)] ?? 10_000;
    this.failures++;
    this.captureLog.log(
      'error',
      'capture.failed',
      { event: 'error', code: isReconfigError(error) ? error.code : 'E_CAPTURE', retryMs: delay },
      `capture on ${this.options.device} failed: ${error.message.replace(/\.$/, '')}; reopening in ${delay} ms`,
    );
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.stopped && this.capture === undefined) this.reopen();
    }, delay);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.dropTimer);
    clearInterval(this.paceTimer);
    for (const [capture, counted] of this.retiring) this.retire(capture, counted);
    this.retiring.clear();
    this.seen.clear();
    this.retire(this.capture);
    this.capture = undefined;
    this.captureLog.stop();
  }
}
