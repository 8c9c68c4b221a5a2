/**
 * How a capture hands packets over, chosen from how many it sees. In immediate mode each packet
 * wakes the event loop as it arrives: a peer's first packet after a remap reaches WireGuard well
 * under a millisecond after it came in, but a flood costs one wake-up per packet. In batch mode
 * the kernel hands packets over in blocks (TPACKET_V3) at most `batchTimeoutMs` late: a flood
 * costs one wake-up per block, and every packet waits for its block.
 *
 * A quiet link (R2's own handshake messages and a peer's first packets from a new address are a
 * few a second) is captured in immediate mode. At `batchAbovePerSecond` or more, measured over
 * one check, the capture goes to batch mode at once; it comes back only after `quietForMs` in
 * which every check measured under `immediateBelowPerSecond`. The gap between the two rates and
 * the wait make the switches rare (each one opens a capture beside the old one, see
 * capture-keeper.ts): a sender that toggles its rate gets at most one pair of switches per
 * `quietForMs`, and a steady rate between the two never switches.
 */

export type CaptureMode = 'immediate' | 'batch';

export interface CapturePaceOptions {
  /** the block timeout of batch mode, ms */
  readonly batchTimeoutMs: number;
  /** packets a second that switch to batch mode */
  readonly batchAbovePerSecond: number;
  /** packets a second under which the capture counts as quiet */
  readonly immediateBelowPerSecond: number;
  /** how long it must be quiet before immediate mode comes back, ms */
  readonly quietForMs: number;
}

export class CapturePace {
  private current: CaptureMode = 'immediate';
  private last: { readonly received: number; readonly atMs: number } | undefined;
  /** since when every measured rate was under immediateBelowPerSecond (batch mode only) */
  private quietSince: number | undefined;
  /** the last rate measured, packets a second */
  private measured = 0;

  constructor(readonly options: CapturePaceOptions) {
    if (!(options.immediateBelowPerSecond <= options.batchAbovePerSecond)) throw new RangeError('immediateBelowPerSecond must not exceed batchAbovePerSecond');
  }

  get mode(): CaptureMode {
    return this.current;
  }

  get perSecond(): number {
    return this.measured;
  }

  /** What a capture opened now is given: 0 is immediate mode (capture.ts). */
  get bufferTimeoutMs(): number {
    return this.current === 'batch' ? this.options.batchTimeoutMs : 0;
  }

  /**
   * Takes the captures' running total of packets received (the filter passed them) at `nowMs`;
   * returns the mode now wanted. A total that went down (a capture's figures lost with its
   * device) starts the measurement afresh.
   */
  observe(received: number, nowMs: number): CaptureMode {
    const last = this.last;
    this.last = { received, atMs: nowMs };
    if (last === undefined || received < last.received || nowMs <= last.atMs) return this.current;
    this.measured = ((received - last.received) * 1000) / (nowMs - last.atMs);
    if (this.measured >= this.options.batchAbovePerSecond) {
      this.current = 'batch';
      this.quietSince = undefined;
    } else if (this.current === 'batch') {
      if (this.measured >= this.options.immediateBelowPerSecond) this.quietSince = undefined;
      else {
        // quiet since the start of this measurement
        this.quietSince ??= last.atMs;
        if (nowMs - this.quietSince >= this.options.quietForMs) {
          this.current = 'immediate';
          this.quietSince = undefined;
        }
      }
    }
    return this.current;
  }
}
