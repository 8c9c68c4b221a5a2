/**
 * The status file: what the daemon knows right now, as JSON, for `reconfig-wg status` and for
 * scripts. Replaced atomically at start, on every endpoint change and when its counters moved
 * (checked on the daemon's periodic re-read); removed by a clean stop.
 */
import { writeFileAtomic } from '../../common/atomic.js';
import { ReconfigError } from '../../common/errors.js';
import { readTrustedFile } from '../../common/private-dir.js';
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

/** The endpoint registry's line in the status (--registry), see src/registry/server.ts. */
export interface StatusRegistry {
  readonly listen: string;
  readonly zone: string;
  readonly state: 'serving' | 'waiting';
  readonly peers: number;
  /** queries answered, by response code */
  readonly answered: Readonly<Record<string, number>>;
  /** queries answered with an error code, by reason (class, any, out-of-zone …) */
  readonly refused: Readonly<Record<string, number>>;
  /** datagrams not answered, by reason (not-peer, peer-rate, malformed …) */
  readonly ignored: Readonly<Record<string, number>>;
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
  /** null (or absent) when the daemon runs without --registry */
  readonly registry?: StatusRegistry | null;
}

export function writeStatus(path: string, status: Status): void {
  try {
    writeFileAtomic(path, `${JSON.stringify(status, null, 2)}\n`, 0o640);
  } catch (error) {
    throw new ReconfigError('E_STATUS_FILE', `Cannot write the status file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Choose another with --status-file.`);
  }
}

/*
 * A status file is printed on someone's terminal, so it is read as untrusted: every field is
 * checked for its own shape and only checked fields are kept. Text that could carry a terminal
 * escape (control or format characters) is refused, never printed.
 */

class Invalid extends Error {}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** printable text: no control, format, private-use or unassigned characters */
const PRINTABLE = /^[^\p{C}]*$/u;
const INTERFACE_NAME = /^[A-Za-z0-9_.=+:-]{1,15}$/;
const PUBLIC_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const ENDPOINT = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]{2,45}(?:%[A-Za-z0-9_.-]{1,15})?\]):\d{1,5}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/;
const REASON = /^[A-Za-z0-9_.-]{1,64}$/;
const HOWS: readonly ChangeHow[] = ['injected', 'set', 'roamed'];

function text(value: unknown, field: string, max = 4096): string {
  if (typeof value !== 'string' || value.length > max || !PRINTABLE.test(value)) throw new Invalid(`has a ${field} that is not printable text`);
  return value;
}

function matching(value: unknown, pattern: RegExp, field: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw new Invalid(`has a bad ${field}`);
  return value;
}

function count(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Invalid(`has a bad ${field}`);
  return value;
}

function time(value: unknown, field: string): string {
  const iso = matching(value, ISO_TIME, field);
  if (Number.isNaN(Date.parse(iso))) throw new Invalid(`has a bad ${field}`);
  return iso;
}

function counts(value: unknown, field: string): Record<string, number> {
  if (!isObject(value)) throw new Invalid(`has ${field} in a shape this version does not read`);
  const out: Record<string, number> = {};
  for (const [reason, n] of Object.entries(value)) out[matching(reason, REASON, `${field} reason`)] = count(n, `${field} count`);
  return out;
}

function endpoint(value: unknown, field: string): string | null {
  return value === null ? null : matching(value, ENDPOINT, field);
}

function change(value: unknown): StatusChange | null {
  if (value === null) return null;
  if (!isObject(value)) throw new Invalid('has peers or counters in a shape this version does not read');
  const how = value.how;
  if (!HOWS.includes(how as ChangeHow)) throw new Invalid('has a bad change kind');
  return { at: time(value.at, 'change time'), how: how as ChangeHow, from: endpoint(value.from, 'endpoint'), to: matching(value.to, ENDPOINT, 'endpoint') };
}

function peer(value: unknown): StatusPeer {
  if (!isObject(value)) throw new Invalid('has peers or counters in a shape this version does not read');
  return {
    publicKey: matching(value.publicKey, PUBLIC_KEY, 'peer key'),
    endpoint: endpoint(value.endpoint, 'endpoint'),
    lastChange: change(value.lastChange),
    counts: counts(value.counts, 'peer counts'),
  };
}

function capture(value: unknown): Status['capture'] {
  if (value === null) return null;
  if (!isObject(value)) throw new Invalid('has capture counters in a shape this version does not read');
  return { received: count(value.received, 'capture count'), dropped: count(value.dropped, 'capture count') };
}

const ZONE = /^[a-z0-9_.-]{1,253}$/;

function registry(value: unknown): StatusRegistry | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw new Invalid('has a registry in a shape this version does not read');
  const state = value.state;
  if (state !== 'serving' && state !== 'waiting') throw new Invalid('has a bad registry state');
  return {
    listen: matching(value.listen, ENDPOINT, 'registry address'),
    zone: matching(value.zone, ZONE, 'registry zone'),
    state,
    peers: count(value.peers, 'registry peer count'),
    answered: counts(value.answered, 'registry counters'),
    refused: counts(value.refused, 'registry counters'),
    ignored: counts(value.ignored, 'registry counters'),
  };
}

/** Parses a status file's text, keeping only fields of the right shape. Pure; says what is wrong instead of throwing. */
export function parseStatus(input: string): Result<Status> {
  let value: unknown;
  try {
    value = JSON.parse(input);
  } catch {
    return fail('is not valid JSON');
  }
  if (!isObject(value)) return fail('is not a JSON object');
  if (value.version !== STATUS_VERSION) return fail(`has version ${typeof value.version === 'number' ? value.version : 'none'}, this reconfig-wg reads version ${STATUS_VERSION}`);
  if (value.interface === undefined || value.pid === undefined || value.listenPort === undefined) return fail('lacks interface, pid or listen port');
  try {
    if (typeof value.pid !== 'number' || !Number.isSafeInteger(value.pid) || value.pid <= 0) throw new Invalid('has a pid that is not a positive whole number');
    const listenPort = count(value.listenPort, 'listen port');
    if (listenPort > 65535) throw new Invalid('has a bad listen port');
    if (!Array.isArray(value.peers)) throw new Invalid('has peers or counters in a shape this version does not read');
    return ok({
      version: STATUS_VERSION,
      interface: matching(value.interface, INTERFACE_NAME, 'interface name'),
      pid: value.pid,
      listenPort,
      startedAt: time(value.startedAt, 'start time'),
      updatedAt: time(value.updatedAt, 'update time'),
      persist: text(value.persist, 'persist target'),
      capture: capture(value.capture),
      ignored: counts(value.ignored, 'ignored counters'),
      peers: value.peers.map(peer),
      ...(value.registry === undefined ? {} : { registry: registry(value.registry) }),
    });
  } catch (error) {
    if (error instanceof Invalid) return fail(error.message);
    throw error;
  }
}

/** Reads a status file that root (or we) wrote: never through a link, never someone else's. */
export function readStatus(path: string): Result<Status> {
  const content = readTrustedFile(path);
  if (!content.ok) return content.reason === 'does not exist' ? content : fail(`is not read: ${content.reason}`);
  return parseStatus(content.value);
}
