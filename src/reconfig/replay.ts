/**
 * Replay protection that survives restarts. WireGuard accepts an initiation only if its TAI64N
 * timestamp is newer than the last one from that peer (WireGuard paper §5.1); we keep the same
 * per-peer watermark, but on disk, so a packet captured yesterday cannot move an endpoint after
 * the daemon restarts. The file is replaced atomically after every advance, in libuv's thread
 * pool (its fsyncs would hold the event loop, and with it every packet captured meanwhile):
 * advances that come while a write runs are written together next. Nothing that moves an
 * endpoint by our own hand (`wg set`) runs before the watermark it relies on is on disk
 * (durable()); a packet handed to WireGuard relies on WireGuard's own watermark.
 *
 * Where the file does not survive a reboot (OpenWrt keeps /var in RAM), the start time covers
 * for it: an initiation is refused if its timestamp is older than the moment the daemon
 * started, less CLOCK_SKEW_ALLOWANCE_MS. A packet captured before that cannot move an
 * endpoint even with no file at all; a peer whose clock lags ours by more than the allowance
 * is only delayed, until its clock passes the floor.
 */
import { rmSync } from 'node:fs';
import { readOwnFile } from '../common/own-file.js';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic, writeFileAtomicAsync } from '../common/atomic.js';
import { ReconfigError } from '../common/errors.js';
import { compareTimestamps, timestampFromDate } from '../wireguard/tai64n.js';

const STATE_VERSION = 1;
const TIMESTAMP_HEX = /^[0-9a-f]{24}$/;

/**
 * How far a genuine peer's clock may lag ours at our start without its first initiation being
 * refused. NTP keeps routers well inside it; a router that boots without the time does not,
 * and is let in once its clock passes our start time less this.
 */
export const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60_000;

interface StateFile {
  version: number;
  interface: string;
  /** peer public key (base64) → TAI64N of the newest accepted initiation, hex */
  timestamps: Record<string, string>;
}

export class Watermarks {
  private readonly timestamps = new Map<string, Buffer>();
  /** the write running, if one is; `dirty`: advances since it started */
  private writing: Promise<void> | undefined;
  private dirty = false;
  /** told of a write that failed (the watermark stays raised in memory) */
  onWriteError: (error: ReconfigError) => void = () => undefined;

  private constructor(
    private readonly path: string,
    private readonly iface: string,
    /** no initiation older than this (TAI64N) is fresh, whatever the file says */
    readonly floor: Buffer,
  ) {}

  /**
   * Loads the state file; a missing file is an empty state, a broken one is an error.
   * `startedAt` (now) sets the floor: CLOCK_SKEW_ALLOWANCE_MS before it.
   */
  static load(path: string, iface: string, startedAt: Date = new Date()): Watermarks {
    const marks = new Watermarks(path, iface, timestampFromDate(new Date(startedAt.getTime() - CLOCK_SKEW_ALLOWANCE_MS)));
    // Read only if nobody else could have planted or changed it: a far-future watermark would
    // refuse every genuine initiation of that peer.
    const checked = readOwnFile(path);
    if (checked === undefined) return marks;
    if (!checked.ok) {
      throw new ReconfigError('E_STATE_FILE', `Cannot use state file ${path}: ${checked.reason}. Remove it (or fix its owner and mode), or pass another --state-file.`, { exitCode: 2 });
    }
    const text = checked.value;
    const broken = (why: string): ReconfigError =>
      new ReconfigError(
        'E_STATE_FILE',
        `State file ${path} ${why}. Move it aside to start with empty replay protection, or pass another --state-file.`,
        { exitCode: 2 },
      );
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw broken('is not valid JSON');
    }
    const state = data as Partial<StateFile>;
    if (typeof state !== 'object' || state === null || state.version !== STATE_VERSION || typeof state.timestamps !== 'object' || state.timestamps === null) {
      throw broken(`is not a version ${STATE_VERSION} reconfig-wg state file`);
    }
    if (state.interface !== iface) {
      throw broken(`belongs to interface ${String(state.interface)}, not ${iface}`);
    }
    for (const [peer, hex] of Object.entries(state.timestamps)) {
      if (typeof hex !== 'string' || !TIMESTAMP_HEX.test(hex)) throw broken(`has a bad timestamp for peer ${peer}`);
      marks.timestamps.set(peer, Buffer.from(hex, 'hex'));
    }
    return marks;
  }

  /** True if `timestamp` is past the floor and newer than every one accepted before from `peer`. */
  isFresh(peer: string, timestamp: Buffer): boolean {
    if (compareTimestamps(timestamp, this.floor) <= 0) return false;
    const mark = this.timestamps.get(peer);
    return mark === undefined || compareTimestamps(timestamp, mark) > 0;
  }

  /** Raises the peer's watermark; the file follows (durable() says when). */
  advance(peer: string, timestamp: Buffer): void {
    this.timestamps.set(peer, Buffer.from(timestamp));
    if (this.writing !== undefined) {
      this.dirty = true;
      return;
    }
    this.writing = this.writeAll();
  }

  /** Resolves once every advance so far is on disk (or its write failed, which was told). Never rejects. */
  async durable(): Promise<void> {
    while (this.writing !== undefined) await this.writing;
  }

  private async writeAll(): Promise<void> {
    try {
      do {
        this.dirty = false;
        try {
          await writeFileAtomicAsync(this.path, this.text(), 0o600);
        } catch (error) {
          this.onWriteError(new ReconfigError('E_STATE_FILE', `Cannot write state file ${this.path}: ${(error as Error).message}.`));
        }
      } while (this.dirty);
    } finally {
      this.writing = undefined;
    }
  }

  /**
   * Checks at start that the file can be written: one that cannot is a configuration
   * error then (exit 2), never a silent loss of replay protection at the first accepted packet.
   */
  checkWritable(): void {
    // A probe beside the file, written the way the file is and removed: nothing of the state
    // changes, so a start that fails later leaves no state behind.
    const probe = join(dirname(this.path), `.${basename(this.path)}.${process.pid}.probe`);
    try {
      writeFileAtomic(probe, '', 0o600);
      rmSync(probe, { force: true });
    } catch (error) {
      throw new ReconfigError(
        'E_STATE_FILE',
        `Cannot write state file ${this.path} (${(error as Error).message.replace(/\.$/, '')}). Replay protection must survive restarts: make ${dirname(this.path)} writable for reconfig-wg, or pass --state-file with a path it can write.`,
        { exitCode: 2 },
      );
    }
  }

  private text(): string {
    const state: StateFile = {
      version: STATE_VERSION,
      interface: this.iface,
      timestamps: Object.fromEntries([...this.timestamps].map(([key, mark]) => [key, mark.toString('hex')])),
    };
    return `${JSON.stringify(state, null, 2)}\n`;
  }

  get size(): number {
    return this.timestamps.size;
  }
}
