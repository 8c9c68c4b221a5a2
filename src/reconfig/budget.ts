/**
 * How many initiations may go through the Noise steps (two X25519, ~0.2 ms of CPU each time).
 * mac1 needs only the interface's public key, so anyone who knows it can make packets that
 * pass it; without a bound they could keep a router's CPU busy. A genuine peer sends an
 * initiation every 5 s at most while it retries (REKEY_TIMEOUT) and every 2 min otherwise, so
 * per-source and overall token buckets far above that (room for dozens of peers behind one
 * NAT address) cost real peers nothing, while a flood is cut to a known CPU share: 200 a
 * second is about 5 % of one core. Sources are remembered in a bounded map (oldest out first).
 */
export interface BudgetOptions {
  /** sustained verifications per second, all sources together, and the burst allowed */
  readonly globalPerSecond: number;
  readonly globalBurst: number;
  /** sustained verifications per second from one source address, and its burst */
  readonly sourcePerSecond: number;
  readonly sourceBurst: number;
  /** how many sources are tracked at once */
  readonly maxSources: number;
}

export const BUDGET_DEFAULTS: BudgetOptions = {
  globalPerSecond: 200,
  globalBurst: 400,
  sourcePerSecond: 5,
  sourceBurst: 20,
  maxSources: 4096,
};

/**
 * Transport data handed to WireGuard: each costs a send and a decryption attempt, and a handful
 * per source is all a roaming peer needs before WireGuard's answer opens the firewall for it.
 */
export const DATA_BUDGET: BudgetOptions = {
  globalPerSecond: 500,
  globalBurst: 1000,
  sourcePerSecond: 20,
  sourceBurst: 20,
  maxSources: 4096,
};

interface Bucket {
  tokens: number;
  at: number;
}

export class VerifyBudget {
  private readonly global: Bucket;
  private readonly sources = new Map<string, Bucket>();

  constructor(
    private readonly options: BudgetOptions = BUDGET_DEFAULTS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.global = { tokens: options.globalBurst, at: now() };
  }

  /** True if a verification from `source` may run now (and counts it). */
  take(source: string): boolean {
    const at = this.now();
    let bucket = this.sources.get(source);
    if (bucket === undefined) {
      if (this.sources.size >= this.options.maxSources) {
        const oldest = this.sources.keys().next().value;
        if (oldest !== undefined) this.sources.delete(oldest);
      }
      bucket = { tokens: this.options.sourceBurst, at };
    } else {
      this.sources.delete(source); // re-inserted below: the map stays in least-recent order
    }
    this.sources.set(source, bucket);
    refill(bucket, at, this.options.sourcePerSecond, this.options.sourceBurst);
    refill(this.global, at, this.options.globalPerSecond, this.options.globalBurst);
    if (bucket.tokens < 1 || this.global.tokens < 1) return false;
    bucket.tokens -= 1;
    this.global.tokens -= 1;
    return true;
  }
}

function refill(bucket: Bucket, at: number, perSecond: number, burst: number): void {
  bucket.tokens = Math.min(burst, bucket.tokens + ((at - bucket.at) / 1000) * perSecond);
  bucket.at = at;
}
