/**
 * capture → decode → detect, for one port range. The kernel filter passes only probes; what
 * reaches onFrame is decoded and handed to the detector, and each knock to `onKnock`.
 *
 * The capture outlives its device: when it fails (the device went down or away), it is
 * reopened with backoff until the device is back. The filter names no address, so a change
 * of the device's addresses needs nothing at all.
 */
import { isReconfigError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Capture, CaptureOptions } from '../net/capture.js';
import { knockFilter } from '../net/filter.js';
import { decodeFrame } from '../net/packet.js';
import type { Knock, KnockDetector } from './detector.js';

export interface ListenerDeps {
  readonly logger: Logger;
  readonly device: string;
  readonly basePort: number;
  readonly range: number;
  readonly detector: KnockDetector;
  readonly openCapture: (options: CaptureOptions) => Capture;
  readonly onKnock: (knock: Knock, capturedAt: number) => void;
  /** waits between reopen attempts, the last one repeating */
  readonly retryMs?: readonly number[];
}

const CAPTURE_RETRY_MS = [500, 1000, 2000, 5000, 10_000] as const;

export class KnockListener {
  probes = 0;
  knocks = 0;
  /** reason → count, for frames that were not (new) knocks */
  readonly ignored = new Map<string, number>();

  private capture: Capture | undefined;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: ListenerDeps) {}

  /** Opens the capture; a failure here is the caller's to report (bad device, no permission). */
  start(): void {
    this.open();
  }

  /** Opens the capture again now (SIGHUP); a failure goes through the retry path. */
  reopen(): void {
    if (this.stopped) return;
    try {
      this.open();
    } catch (error) {
      this.onCaptureError(error as Error);
    }
  }

  private open(): void {
    clearTimeout(this.retryTimer);
    this.capture?.close();
    this.capture = undefined;
    const { device, basePort, range } = this.deps;
    this.capture = this.deps.openCapture({
      device,
      filter: knockFilter({ basePort, range }),
      onFrame: (frame, timestampMs) => this.onFrame(frame, timestampMs),
      onError: (error) => this.onCaptureError(error),
    });
    const reopened = this.failures > 0;
    this.failures = 0;
    this.deps.logger.info(
      { event: 'listening', device: this.capture.device, link: this.capture.link, basePort, range, ...(reopened ? { reopened } : {}) },
      `watching ${this.capture.device} for traceroute probes to ports ${basePort}-${basePort + range - 1}`,
    );
  }

  private onCaptureError(error: Error): void {
    if (this.stopped) return;
    this.capture?.close();
    this.capture = undefined;
    const retries = this.deps.retryMs ?? CAPTURE_RETRY_MS;
    const delay = retries[Math.min(this.failures, retries.length - 1)] ?? 10_000;
    this.failures++;
    this.deps.logger.error(
      { event: 'error', code: isReconfigError(error) ? error.code : 'E_CAPTURE', retryMs: delay },
      `capture on ${this.deps.device} failed: ${error.message.replace(/\.$/, '')}; reopening in ${delay} ms`,
    );
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.stopped || this.capture !== undefined) return;
      try {
        this.open();
      } catch (reopenError) {
        this.onCaptureError(reopenError as Error);
      }
    }, delay);
  }

  private ignore(reason: string, details: Record<string, unknown> = {}): void {
    const count = (this.ignored.get(reason) ?? 0) + 1;
    this.ignored.set(reason, count);
    this.deps.logger.debug({ event: 'probe.ignored', reason, count, ...details }, `ignored: ${reason}`);
  }

  /** Every captured frame comes through here. Never throws. */
  onFrame(frame: Buffer, timestampMs: number): void {
    const link = this.capture?.link;
    if (link === undefined) return;
    const decoded = decodeFrame(link, frame);
    if (!decoded.ok) return this.ignore(decoded.reason);
    const verdict = this.deps.detector.observe(decoded.value);
    if (verdict.kind === 'ignored') return this.ignore(verdict.reason, { src: decoded.value.src });
    this.probes++;
    if (verdict.kind === 'repeat') return this.ignore('same-traceroute', { src: verdict.knock.src, port: verdict.knock.port });
    this.knocks++;
    this.deps.onKnock(verdict.knock, timestampMs);
  }

  counters(): Record<string, number> {
    return { probes: this.probes, knocks: this.knocks, ...Object.fromEntries(this.ignored) };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.capture?.close();
    this.capture = undefined;
  }
}
