/**
 * R2's live session indices and the peer each belongs to: the same job as WireGuard's own
 * index table (wireguard-go device/indextable.go, the kernel's peerlookup.c), learned from the
 * outside by watching R2's handshake messages leave.
 *
 * A transport data packet names the *receiver's* index, so a packet to R2 carries one of R2's
 * indices; if that index is live, the packet belongs to a session WireGuard can authenticate
 * and is worth handing to it. An index lives as long as WireGuard could still use its keys:
 * REJECT_AFTER_TIME after its handshake. WireGuard keeps at most three key pairs per peer
 * (previous, current, next), so a fourth index replaces the oldest.
 */
import { REJECT_AFTER_TIME_MS } from './constants.js';

/** previous, current and next key pair (wireguard-go device/keypair.go) */
export const INDICES_PER_PEER = 3;

interface Entry {
  readonly peer: string;
  readonly learnedAt: number;
}

export class IndexTable {
  private readonly entries = new Map<number, Entry>();
  private readonly byPeer = new Map<string, number[]>();

  constructor(private readonly lifetimeMs = REJECT_AFTER_TIME_MS) {}

  /** Records that R2 chose `index` for a session with `peer` at time `at` (ms). */
  learn(index: number, peer: string, at: number): void {
    const previous = this.entries.get(index);
    if (previous !== undefined) this.drop(index, previous.peer);
    this.entries.set(index, { peer, learnedAt: at });
    const indices = this.byPeer.get(peer) ?? [];
    indices.push(index);
    while (indices.length > INDICES_PER_PEER) {
      const oldest = indices.shift();
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.byPeer.set(peer, indices);
  }

  /** The peer whose live session `index` names at time `at`, or undefined. */
  lookup(index: number, at: number): string | undefined {
    const entry = this.entries.get(index);
    if (entry === undefined) return undefined;
    if (at - entry.learnedAt > this.lifetimeMs) {
      this.drop(index, entry.peer);
      return undefined;
    }
    return entry.peer;
  }

  /** Forgets every index of peers that are no longer configured. */
  retainPeers(peers: ReadonlySet<string>): void {
    for (const [peer, indices] of this.byPeer) {
      if (peers.has(peer)) continue;
      for (const index of indices) this.entries.delete(index);
      this.byPeer.delete(peer);
    }
  }

  /** Drops expired entries; returns how many are live. */
  sweep(at: number): number {
    for (const [index, entry] of this.entries) {
      if (at - entry.learnedAt > this.lifetimeMs) this.drop(index, entry.peer);
    }
    return this.entries.size;
  }

  /** The live entries at time `at`, oldest first: what a successor process may take over. */
  live(at: number): { index: number; peer: string; learnedAt: number }[] {
    this.sweep(at);
    return [...this.entries].map(([index, entry]) => ({ index, peer: entry.peer, learnedAt: entry.learnedAt })).sort((a, b) => a.learnedAt - b.learnedAt);
  }

  private drop(index: number, peer: string): void {
    this.entries.delete(index);
    const indices = this.byPeer.get(peer);
    if (indices === undefined) return;
    const left = indices.filter((i) => i !== index);
    if (left.length === 0) this.byPeer.delete(peer);
    else this.byPeer.set(peer, left);
  }
}
