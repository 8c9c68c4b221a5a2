/**
 * An endpoint change as the listener tells it: who moved the endpoint, from where to where,
 * and when it was confirmed. The listener's last stage; everything that tells the world (log,
 * status file, persisted config, hook) subscribes here.
 */

/** Who moved the endpoint: WireGuard on a packet we handed it, our `wg set`, or WireGuard on its own. */
export type ChangeHow = 'injected' | 'set' | 'roamed';

export interface EndpointChange {
  readonly peer: string;
  readonly from: string | undefined;
  readonly to: string;
  readonly how: ChangeHow;
  /** wall-clock ms when the change was confirmed */
  readonly at: number;
}

/** Those told of every change, in the order they subscribed. */
export class ChangeListeners {
  private readonly listeners: ((change: EndpointChange) => void)[] = [];

  add(listener: (change: EndpointChange) => void): void {
    this.listeners.push(listener);
  }

  emit(change: EndpointChange): void {
    for (const listener of this.listeners) listener(change);
  }
}

/**
 * Wall-clock ms, for what is told and logged (a change's `at`, the latencies from the capture's
 * own timestamps, which are wall-clock too); never compared with the injected clock.
 */
export const wallClock = (): number => Date.now();

/**
 * Wall-clock ms with the fraction (performance.timeOrigin + performance.now()): for latencies
 * against a capture's microsecond timestamps, which Date.now()'s whole milliseconds would blur
 * into negative figures.
 */
export const preciseWallClock = (): number => performance.timeOrigin + performance.now();
