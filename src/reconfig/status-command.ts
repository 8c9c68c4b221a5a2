/**
 * `reconfig-wg status [-i IFACE] [--json]`: reads the running daemon's status file and prints
 * it as a table for people, or as JSON (with `running` added) for scripts.
 *
 * Exit status: 0 the daemon runs, 1 it does not (or left no status), 2 bad usage.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FlagSpecs } from '../common/args.js';
import { readCommandArgs, reportFatal, usageError } from '../common/cli.js';
import { ReconfigError } from '../common/errors.js';
import { unusableDir } from '../common/private-dir.js';
import { isProgram } from '../common/proc.js';
import { runtimeDir } from '../common/runtime-dir.js';
import { IDENTITY } from './identity.js';
import { defaultStatusFile, validateInterfaceName } from './options.js';
import { readStatus, type Status } from './tell/status.js';

const PROGRAM = 'reconfig-wg status';

const help = `
  Prints what a running reconfig-wg knows: its interface and listen port, the capture's
  counters, and per peer its endpoint, when and how it last changed, and its counts.

  Usage
    $ reconfig-wg status [-i IFACE] [--json] [--status-file PATH]

  Options
    -i, --interface IFACE   which daemon (default: the only status file there is)
        --json              the status file as JSON, with "running" added
        --status-file PATH  read this file (when the daemon runs with --status-file)
    -h, --help              show this help

  Exit status
    0 the daemon runs, 1 it does not (or left no status file), 2 bad usage
`;

/**
 * The status file to read: the interface's in the runtime directory, or the only one there is.
 * Nothing outside that directory is looked at (a shared /tmp could hold anyone's file).
 */
function findStatusFile(iface: string | undefined): string {
  if (iface !== undefined) return defaultStatusFile(iface);
  const dir = runtimeDir('reconfig-wg');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    names = [];
  }
  // other files live there too (the pid file, the session indices): only status files count
  const statuses = names
    .filter((name) => name.endsWith('.json') && !name.startsWith('.'))
    .map((name) => join(dir, name))
    .filter((path) => readStatus(path).ok);
  if (statuses.length === 1) return statuses[0]!;
  if (statuses.length === 0) {
    throw new ReconfigError('E_NOT_RUNNING', `No status file in ${dir}: is reconfig-wg running? Pass -i IFACE, or --status-file if it runs with its own.`, { exitCode: 1 });
  }
  throw usageError(`Several status files (${statuses.join(', ')}); choose one with -i IFACE.`);
}

/** Whether the daemon that wrote the status still runs: its pid is alive and is reconfig-wg. */
export function isRunning(status: Status): boolean {
  return isProgram(status.pid, IDENTITY);
}

function ago(iso: string, now: number): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} days ago`;
}

function counts(record: Readonly<Record<string, number>>): string {
  const entries = Object.entries(record);
  return entries.length === 0 ? '-' : entries.map(([reason, n]) => `${reason} ${n}`).join(', ');
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')).join('\n');
}

function formatRegistry(registry: NonNullable<Status['registry']>): string {
  const what = registry.state === 'serving' ? `serving ${registry.peers} peer${registry.peers === 1 ? '' : 's'}` : 'waiting for its address on the interface';
  return `registry: _wireguard._udp.${registry.zone} on ${registry.listen}, ${what}; answered: ${counts(registry.answered)}; refused: ${counts(registry.refused)}; ignored: ${counts(registry.ignored)}`;
}

/** The status for people. Pure, so tests can read it. */
export function formatStatus(status: Status, running: boolean, now = Date.now()): string {
  const state = running ? `running (pid ${status.pid})` : `not running (pid ${status.pid} is gone; it did not stop cleanly)`;
  const capture = status.capture === null ? 'capture: not open' : `capture: ${status.capture.received} received, ${status.capture.dropped} dropped`;
  const lines = [
    `reconfig-wg on ${status.interface}: ${state}, since ${status.startedAt}`,
    `listen port ${status.listenPort}; persist: ${status.persist}; ${capture}`,
    `ignored: ${counts(status.ignored)}`,
    ...(status.registry == null ? [] : [formatRegistry(status.registry)]),
    `status written ${status.updatedAt} (${ago(status.updatedAt, now)})`,
    '',
  ];
  if (status.peers.length === 0) return `${lines.join('\n')}\nno peers\n`;
  const rows = [
    ['PEER', 'ENDPOINT', 'LAST CHANGE', 'HOW', 'COUNTS'],
    ...status.peers.map((peer) => [
      peer.publicKey,
      peer.endpoint ?? '(none)',
      peer.lastChange === null ? '-' : `${peer.lastChange.at} (${ago(peer.lastChange.at, now)})`,
      peer.lastChange?.how ?? '-',
      counts(peer.counts),
    ]),
  ];
  return `${lines.join('\n')}\n${table(rows)}\n`;
}

const FLAGS = {
  interface: { type: 'string', shortFlag: 'i', value: 'a WireGuard interface name, e.g. wg0' },
  json: { type: 'boolean' },
  statusFile: { type: 'string', value: 'a path' },
  help: { type: 'boolean', shortFlag: 'h' },
} as const satisfies FlagSpecs;

export async function main(argv: readonly string[]): Promise<number> {
  const parsed = readCommandArgs(PROGRAM, help, FLAGS, argv);
  if ('exit' in parsed) return parsed.exit;
  const { flags, input } = parsed;
  try {
    if (input.length > 0) throw usageError(`unexpected argument '${input[0] ?? ''}'.`);
    const iface = flags.interface === undefined ? undefined : validateInterfaceName(flags.interface);
    const path = flags.statusFile ?? findStatusFile(iface);
    const unsafe = existsSync(dirname(path)) ? unusableDir(dirname(path), { write: false }) : undefined;
    if (unsafe !== undefined) throw new ReconfigError('E_STATUS_FILE', `The status file ${path} is not read: ${unsafe}. reconfig-wg writes it only to a directory only root can write.`, { exitCode: 1 });
    const status = readStatus(path);
    if (!status.ok) {
      const hint =
        status.reason === 'does not exist'
          ? ' Is reconfig-wg running for this interface? (It writes the file when it starts.)'
          : status.reason.startsWith('is not read:')
            ? ' reconfig-wg did not write it (it writes a regular file of its own user, in a directory only root can write): remove it.'
            : ' It is rewritten when reconfig-wg starts.';
      throw new ReconfigError('E_STATUS_FILE', `The status file ${path} ${status.reason}.${hint}`, { exitCode: 1 });
    }
    const running = isRunning(status.value);
    process.stdout.write(flags.json ? `${JSON.stringify({ ...status.value, running }, null, 2)}\n` : formatStatus(status.value, running));
    return running ? 0 : 1;
  } catch (error) {
    return reportFatal(PROGRAM, error);
  }
}
