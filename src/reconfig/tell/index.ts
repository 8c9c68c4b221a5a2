/**
 * Telling the rest of the world about a confirmed endpoint change: the status file, then the
 * persisted configuration, then the hook.
 *
 * The listener has already logged the change (`endpoint.updated`) and confirmed it with
 * `wg show`. The status file is written at once (one small atomic write of the whole
 * snapshot); persisting and the hook run in a queue per peer, so two hooks for the same peer
 * never run at once and the config is written in the order the changes happened. Changes that
 * arrive while one is being told are folded into one: the next run tells the newest endpoint,
 * with `from` the endpoint the world last heard of. Nothing here throws: a failure is logged
 * and the tunnel, which already works, is not touched.
 */
import { rmSync } from 'node:fs';
import { isReconfigError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { runHook, type HookValues } from './hook.js';
import type { Persister } from './persist.js';
import { splitEndpoint } from './persist-uci.js';
import { STATUS_VERSION, writeStatus, type ChangeHow, type Status, type StatusChange, type StatusRegistry } from './status.js';

export interface TellChange {
  readonly peer: string;
  readonly from: string | undefined;
  readonly to: string;
  /** who moved it; 'set' when the listener does not say */
  readonly how?: ChangeHow;
  /** epoch ms of the change; now when the listener does not say */
  readonly at?: number;
}

/** What the listener knows right now, read for every status write. */
export interface Snapshot {
  readonly listenPort: number;
  readonly peers: readonly { readonly publicKey: string; readonly endpoint: string | undefined }[];
  readonly peerCounts: (publicKey: string) => Readonly<Record<string, number>>;
  readonly ignored: Readonly<Record<string, number>>;
  readonly capture: { readonly received: number; readonly dropped: number } | undefined;
  /** the endpoint registry's state and counters; undefined without --registry */
  readonly registry?: StatusRegistry | undefined;
}

export interface TellerDeps {
  readonly logger: Logger;
  readonly iface: string;
  readonly statusFile: string;
  /** how --persist reads, for the status file */
  readonly persistLabel: string;
  readonly persister: Persister | undefined;
  /** --hook split into argv; undefined: no hook */
  readonly hook: readonly string[] | undefined;
  readonly hookTimeoutMs: number;
  readonly dryRun: boolean;
  readonly snapshot: () => Snapshot;
  readonly now?: () => number;
}

interface Slot {
  pending: Required<TellChange> | undefined;
  running: Promise<void> | undefined;
}

/**
 * Changes write the status file at most once per this long: the first at once, the rest of a
 * burst together at the end. Each write is a synchronous replace with two fsyncs, which holds
 * the event loop (and so the capture) for milliseconds where /run is on disk: ten peers roaming
 * at once would otherwise hold up each other's first packets.
 */
export const STATUS_COALESCE_MS = 100;

export class Teller {
  private readonly slots = new Map<string, Slot>();
  private coalescing: NodeJS.Timeout | undefined;
  private statusDirty = false;
  private readonly lastChanges = new Map<string, StatusChange>();
  private startedAt = '';
  private lastWritten = '';
  private statusFailing = false;

  constructor(private readonly deps: TellerDeps) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Writes the first status file. */
  start(): void {
    this.startedAt = new Date(this.now()).toISOString();
    this.writeStatus(true);
  }

  /** Rewrites the status file if anything in it moved (counters, endpoints seen by wg). */
  refresh(): void {
    this.writeStatus(false);
  }

  tell(input: TellChange): void {
    const change: Required<TellChange> = { ...input, how: input.how ?? 'set', at: input.at ?? this.now() };
    const { logger, iface } = this.deps;
    if (this.deps.dryRun) {
      logger.info({ event: 'tell.skipped', dryRun: true, interface: iface, peer: change.peer, to: change.to }, 'dry run: not persisting, no hook');
      return;
    }
    this.lastChanges.set(change.peer, { at: new Date(change.at).toISOString(), how: change.how, from: change.from ?? null, to: change.to });
    this.statusChanged();
    const slot = this.slots.get(change.peer) ?? { pending: undefined, running: undefined };
    this.slots.set(change.peer, slot);
    if (slot.pending !== undefined) {
      logger.debug({ event: 'tell.coalesced', interface: iface, peer: change.peer, skipped: slot.pending.to, to: change.to }, 'a newer change replaces one not yet told');
      slot.pending = { ...change, from: slot.pending.from };
    } else {
      slot.pending = change;
    }
    slot.running ??= this.drain(slot);
  }

  /** Writes the status for a change now, or at the end of the current window if one is open. */
  private statusChanged(): void {
    if (this.coalescing !== undefined) {
      this.statusDirty = true;
      return;
    }
    this.writeStatus(true);
    this.coalescing = setTimeout(() => {
      this.coalescing = undefined;
      if (!this.statusDirty) return;
      this.statusDirty = false;
      this.statusChanged();
    }, STATUS_COALESCE_MS);
    this.coalescing.unref();
  }

  /** Writes what a change left waiting in the window now (and closes the window). */
  private flushStatus(): void {
    clearTimeout(this.coalescing);
    this.coalescing = undefined;
    if (!this.statusDirty) return;
    this.statusDirty = false;
    this.writeStatus(true);
  }

  private async drain(slot: Slot): Promise<void> {
    while (slot.pending !== undefined) {
      const change = slot.pending;
      slot.pending = undefined;
      await this.persist(change);
      await this.hook(change);
    }
    slot.running = undefined;
  }

  private async persist(change: Required<TellChange>): Promise<void> {
    const { persister, logger, iface } = this.deps;
    if (persister === undefined) return;
    try {
      const outcome = await persister.persist(change.peer, change.to);
      if (outcome === 'updated') {
        logger.info({ event: 'persist.updated', interface: iface, peer: change.peer, endpoint: change.to, target: persister.target }, `endpoint saved in ${persister.target}`);
      } else {
        logger.debug({ event: 'persist.unchanged', interface: iface, peer: change.peer, endpoint: change.to, target: persister.target }, `${persister.target} already has this endpoint`);
      }
    } catch (error) {
      const code = isReconfigError(error) ? error.code : 'E_PERSIST';
      logger.error({ event: 'error', code, interface: iface, peer: change.peer }, `endpoint not saved: ${(error as Error).message}`);
    }
  }

  private async hook(change: Required<TellChange>): Promise<void> {
    const { hook, logger, iface, hookTimeoutMs } = this.deps;
    if (hook === undefined) return;
    const { host, port } = splitEndpoint(change.to);
    const values: HookValues = { interface: iface, peer: change.peer, from: change.from ?? '', to: change.to, host, port, how: change.how };
    try {
      await runHook(hook, values, logger, hookTimeoutMs);
    } catch (error) {
      logger.error({ event: 'error', code: 'E_COMMAND', interface: iface, peer: change.peer }, `the hook could not run: ${(error as Error).message}`);
    }
  }

  private build(): Status {
    const snapshot = this.deps.snapshot();
    return {
      version: STATUS_VERSION,
      interface: this.deps.iface,
      pid: process.pid,
      listenPort: snapshot.listenPort,
      startedAt: this.startedAt,
      updatedAt: new Date(this.now()).toISOString(),
      persist: this.deps.persistLabel,
      capture: snapshot.capture ?? null,
      ignored: snapshot.ignored,
      peers: snapshot.peers.map((peer) => ({
        publicKey: peer.publicKey,
        endpoint: peer.endpoint ?? null,
        lastChange: this.lastChanges.get(peer.publicKey) ?? null,
        counts: snapshot.peerCounts(peer.publicKey),
      })),
      registry: snapshot.registry ?? null,
    };
  }

  /** `force`: write even when nothing but the time moved. Never throws. */
  private writeStatus(force: boolean): void {
    let status: Status;
    try {
      status = this.build();
    } catch (error) {
      this.deps.logger.error({ event: 'error', code: 'E_INTERNAL' }, `status not written: ${(error as Error).message}`);
      return;
    }
    const content = JSON.stringify({ ...status, updatedAt: undefined });
    if (!force && content === this.lastWritten) return;
    try {
      writeStatus(this.deps.statusFile, status);
      this.lastWritten = content;
      this.statusFailing = false;
    } catch (error) {
      // once per failing streak: a read-only /run must not flood the log every 10 s
      if (!this.statusFailing) this.deps.logger.error({ event: 'error', code: isReconfigError(error) ? error.code : 'E_STATUS_FILE' }, (error as Error).message);
      this.statusFailing = true;
    }
  }

  /** Resolves when every queued change has been persisted and its hook has finished. */
  async settled(): Promise<void> {
    this.flushStatus();
    for (;;) {
      const running = [...this.slots.values()].map((slot) => slot.running).filter((p): p is Promise<void> => p !== undefined);
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  /**
   * Waits for what is queued, then removes the status file, as the pid file is removed: it
   * describes a running daemon (one that crashed leaves it, and `status` sees its pid gone).
   */
  async stop(): Promise<void> {
    await this.settled();
    clearTimeout(this.coalescing);
    this.coalescing = undefined;
    this.statusDirty = false;
    if (this.lastWritten === '') return;
    try {
      rmSync(this.deps.statusFile, { force: true });
    } catch (error) {
      this.deps.logger.error({ event: 'error', code: 'E_STATUS_FILE' }, `cannot remove the status file ${this.deps.statusFile}: ${(error as Error).message}`);
    }
  }
}
