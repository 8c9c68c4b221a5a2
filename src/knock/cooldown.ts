/**
 * Bounds how often a knock may act at all, whoever knocks: a flood of knocks from many
 * sources, each a genuine new knock, still forks at most once per period.
 */
export class Cooldown {
  private last = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly periodMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True, and the period starts again, if the last action is at least one period ago. */
  take(): boolean {
    const at = this.now();
    if (at - this.last < this.periodMs) return false;
    this.last = at;
    return true;
  }

  reset(): void {
    this.last = Number.NEGATIVE_INFINITY;
  }

  /** Time until take() can succeed again; 0 when it can now. */
  remainingMs(): number {
    return Math.max(0, this.periodMs - (this.now() - this.last));
  }
}
