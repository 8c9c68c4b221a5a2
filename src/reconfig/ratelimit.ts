/**
 * The receive path's rate limiter: one admission (admission.ts, the pure policy) per kind of
 * packet that costs work, the initiations' Noise steps and the data packets handed to
 * WireGuard, and the timers that give waiting packets their turns. Used before any expensive
 * work; what it drops is counted as rate-limited.
 */
import type { Datagram } from '../net/packet.js';
import { Admission, DATA_ADMISSION } from './admission.js';
import type { Counters } from './counters.js';
import { endpointAddress } from './endpoint.js';

/** A packet that passed the cheap checks, waiting for its turn (admission.ts). */
export interface HeldPacket {
  readonly datagram: Datagram;
  readonly capturedAt: number;
  /** a data packet: the peer whose session its receiver index names */
  readonly peer?: string;
}

/** Heap a waiting packet takes besides its payload (the Datagram record, its strings). */
const HELD_OVERHEAD_BYTES = 512;
const heldSize = (held: HeldPacket): number => held.datagram.payload.length + HELD_OVERHEAD_BYTES;
/** Waiting packets are looked at no more often than this. */
const ADMISSION_TICK_MS = 10;

/** What is done with an admitted packet, and the event its rate-limited drops are counted under. */
export interface Gate {
  readonly admission: Admission<HeldPacket>;
  readonly work: (held: HeldPacket) => void;
  readonly event: string;
}

export class RateLimit {
  readonly initiations: Admission<HeldPacket>;
  readonly data: Admission<HeldPacket>;
  private readonly drainTimers = new Map<Admission<HeldPacket>, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly counters: Counters,
    initiations: Admission<HeldPacket> | undefined,
    data: Admission<HeldPacket> | undefined,
  ) {
    this.initiations = initiations ?? new Admission<HeldPacket>({}, undefined, heldSize);
    this.data = data ?? new Admission<HeldPacket>(DATA_ADMISSION, undefined, heldSize);
  }

  /** A peer's endpoint, confirmed or as `wg show` says: its address gets the reserved share. */
  notePeerEndpoint(endpoint: string): void {
    const address = endpointAddress(endpoint);
    this.initiations.notePeerEndpoint(address);
    this.data.notePeerEndpoint(address);
  }

  /**
   * Offers a packet to the gate's admission: its work runs now, or later from a drain, or never
   * (counted as rate-limited). One work per gate: what it needs travels in `held`.
   */
  admit(gate: Gate, held: HeldPacket): void {
    const { admission, work, event } = gate;
    const dropped = admission.dropped;
    if (admission.offer(held.datagram.src, () => held)) work(held);
    else this.scheduleDrain(gate);
    if (admission.dropped > dropped) this.counters.ignore('rate-limited', { src: held.datagram.src }, event, admission.dropped - dropped);
  }

  /** Waiting packets get their turns as tokens come (admission.ts). */
  private scheduleDrain(gate: Gate): void {
    const { admission, work, event } = gate;
    if (this.drainTimers.has(admission) || this.stopped) return;
    const wait = admission.nextDrainMs();
    if (wait === undefined) return;
    const timer = setTimeout(() => {
      this.drainTimers.delete(admission);
      if (this.stopped) return;
      const dropped = admission.dropped;
      for (const held of admission.drain()) work(held);
      if (admission.dropped > dropped) this.counters.ignore('rate-limited', {}, event, admission.dropped - dropped);
      this.scheduleDrain(gate);
    }, Math.max(ADMISSION_TICK_MS, wait));
    timer.unref();
    this.drainTimers.set(admission, timer);
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.drainTimers.values()) clearTimeout(timer);
    this.drainTimers.clear();
  }
}
