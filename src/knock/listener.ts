/**
 * capture → decode → detect, for one port range. The kernel filter passes only probes; what
 * reaches onFrame is decoded and handed to the detector, and each knock to `onKnock`.
 *
 * The capture outlives its device: when it fails (the device went down or away), it is
 * reopened with backoff until the device is back. The filter names no address, so a change
 * of the device's addresses needs nothing at all.
 */
import { CaptureKeeper } from '../net/capture-keeper.js';
import type { Logger } from '../common/log.js';
import { LogLimiter } from '../common/log-limit.js';
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

/** The kernel ring for knock probes (the capture's default is 1 MiB, for reconfig-wg's traffic). */
export const KNOCK_BUFFER_SIZE = 256 * 1024;

export class KnockListener {
  probes = 0;
  knocks = 0;
  /** reason → count, for frames that were not (new) knocks */
  readonly ignored = new Map<string, number>();

  private readonly keeper: CaptureKeeper;
  /** ignored probes, per reason: a flood of them is a few lines and a count */
  private readonly ignoredLog: LogLimiter;

  constructor(private readonly deps: ListenerDeps) {
    this.ignoredLog = new LogLimiter(deps.logger);
    const { device, basePort, range } = deps;
    this.keeper = new CaptureKeeper({
      logger: deps.logger,
      device,
      openCapture: deps.openCapture,
      retryMs: deps.retryMs,
      // knock probes are a few a second at most: a small ring is plenty, and it is memory
      // every router pays for (README, footprint)
      bufferSize: KNOCK_BUFFER_SIZE,
      onFrame: (frame, timestampMs) => this.onFrame(frame, timestampMs),
      onOpen: (capture, reopened) =>
        deps.logger.info(
          { event: 'listening', device: capture.device, link: capture.link, basePort, range, ...(reopened ? { reopened } : {}) },
          `watching ${capture.device} for traceroute probes to ports ${basePort}-${basePort + range - 1}`,
        ),
    });
  }

  /** Opens the capture; a failure here is the caller's to report (bad device, no permission). */
  start(): void {
    this.keeper.open(knockFilter({ basePort: this.deps.basePort, range: this.deps.range }));
  }

  /** Opens the capture again now (SIGHUP); a failure goes through the retry path. */
  reopen(): void {
    this.keeper.reopen();
  }

  private ignore(reason: string, details: Record<string, unknown> = {}): void {
    const count = (this.ignored.get(reason) ?? 0) + 1;
    this.ignored.set(reason, count);
    this.ignoredLog.log('debug', `probe.ignored.${reason}`, { event: 'probe.ignored', reason, count, ...details }, `ignored: ${reason}`);
  }

  /** Every captured frame comes through here. Never throws. */
  onFrame(frame: Buffer, timestampMs: number): void {
    const link = this.keeper.link;
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
    this.keeper.stop();
    this.ignoredLog.stop();
  }
}
