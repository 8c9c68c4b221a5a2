/**
 * R2's live session indices, learned from the outside: the index table (indextable.ts) fed
 * with what R2's own handshake messages name, the initiators' indices that tell whose response
 * R2 is sending, and the sessions file a stopping instance leaves for its successor (checked
 * before it is taken over: this interface, this key, live indices of configured peers).
 */
import { rmSync } from 'node:fs';
import { writeFileAtomic } from '../common/atomic.js';
import type { Logger } from '../common/log.js';
import { readOwnFile } from '../common/own-file.js';
import type { Datagram } from '../net/packet.js';
import { REJECT_AFTER_TIME_MS, REKEY_TIMEOUT_MS } from '../wireguard/constants.js';
import { IndexTable, SLOTS } from '../wireguard/indextable.js';
import { identifySent, responseReceiver } from '../wireguard/sent.js';
import type { Counters } from './counters.js';
import type { Peers } from './peers.js';

/**
 * How long an initiator's index is kept to match R2's response to it: R2 answers within
 * milliseconds; two REKEY_TIMEOUTs outlast the initiator's own retry with a new index.
 */
const INITIATOR_HINT_MS = 2 * REKEY_TIMEOUT_MS;
const MAX_INITIATOR_HINTS = 1024;

export interface SessionsDeps {
  readonly logger: Logger;
  readonly iface: string;
  readonly peers: Peers;
  readonly counters: Counters;
  readonly now: () => number;
  /** where the live indices are left on stop and taken over on start */
  readonly file: string | undefined;
}

export class Sessions {
  private readonly indices = new IndexTable();
  /** an initiator's sender index → its peer, while R2's response to it may still leave */
  private readonly initiators = new Map<number, { peer: string; at: number }>();

  constructor(private readonly deps: SessionsDeps) {}

  /** The peer whose live session `index` names, if any. */
  lookup(index: number): string | undefined {
    return this.indices.lookup(index, this.deps.now());
  }

  /** Forgets the indices of peers no longer configured. */
  retainPeers(peers: ReadonlySet<string>): void {
    this.indices.retainPeers(peers);
  }

  /** R2's own initiation or response: learns the session index it names. False if it names no peer of ours. */
  learnSent(datagram: Datagram): boolean {
    const peerMacs = this.deps.peers.peerMacs;
    const receiver = responseReceiver(datagram.payload);
    const hintPeer = receiver === undefined ? undefined : this.initiators.get(receiver)?.peer;
    const hint = hintPeer === undefined ? undefined : peerMacs.get(hintPeer);
    const sent = identifySent(datagram.payload, peerMacs.values(), hint);
    if (!sent.ok) return false;
    this.indices.learnSent(sent.value.kind, sent.value.index, sent.value.peer, this.deps.now());
    this.deps.counters.sessionsLearned++;
    this.deps.logger.debug(
      { event: 'session.learned', interface: this.deps.iface, peer: sent.value.peer, index: sent.value.index, from: sent.value.kind },
      `R2 sent a handshake ${sent.value.kind}: session index ${sent.value.index}`,
    );
    return true;
  }

  /** A verified initiation's sender index: R2's response to it will name it as receiver. */
  rememberInitiator(index: number, peer: string): void {
    const at = this.deps.now();
    if (this.initiators.size >= MAX_INITIATOR_HINTS) {
      for (const [old, hint] of this.initiators) {
        if (at - hint.at > INITIATOR_HINT_MS || this.initiators.size >= MAX_INITIATOR_HINTS) this.initiators.delete(old);
        if (this.initiators.size < MAX_INITIATOR_HINTS / 2) break;
      }
    }
    this.initiators.set(index, { peer, at });
  }

  /** Takes over the indices a previous instance left: only its own interface's and key's, live, of configured peers. */
  takeOver(): void {
    const { file, logger, iface, peers } = this.deps;
    if (file === undefined || peers.responder === undefined) return;
    const checked = readOwnFile(file);
    if (checked === undefined) return; // none left behind
    if (!checked.ok) {
      logger.warn({ event: 'sessions.ignored', file, why: checked.reason }, `ignoring ${file}: ${checked.reason}`);
      return;
    }
    const at = this.deps.now();
    let taken = 0;
    try {
      const saved = JSON.parse(checked.value) as { interface?: unknown; publicKey?: unknown; sessions?: unknown };
      // Left by this interface with this key: indices of another key's sessions name nothing.
      if (saved.interface !== iface || saved.publicKey !== peers.publicKey() || !Array.isArray(saved.sessions)) throw new Error('not ours');
      for (const entry of saved.sessions as { index?: unknown; peer?: unknown; learnedAt?: unknown; slot?: unknown }[]) {
        const { index, peer, learnedAt, slot } = entry;
        if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 0xffffffff) continue;
        if (typeof peer !== 'string' || !peers.has(peer) || typeof learnedAt !== 'number' || learnedAt > at) continue;
        if (at - learnedAt > REJECT_AFTER_TIME_MS) continue;
        this.indices.restore(index, peer, learnedAt, SLOTS.find((s) => s === slot) ?? 'current');
        taken++;
      }
    } catch {
      logger.warn({ event: 'sessions.ignored', file }, `ignoring ${file}: not a session list of ${iface}`);
      return;
    }
    if (taken > 0) logger.info({ event: 'sessions.taken-over', interface: iface, sessions: taken }, `took over ${taken} live session indices`);
  }

  /** Leaves the live indices for a successor (written once per stop, never per handshake). */
  leave(): void {
    const { file, logger, iface, peers } = this.deps;
    if (file === undefined) return;
    const sessions = this.indices.live(this.deps.now());
    try {
      // Nothing live: nothing to leave (and no file left behind).
      if (sessions.length === 0) rmSync(file, { force: true });
      else writeFileAtomic(file, `${JSON.stringify({ interface: iface, publicKey: peers.publicKey(), sessions })}\n`, 0o600);
    } catch (error) {
      logger.warn({ event: 'sessions.not-saved', file }, `could not leave the session indices in ${file}: ${(error as Error).message}`);
    }
  }
}
