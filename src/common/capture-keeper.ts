/**
 * Keeps a capture open for a daemon: when it fails after opening (its device went down or
 * away), it is reopened with backoff until the device is back, each failure logged as an
 * `error` line. The first open throws, so a bad device or missing permission at startup is
 * the caller's clear error; later failures never are.
 */
import type { Capture, CaptureOptions, CaptureStats } from '../net/capture.js';
import type { LinkType } from '../net/packet.js';
import { isReconfigError } from './errors.js';
import type { Logger } from './log.js';

export interface CaptureKeeperOptions {
  readonly logger: Logger;
  readonly device: string;
  readonly openCapture: (options: CaptureOptions) => Capture;
  readonly onFrame: (frame: Buffer, timestampMs: number) => void;
  /** called after every successful open, to log the daemon's own `listening` line; `filter`
   *  when only the filter was replaced on a working capture */
  readonly onOpen: (capture: Capture, reopened: boolean | 'filter') => void;
  /** waits between reopen attempts, the last one repeating */
  readonly retryMs?: readonly number[];
  /** the kernel's ring for this capture, in bytes; the capture's default when absent */
  readonly bufferSize?: number;
  /** bytes kept of each packet (see capture.ts); the kernel ring holds more packets when small */
  readonly snapLength?: number;
}

export const CAPTURE_RETRY_MS = [500, 1000, 2000, 5000, 10_000] as const;
/** How long a replaced capture stays open beside its successor (see replace()). */
export const OVERLAP_MS = 50;

export class CaptureKeeper {
  private capture: Capture | undefined;
  private filter: string | undefined;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** captures replaced but still open for the overlap, and what was passed on meanwhile */
  private readonly retiring = new Set<Capture>();
  private readonly seen = new Set<string>();
  private overlapUntil = 0;

  constructor(private readonly options: CaptureKeeperOptions) {}

  get link(): LinkType | undefined {
    return this.capture?.link;
  }

  /** The open capture's counters; undefined while none is open. */
  stats(): CaptureStats | undefined {
    return this.capture?.stats();
  }

  /** Opens (or reopens) the capture with `filter`; throws if that fails. */
  open(filter: string): void {
    clearTimeout(this.retryTimer);
    this.capture?.close();
    this.capture = undefined;
    this.filter = filter;
    this.capture = this.options.openCapture({
      device: this.options.device,
      ...(this.options.bufferSize === undefined ? {} : { bufferSize: this.options.bufferSize }),
      filter,
      onFrame: (frame, timestampMs) => this.deliver(frame, timestampMs),
      onError: (error) => this.failed(error),
      ...(this.options.snapLength === undefined ? {} : { snapLength: this.options.snapLength }),
    });
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
   * Swaps in `filter` without a gap: the capture with the new filter is opened first and the old
   * one is kept for OVERLAP_MS more, because a new libpcap socket misses what arrives while its
   * filter is being installed (measured: about 10 ms of packets at every swap). While both are
   * open, a frame seen twice is passed on once. On failure the old capture stays.
   */
  replace(filter: string): void {
    if (this.stopped) return;
    const old = this.capture;
    if (old === undefined) return this.reopen(filter);
    let fresh: Capture;
    try {
      fresh = this.options.openCapture({
        device: this.options.device,
        ...(this.options.bufferSize === undefined ? {} : { bufferSize: this.options.bufferSize }),
        filter,
        onFrame: (frame, timestampMs) => this.deliver(frame, timestampMs),
        onError: (error) => this.failed(error),
        ...(this.options.snapLength === undefined ? {} : { snapLength: this.options.snapLength }),
      });
    } catch (error) {
      this.options.logger.error(
        { event: 'error', code: isReconfigError(error) ? error.code : 'E_CAPTURE' },
        `capture filter not updated: ${(error as Error).message.replace(/\.$/, '')}`,
      );
      return;
    }
    this.capture = fresh;
    this.filter = filter;
    this.overlapUntil = performance.now() + OVERLAP_MS;
    this.retiring.add(old);
    setTimeout(() => {
      this.retiring.delete(old);
      old.close();
      if (this.retiring.size === 0) this.seen.clear();
    }, OVERLAP_MS).unref();
    this.options.onOpen(fresh, 'filter');
  }

  /** Every frame of every capture: passed on once, also while two captures overlap. */
  private deliver(frame: Buffer, timestampMs: number): void {
    if (this.retiring.size > 0 || performance.now() < this.overlapUntil) {
      const key = frame.toString('base64');
      if (this.seen.has(key)) return;
      this.seen.add(key);
    }
    this.options.onFrame(frame, timestampMs);
  }

  private failed(error: Error): void {
    if (this.stopped) return;
    this.capture?.close();
    this.capture = undefined;
    const retries = this.options.retryMs ?? CAPTURE_RETRY_MS;
    const delay = retries[Math.min(this.failures, retries.length - 1)] ?? 10_000;
    this.failures++;
    this.options.logger.error(
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
    for (const capture of this.retiring) capture.close();
    this.retiring.clear();
    this.seen.clear();
    this.capture?.close();
    this.capture = undefined;
  }
}
