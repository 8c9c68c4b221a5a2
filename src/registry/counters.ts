/**
 * What the registry counts, for the status file: queries answered (by their code), queries
 * refused with an error code (by reason), and datagrams ignored without an answer (by reason).
 * A line per ignored or refused datagram goes out at debug level through a LogLimiter, so a
 * flood is a few lines that say how many more there were.
 */
import { LogLimiter } from '../common/log-limit.js';
import type { Logger } from '../common/log.js';

export interface RegistryCounts {
  readonly answered: Readonly<Record<string, number>>;
  readonly refused: Readonly<Record<string, number>>;
  readonly ignored: Readonly<Record<string, number>>;
}

export class RegistryCounters {
  readonly answered = new Map<string, number>();
  readonly refused = new Map<string, number>();
  readonly ignored = new Map<string, number>();
  private readonly limiter: LogLimiter | undefined;

  constructor(logger?: Logger) {
    this.limiter = logger === undefined ? undefined : new LogLimiter(logger);
  }

  private static bump(map: Map<string, number>, key: string): number {
    const total = (map.get(key) ?? 0) + 1;
    map.set(key, total);
    return total;
  }

  answer(rcode: string): void {
    RegistryCounters.bump(this.answered, rcode);
  }

  refuse(reason: string): void {
    const count = RegistryCounters.bump(this.refused, reason);
    this.limiter?.log('debug', `registry.refused:${reason}`, { event: 'registry.refused', reason, count }, `registry query refused: ${reason}`);
  }

  /** Counts an ignored datagram; returns undefined (no answer), so a caller can `return counters.ignore(…)`. */
  ignore(reason: string, details: Record<string, unknown> = {}): undefined {
    const count = RegistryCounters.bump(this.ignored, reason);
    this.limiter?.log(reason === 'internal' ? 'error' : 'debug', `registry.ignored:${reason}`, { event: 'registry.ignored', reason, count, ...details }, `registry datagram ignored: ${reason}`);
    return undefined;
  }

  record(): RegistryCounts {
    return { answered: Object.fromEntries(this.answered), refused: Object.fromEntries(this.refused), ignored: Object.fromEntries(this.ignored) };
  }

  stop(): void {
    this.limiter?.stop();
  }
}
