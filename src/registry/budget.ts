/**
 * What the registry answers, budgeted: one token bucket per peer (a peer's whole allowed IPs
 * share it, so a peer that routes a /24 is still one source) and one for everyone, so neither a
 * peer that loops nor all peers at once can take more than a small share of the router's CPU.
 * Peers are the only keys, so the table is as large as the peer list, never larger.
 */

export interface BucketRate {
  /** tokens added per second */
  readonly perSecond: number;
  /** tokens held at most: queries that may come at once after a quiet spell */
  readonly burst: number;
}

/** A mesh client asks SRV once per peer on each round: a burst covers a round of a large mesh. */
export const PEER_RATE: BucketRate = { perSecond: 10, burst: 64 };
export const GLOBAL_RATE: BucketRate = { perSecond: 200, burst: 400 };

class Bucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: BucketRate,
    now: number,
  ) {
    this.tokens = rate.burst;
    this.at = now;
  }

  /** Whether a token could be had at `now`, without taking it. */
  has(now: number): boolean {
    this.refill(now);
    return this.tokens >= 1;
  }

  take(now: number): boolean {
    if (!this.has(now)) return false;
    this.tokens -= 1;
    return true;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.at) / 1000;
    this.tokens = Math.min(this.rate.burst, this.tokens + elapsed * this.rate.perSecond);
    this.at = now;
  }
}

export type BudgetVerdict = 'ok' | 'peer-rate' | 'global-rate';

export class Budget {
  private readonly peers = new Map<string, Bucket>();
  private readonly global: Bucket;

  constructor(
    private readonly now: () => number,
    private readonly peerRate: BucketRate = PEER_RATE,
    globalRate: BucketRate = GLOBAL_RATE,
  ) {
    this.global = new Bucket(globalRate, now());
  }

  /** Takes one query's tokens for `peer`: from its own bucket and the global one, or from neither. */
  take(peer: string): BudgetVerdict {
    const now = this.now();
    let bucket = this.peers.get(peer);
    if (bucket === undefined) {
      bucket = new Bucket(this.peerRate, now);
      this.peers.set(peer, bucket);
    }
    if (!bucket.has(now)) return 'peer-rate';
    if (!this.global.take(now)) return 'global-rate';
    bucket.take(now);
    return 'ok';
  }

  /** Drops the buckets of keys that are no longer peers. */
  retain(peers: ReadonlySet<string>): void {
    for (const key of this.peers.keys()) if (!peers.has(key)) this.peers.delete(key);
  }
}
