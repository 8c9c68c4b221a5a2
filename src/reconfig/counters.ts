/**
 * What the listener counts: packets ignored by reason (and the debug `ignore` line that names
 * each), the same per known peer, and the totals of what it carried out. Every stage counts
 * here and nowhere else, so the status output and the `stopped` line read one record.
 * Lines a stranger's packets cause (every ignore, every hand-over) go through one LogLimiter:
 * under a flood, a few a second per event and reason, and how many more there were.
 */
import { LogLimiter, type LimitedLevel } from '../common/log-limit.js';
import type { Logger } from '../common/log.js';

export type IgnoreReason = string;

export class Counters {
  /** reason → how many packets were ignored for it */
  readonly ignored = new Map<IgnoreReason, number>();
  /** peer → reason (authentic, updated, or why ignored) → count */
  private readonly byPeer = new Map<string, Map<string, number>>();
  /** verified and fresh: the initiation.accepted log lines */
  authentic = 0;
  /** authentic and carried out: handed to WireGuard and taken up, or the endpoint set (or already current) */
  accepted = 0;
  updated = 0;
  injected = 0;
  sessionsLearned = 0;
  private readonly debug: boolean;
  private readonly limiter: LogLimiter;

  /** `isPeer`: only configured peers are counted by peer (anyone can make up keys, each would cost memory) */
  constructor(
    private readonly logger: Logger,
    private readonly isPeer: (peer: string) => boolean,
  ) {
    this.debug = logger.isLevelEnabled('debug');
    this.limiter = new LogLimiter(logger);
  }

  /** A line a stranger can cause, rate-limited per `key` (see LogLimiter). */
  limited(level: LimitedLevel, key: string, fields: Record<string, unknown>, message: string): void {
    this.limiter.log(level, key, fields, message);
  }

  /** Says how many lines were held back; stops the limiter's timer. */
  stop(): void {
    this.limiter.stop();
  }

  ignore(reason: IgnoreReason, details: Record<string, unknown> = {}, event = 'packet.ignored', count = 1): void {
    const total = (this.ignored.get(reason) ?? 0) + count;
    this.ignored.set(reason, total);
    if (typeof details.peer === 'string' && this.isPeer(details.peer)) this.countFor(details.peer, reason, count);
    if (this.debug) this.limiter.log('debug', `${event}:${reason}`, { event, reason, count: total, ...details }, `ignored: ${reason}`);
  }

  countFor(peer: string, reason: string, count = 1): void {
    const counts = this.byPeer.get(peer) ?? new Map<string, number>();
    counts.set(reason, (counts.get(reason) ?? 0) + count);
    this.byPeer.set(peer, counts);
  }

  /** authentic (verified, fresh) initiations, endpoint updates and ignored-by-reason counts of one peer. */
  peerCounts(peer: string): Record<string, number> {
    return Object.fromEntries(this.byPeer.get(peer) ?? []);
  }

  record(): Record<string, number> {
    return {
      authentic: this.authentic,
      accepted: this.accepted,
      updated: this.updated,
      injected: this.injected,
      sessionsLearned: this.sessionsLearned,
      ...Object.fromEntries(this.ignored),
    };
  }
}
