/**
 * A userspace WireGuard's (wireguard-go's) peers and their endpoints, asked over its control
 * socket (`/var/run/wireguard/IFACE.sock`, the cross-platform UAPI: `get=1`) as `wg show`
 * asks, without starting a process.
 *
 * Only each peer's public key and endpoint are kept. The answer also carries the interface's
 * private key and the peers' preshared keys: those lines are skipped unread, and nothing from
 * the answer ever goes into an error text. The answer is bounded in size and time.
 */
import { lstatSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { fail, ok, type Result } from '../common/result.js';

/** Where wg and wireguard-go put the control sockets (RUNSTATEDIR/wireguard). */
export const UAPI_DIRECTORY = '/var/run/wireguard';
const MAX_ANSWER_BYTES = 4 << 20;
const ANSWER_TIMEOUT_MS = 1000;
const TAIL_BYTES = 64;
const INTERFACE_NAME = /^[\w.@:+=-]{1,15}$/;

/** The control socket of `iface` if there is one (a socket, not a link someone planted); else undefined. */
export function uapiSocketPath(iface: string, directory = UAPI_DIRECTORY): string | undefined {
  if (!INTERFACE_NAME.test(iface) || iface === '.' || iface === '..') return undefined;
  const path = join(directory, `${iface}.sock`);
  try {
    return lstatSync(path).isSocket() ? path : undefined;
  } catch {
    return undefined;
  }
}

/** `get=1`'s answer → each peer (base64 public key) with its endpoint; an error for errno≠0 or a malformed answer. */
export function parseUapiEndpoints(text: string): Result<Map<string, string | undefined>, string> {
  const peers = new Map<string, string | undefined>();
  let current: string | undefined;
  let errno: number | undefined;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const equals = line.indexOf('=');
    if (equals <= 0) return fail('a malformed line');
    const key = line.slice(0, equals);
    const value = line.slice(equals + 1);
    if (key === 'public_key') {
      if (!/^[0-9a-f]{64}$/.test(value)) return fail('a malformed public key');
      current = Buffer.from(value, 'hex').toString('base64');
      peers.set(current, undefined);
    } else if (key === 'endpoint') {
      if (current === undefined) return fail('an endpoint before any peer');
      peers.set(current, value);
    } else if (key === 'errno') errno = Number(value);
  }
  if (errno === undefined) return fail('no errno line');
  if (errno !== 0) return fail(`errno ${errno}`);
  return ok(peers);
}

/** Asks the control socket at `path`; resolves with the peers' endpoints or why not. Never rejects. */
export function readUapiEndpoints(path: string, timeoutMs = ANSWER_TIMEOUT_MS): Promise<Result<Map<string, string | undefined>, string>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tail = '';
    let settled = false;
    const socket = createConnection({ path });
    const finish = (result: Result<Map<string, string | undefined>, string>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(fail('no answer in time')), timeoutMs);
    socket.on('connect', () => socket.write('get=1\n\n'));
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) return finish(fail('an answer too large'));
      chunks.push(chunk);
      // The answer ends with its errno line and an empty line (looked for in the last bytes only).
      tail = (tail + chunk.toString('latin1')).slice(-TAIL_BYTES);
      const whole = size <= TAIL_BYTES;
      if ((whole ? /(^|\n)errno=-?\d+\n\n$/ : /\nerrno=-?\d+\n\n$/).test(tail)) finish(parseUapiEndpoints(Buffer.concat(chunks).toString('utf8')));
    });
    socket.on('end', () => finish(parseUapiEndpoints(Buffer.concat(chunks).toString('utf8'))));
    socket.on('error', (error: NodeJS.ErrnoException) => finish(fail(error.code ?? 'socket error')));
  });
}
