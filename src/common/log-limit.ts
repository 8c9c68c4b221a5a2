/**
 * Log lines that a flood can cause are rate-limited per event: each key (an event, with its
 * reason or action when those differ in kind) has a token bucket of BURST lines refilled at
 * LINES_PER_SECOND. What the bucket holds back is counted, never lost: the next line of that
 * key that gets through carries `suppressed` (how many) and `suppressedSince` (when the first
 * of them was held back), and a key that goes quiet with lines held back gets one
 * `log.suppressed` line of its own once its bucket has room again (and at stop).
 *
 * 120,000 spoofed knocks in 24 s were 59.7k lines (21 MB) before; OpenWrt's logread ring holds
 * 64 KB. With this they are a few dozen lines that say how many more there were.
 */
import type { Logger } from './log.js';

export type LimitedLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface LogLimitOptions {
  /** lines per second per key once the burst is spent */
  readonly linesPerSecond?: number;
  /** lines a key may write at once after a quiet spell */
  readonly burst?: number;
  /** monotonic clock in ms (tests pass a fake one) */
  readonly now?: () => number;
  /** wall clock in ms, for `suppressedSince` */
  readonly wallClock?: () => number;
  /** keys tracked at once; further keys share one bucket, OTHER_KEY */
  readonly maxKeys?: number;
  /** how soon after a line is held back its summary is tried; 0: only by flush() and stop() */
  readonly summaryAfterMs?: number;
}

export const LINES_PER_SECOND = 2;
export const BURST = 10;
const MAX_KEYS = 256;
export const OTHER_KEY = 'other';

interface Bucket {
  tokens: number;
  /** when tokens was last brought up to date */
  refilledAt: number;
  /** lines held back since the last one written */
  suppressed: number;
  /** wall time of the first of them */
  since: number;
  /** the level of the last line held back: its summary goes out at that level */
  level: LimitedLevel;
}

export class LogLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;
  private readonly now: () => number;
  private readonly wallClock: () => number;
  private readonly maxKeys: number;
  private readonly summaryAfterMs: number;
  private summaryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    options: LogLimitOptions = {},
  ) {
    this.rate = options.linesPerSecond ?? LINES_PER_SECOND;
    this.burst = options.burst ?? BURST;
    this.now = options.now ?? (() => performance.now());
    this.wallClock = options.wallClock ?? Date.now;
    this.maxKeys = options.maxKeys ?? MAX_KEYS;
    this.summaryAfterMs = options.summaryAfterMs ?? 1000;
  }

  /**
   * Writes `logger[level](fields, message)` if `key` has a token left; otherwise counts it.
   * A level the logger does not write costs no token. Returns whether the line was written.
   */
  log(level: LimitedLevel, key: string, fields: Record<string, unknown>, message: string): boolean {
    if (!this.logger.isLevelEnabled(level)) return false;
    const bucket = this.bucket(key);
    if (!this.take(bucket)) {
      if (bucket.suppressed === 0) bucket.since = this.wallClock();
      bucket.suppressed++;
      bucket.level = level;
      this.scheduleSummary();
      return false;
    }
    if (bucket.suppressed === 0) {
      this.logger[level](fields, message);
    } else {
      const since = new Date(bucket.since).toISOString();
      this.logger[level]({ ...fields, suppressed: bucket.suppressed, suppressedSince: since }, `${message} (${bucket.suppressed} more suppressed since ${since})`);
      bucket.suppressed = 0;
    }
    return true;
  }

  /** One `log.suppressed` line for each key with lines held back and a token to spend (all of them when `force`). */
  flush(force = false): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.suppressed === 0 || (!force && !this.take(bucket))) continue;
      const since = new Date(bucket.since).toISOString();
      this.logger[bucket.level]({ event: 'log.suppressed', key, suppressed: bucket.suppressed, since }, `${bucket.suppressed} ${key} lines suppressed since ${since}`);
      bucket.suppressed = 0;
    }
    for (const [key, bucket] of this.buckets) {
      if (bucket.suppressed === 0 && this.refill(bucket) >= this.burst) this.buckets.delete(key);
    }
  }

  /** Says what is still held back, and stops the summary timer. */
  stop(): void {
    clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    this.flush(true);
  }

  private bucket(key: string): Bucket {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys && key !== OTHER_KEY) return this.bucket(OTHER_KEY);
      bucket = { tokens: this.burst, refilledAt: this.now(), suppressed: 0, since: 0, level: 'info' };
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  /** Brings the bucket's tokens up to now; returns them. */
  private refill(bucket: Bucket): number {
    const at = this.now();
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((at - bucket.refilledAt) / 1000) * this.rate);
    bucket.refilledAt = at;
    return bucket.tokens;
  }

  private take(bucket: Bucket): boolean {
    if (this.refill(bucket) < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  private scheduleSummary(): void {
    if (this.summaryAfterMs <= 0 || this.summaryTimer !== undefined) return;
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = undefined;
      this.flush();
      if ([...this.buckets.values()].some((bucket) => bucket.suppressed > 0)) this.scheduleSummary();
    }, this.summaryAfterMs);
    this.summaryTimer.unref();
  }
}
