/**
 * Starting the project's own commands inside lab namespaces, exactly as a user would run them,
 * and reading their JSON log lines.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import { nsRun, type LabProcess, type Scope } from './netns.js';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
export const RECONFIG_CLI = here('../../src/reconfig/cli.js');
export const SEND_UDP = here('./send-udp.js');
export const KNOCK_CLI = here('../../src/knock/cli.js');

export interface LogEvent {
  readonly event?: string;
  readonly level?: number;
  readonly msg?: string;
  readonly [key: string]: unknown;
}

export function parseEvent(line: string): LogEvent | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as LogEvent;
  } catch {
    return undefined;
  }
}

export function events(proc: LabProcess, name?: string): LogEvent[] {
  return proc.lines.map(parseEvent).filter((e): e is LogEvent => e !== undefined && (name === undefined || e.event === name));
}

export async function waitForEvent(proc: LabProcess, name: string, timeoutMs: number, where: (e: LogEvent) => boolean = () => true): Promise<LogEvent | undefined> {
  const line = await proc.waitForLine((l) => {
    const e = parseEvent(l);
    return e?.event === name && where(e);
  }, timeoutMs);
  return line === undefined ? undefined : parseEvent(line);
}

/** reconfig-wg's flags for R2's interface, with its pid and state files kept in `dir`. */
export function daemonArgs(lab: Lab, dir: string, extra: readonly string[] = []): string[] {
  return ['-i', lab.r2.wg, '--pid-file', join(dir, 'reconfig.pid'), '--state-file', join(dir, 'state.json'), ...extra];
}

/**
 * Starts `reconfig-wg` in a namespace with JSON logs; waits for `listening` unless told not to.
 * `cli` is another entry point to the same command; `nodeArgs` go to node (--cpu-prof).
 */
export async function startReconfigWg(
  scope: Scope,
  ns: string,
  args: readonly string[],
  wait = true,
  cli = RECONFIG_CLI,
  nodeArgs: readonly string[] = [],
): Promise<LabProcess> {
  const proc = scope.start(ns, process.execPath, [...nodeArgs, cli, '--log-format', 'json', ...args]);
  if (wait && (await waitForEvent(proc, 'listening', 15_000)) === undefined) {
    throw new Error(`reconfig-wg did not start listening:\n${proc.lines.join('\n')}`);
  }
  return proc;
}

/** Sends UDP datagrams from `ns` to host:port. */
export async function sendUdp(ns: string, host: string, port: number, payloads: readonly Buffer[]): Promise<void> {
  await nsRun(ns, process.execPath, [SEND_UDP, host, String(port), ...payloads.map((p) => p.toString('hex'))]);
}

/** Starts `port-knock` in a namespace with JSON logs; waits for `listening`. */
export async function startPortKnock(scope: Scope, ns: string, args: readonly string[]): Promise<LabProcess> {
  const proc = scope.start(ns, process.execPath, [KNOCK_CLI, '--log-format', 'json', ...args]);
  if ((await waitForEvent(proc, 'listening', 15_000)) === undefined) {
    throw new Error(`port-knock did not start listening:\n${proc.lines.join('\n')}`);
  }
  return proc;
}
