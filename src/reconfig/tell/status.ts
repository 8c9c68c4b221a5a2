/**
 * The status file: what the daemon knows right now, as JSON, for `reconfig-wg status` and for
 * scripts. Replaced atomically at start, on every endpoint change and when its counters moved
 * (checked on the daemon's periodic re-read); removed by a clean stop.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../common/atomic.js';
import { ReconfigError } from '../../common/errors.js';
import { fail, ok, type Result } from '../../common/result.js';
import type { ChangeHow } from '../change.js';

export const STATUS_VERSION = 1;

/** Who moved the endpoint: reconfig-wg by injection, by `wg set`, or WireGuard by itself. */
export type { ChangeHow };

export interface StatusChange {
  /** ISO 8601 */
  readonly at: string;
  readonly how: ChangeHow;
  readonly from: string | null;
  readonly to: string;
}

export interface StatusPeer {
  /** base64, as wg prints it */
  readonly publicKey: string;
  /** as wg prints it, or null when the peer has none */
  readonly endpoint: string | null;
  /** null until this daemon saw a change */
  readonly lastChange: StatusChange | null;
  /** authentic (verified, fresh initiations), updated, and the reasons its initiations were ignored (replay …) */
  readonly counts: Readonly<Record<string, number>>;
}

export interface Status {
  readonly version: number;
  readonly interface: string;
  readonly pid: number;
  readonly listenPort: number;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly persist: string;
  /** packets the capture filter passed, and those libpcap lost for lack of buffer, over every capture opened */
  readonly capture: { readonly received: number; readonly dropped: number } | null;
  /** everything ignored, by reason (bad-mac1, rate-limited …), all peers and strangers */
  readonly ignored: Readonly<Record<string, number>>;
  readonly peers: readonly StatusPeer[];
}

/** /run/reconfig-wg/IFACE.json, or under the temp directory when /run is not writable. */
export function defaultStatusFile(iface: string, runWritable: boolean): string {
  return runWritable ? `/run/reconfig-wg/${iface}.json` : `/tmp/reconfig-wg/${iface}.json`;
}

export function writeStatus(path: string, status: Status): void {
  try {
    writeFileAtomic(path, `${JSON.stringify(status, null, 2)}\n`);
  } catch (error) {
    throw new ReconfigError('E_STATUS_FILE', `Cannot write the status file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Choose another with --status-file.`);
  }
}

function isRecordOfNumbers(value: unknown): value is Record<string, number> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'number');
}

function isPeer(value: unknown): value is StatusPeer {
  const peer = value as StatusPeer;
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof peer.publicKey === 'string' &&
    (peer.endpoint === null || typeof peer.endpoint === 'string') &&
    (peer.lastChange === null || (typeof peer.lastChange === 'object' && typeof peer.lastChange.to === 'string' && typeof peer.lastChange.at === 'string')) &&
    isRecordOfNumbers(peer.counts)
  );
}

/** Parses a status file's text. Pure; says what is wrong instead of throwing. */
export function parseStatus(text: string): Result<Status> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail('is not valid JSON');
  }
  const status = value as Status;
  if (typeof value !== 'object' || value === null) return fail('is not a JSON object');
  if (status.version !== STATUS_VERSION) return fail(`has version ${String(status.version)}, this reconfig-wg reads version ${STATUS_VERSION}`);
  if (typeof status.interface !== 'string' || typeof status.pid !== 'number' || typeof status.listenPort !== 'number') {
    return fail('lacks interface, pid or listen port');
  }
  if (!Array.isArray(status.peers) || !status.peers.every(isPeer) || !isRecordOfNumbers(status.ignored)) return fail('has peers or counters in a shape this version does not read');
  return ok(status);
}

export function readStatus(path: string): Result<Status> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return fail((error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(error as NodeJS.ErrnoException).code ?? ''})`);
  }
  return parseStatus(text);
}
