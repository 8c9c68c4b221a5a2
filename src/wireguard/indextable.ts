/**
 * R2's live session indices and the peer each belongs to: the same job as WireGuard's own
 * index table (wireguard-go device/indextable.go, the kernel's peerlookup.c), learned from the
 * outside by watching R2's handshake messages leave.
 *
 * A transport data packet names the *receiver's* index, so a packet to R2 carries one of R2's
 * indices; if that index is live, the packet belongs to a session WireGuard can authenticate
 * and is worth handing to it. An index lives as long as WireGuard could still use its keys:
 * REJECT_AFTER_TIME after its handshake.
 *
 * Modelled as WireGuard keeps them per peer (noise-protocol.go, keypair.go), not as a list:
 * * the pending handshake: the index of R2's own initiation. A newer initiation replaces it;
 *   if the newer one came within RETRY_WINDOW_MS it was a retry and the pending one went
 *   unanswered (dropped), else it was answered and became the current keypair;
 * * the next keypair: the index of R2's response. A newer response replaces it; if it came
 *   within RETRY_WINDOW_MS the peer retried and the old one was never used (dropped), else data
 *   confirmed it and it became the current keypair;
 * * the current and the previous keypair: what those promotions leave (a promotion moves the
 *   current one to previous and drops the old previous).
 * So unanswered initiations R2 sends to a stale endpoint, every REKEY_TIMEOUT, replace only
 * each other, never the live session's index.
 */
import { REJECT_AFTER_TIME_MS, REKEY_TIMEOUT_MS } from './constants.js';

export type Slot = 'pending' | 'next' | 'current' | 'previous';
export const SLOTS: readonly Slot[] = ['pending', 'next', 'current', 'previous'];

/**
 * WireGuard retries an unanswered initiation every REKEY_TIMEOUT plus up to a third of a second
 * of jitter (REKEY_TIMEOUT_JITTER_MAX); a second and a half more covers a busy machine.
 */
export const RETRY_WINDOW_MS = REKEY_TIMEOUT_MS + 1500;

interface Entry {
  readonly peer: string;
  readonly learnedAt: number;
  slot: Slot;
}

type PeerSlots = Partial<Record<Slot, number>>;

export class IndexTable {
  private readonly entries = new Map<number, Entry>();
  private readonly byPeer = new Map<string, PeerSlots>();

  constructor(private readonly lifetimeMs = REJECT_AFTER_TIME_MS) {}

  /** R2 sent a handshake message of `kind` naming its new `index` for `peer`, at `at` (ms). */
  learnSent(kind: 'initiation' | 'response', index: number, peer: string, at: number): void {
    const slot: Slot = kind === 'initiation' ? 'pending' : 'next';
    const slots = this.slotsOf(peer);
    // Responding replaces R2's own handshake in progress with this peer.
    if (kind === 'response' && slots.pending !== undefined) this.drop(slots.pending);
    const earlier = slots[slot];
    const entry = earlier === undefined ? undefined : this.entries.get(earlier);
    if (earlier !== undefined && entry !== undefined) {
      if (at - entry.learnedAt >= RETRY_WINDOW_MS) this.promote(peer, earlier);
      else this.drop(earlier);
    }
    this.place(index, peer, at, slot);
  }

  /**
   * Puts back an index a predecessor left (`slot` as it was; current when it is not known),
   * or one known to be a keypair in use: the current one moves to previous.
   */
  restore(index: number, peer: string, at: number, slot: Slot = 'current'): void {
    if (slot === 'current') {
      this.place(index, peer, at, 'pending');
      this.promote(peer, index);
      return;
    }
    const occupant = this.slotsOf(peer)[slot];
    if (occupant !== undefined) this.drop(occupant);
    this.place(index, peer, at, slot);
  }

  /** The peer whose live session `index` names at time `at`, or undefined. */
  lookup(index: number, at: number): string | undefined {
    const entry = this.entries.get(index);
    if (entry === undefined) return undefined;
    if (at - entry.learnedAt > this.lifetimeMs) {
      this.drop(index);
      return undefined;
    }
    return entry.peer;
  }

  /** Forgets every index of peers that are no longer configured. */
  retainPeers(peers: ReadonlySet<string>): void {
    for (const [peer, slots] of this.byPeer) {
      if (peers.has(peer)) continue;
      for (const index of Object.values(slots)) if (index !== undefined) this.entries.delete(index);
      this.byPeer.delete(peer);
    }
  }

  /** The live entries at time `at`, oldest first: what a successor process may take over. */
  live(at: number): { index: number; peer: string; learnedAt: number; slot: Slot }[] {
    for (const [index, entry] of this.entries) if (at - entry.learnedAt > this.lifetimeMs) this.drop(index);
    return [...this.entries]
      .map(([index, entry]) => ({ index, peer: entry.peer, learnedAt: entry.learnedAt, slot: entry.slot }))
      .sort((a, b) => a.learnedAt - b.learnedAt);
  }

  /** The index in each slot of `peer`'s (for tests and the status output). */
  slots(peer: string): Readonly<PeerSlots> {
    return { ...this.byPeer.get(peer) };
  }

  private slotsOf(peer: string): PeerSlots {
    let slots = this.byPeer.get(peer);
    if (slots === undefined) {
      slots = {};
      this.byPeer.set(peer, slots);
    }
    return slots;
  }

  private place(index: number, peer: string, at: number, slot: Slot): void {
    if (this.entries.has(index)) this.drop(index);
    this.entries.set(index, { peer, learnedAt: at, slot });
    this.slotsOf(peer)[slot] = index;
  }

  /** `index` became the current keypair: the current one moves to previous, the old previous goes. */
  private promote(peer: string, index: number): void {
    const slots = this.slotsOf(peer);
    const entry = this.entries.get(index);
    if (entry === undefined) return;
    if (slots.previous !== undefined && slots.previous !== index) this.drop(slots.previous);
    if (slots.current !== undefined && slots.current !== index) {
      const current = this.entries.get(slots.current);
      if (current !== undefined) current.slot = 'previous';
      slots.previous = slots.current;
    }
    delete slots[entry.slot];
    entry.slot = 'current';
    slots.current = index;
  }

  private drop(index: number): void {
    const entry = this.entries.get(index);
    if (entry === undefined) return;
    this.entries.delete(index);
    const slots = this.byPeer.get(entry.peer);
    if (slots === undefined) return;
    // the peer's (possibly empty) record stays: peers are configured ones, and retainPeers
    // forgets those that go
    if (slots[entry.slot] === index) delete slots[entry.slot];
  }
}
