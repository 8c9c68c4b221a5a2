/**
 * `reconfig-wg mesh status [-i IFACE] [--json]`: the mesh client's status file, as a table for
 * people or as JSON (with `running` added) for scripts.
 *
 * Exit status: 0 the client runs, 1 it does not (or left no status), 2 bad usage.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FlagSpecs } from '../common/args.js';
import { readCommandArgs, reportFatal, usageError } from '../common/cli.js';
import { ReconfigError } from '../common/errors.js';
import { unusableDir } from '../common/private-dir.js';
import { isProgram } from '../common/proc.js';
import { runtimeDir } from '../common/runtime-dir.js';
import { IDENTITY } from '../reconfig/identity.js';
import { validateInterfaceName } from '../reconfig/options.js';
import { meshFiles } from './options.js';
import { formatMeshStatus, readMeshStatus } from './status.js';

const PROGRAM = 'reconfig-wg mesh status';

const help = `
  Prints what a running mesh client knows: the registry's state and, per peer, its path
  (direct, via hub while probing, via hub backed off, or left alone) and why.

  Usage
    $ reconfig-wg mesh status [-i IFACE] [--json] [--status-file PATH]

  Options
    -i, --interface IFACE   which client (default: the only mesh status file there is)
        --json              the status file as JSON, with "running" added
        --status-file PATH  read this file (when the client runs with --status-file)
    -h, --help              show this help

  Exit status
    0 the client runs, 1 it does not (or left no status file), 2 bad usage
`;

const FLAGS = {
  interface: { type: 'string', shortFlag: 'i', value: 'a WireGuard interface name, e.g. wg0' },
  json: { type: 'boolean' },
  statusFile: { type: 'string', value: 'a path' },
  help: { type: 'boolean', shortFlag: 'h' },
} as const satisfies FlagSpecs;

function findStatusFile(iface: string | undefined): string {
  if (iface !== undefined) return meshFiles({ pidFile: undefined, statusFile: undefined, peersFile: undefined }, iface).statusFile;
  const dir = runtimeDir('reconfig-wg');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    names = [];
  }
  const statuses = names.filter((name) => /^mesh-.+\.json$/.test(name) && !name.endsWith('.peers.json')).map((name) => join(dir, name)).filter((path) => readMeshStatus(path).ok);
  if (statuses.length === 1) return statuses[0]!;
  if (statuses.length === 0) throw new ReconfigError('E_NOT_RUNNING', `No mesh status file in ${dir}: is reconfig-wg mesh running? Pass -i IFACE, or --status-file if it runs with its own.`, { exitCode: 1 });
  throw usageError(`Several mesh status files (${statuses.join(', ')}); choose one with -i IFACE.`);
}

export async function main(argv: readonly string[]): Promise<number> {
  const parsed = readCommandArgs(PROGRAM, help, FLAGS, argv);
  if ('exit' in parsed) return parsed.exit;
  const { flags, input } = parsed;
  try {
    if (input.length > 0) throw usageError(`unexpected argument '${input[0] ?? ''}'.`);
    const iface = flags.interface === undefined ? undefined : validateInterfaceName(flags.interface);
    const path = flags.statusFile ?? findStatusFile(iface);
    const unsafe = existsSync(dirname(path)) ? unusableDir(dirname(path), { write: false }) : undefined;
    if (unsafe !== undefined) throw new ReconfigError('E_STATUS_FILE', `The status file ${path} is not read: ${unsafe}.`, { exitCode: 1 });
    const status = readMeshStatus(path);
    if (!status.ok) {
      const hint = status.reason === 'does not exist' ? ' Is reconfig-wg mesh running for this interface? (It writes the file when it starts.)' : '';
      throw new ReconfigError('E_STATUS_FILE', `The status file ${path} ${status.reason}.${hint}`, { exitCode: 1 });
    }
    const running = isProgram(status.value.pid, IDENTITY);
    process.stdout.write(flags.json ? `${JSON.stringify({ ...status.value, running }, null, 2)}\n` : formatMeshStatus(status.value, running));
    return running ? 0 : 1;
  } catch (error) {
    return reportFatal(PROGRAM, error);
  }
}
