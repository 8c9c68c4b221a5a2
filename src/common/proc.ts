/**
 * What /proc says about a process: whether it is alive, and whether it is one of our daemons.
 * A pid can name a process the kernel has since given to someone else, so a pid read from a
 * file is trusted only as far as this confirms it: -k, a knock's SIGUSR1 and `status` all
 * depend on it.
 */
import { readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';

/** How /proc shows one of our daemons: node running its cli file. */
export interface ProgramIdentity {
  /** the command's name, for messages (`reconfig-wg`) */
  readonly name: string;
  /** the absolute path of its cli file (dist/src/reconfig/cli.js); a bin link resolves to it */
  readonly cli: string;
}

/** Whether a process with this id exists (EPERM: it does, but is not ours to signal). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** node as a command line names it: `node`, `nodejs` (Debian), or the path of the node running us. */
function isNode(argv0: string): boolean {
  const name = basename(argv0);
  return name === 'node' || name === 'nodejs' || argv0 === process.execPath;
}

function realpath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * True if the command line (`/proc/PID/cmdline`, NUL-separated) is node running `identity`'s
 * cli file: argv[0] is node, and the first argument that is not one of node's options resolves
 * (relative to `cwd`, the process's working directory) to the same file as `identity.cli`.
 * A name that merely contains the command's (an editor on /etc/config/reconfig-wg, the shell
 * running /etc/init.d/reconfig-wg) is another program. Pure apart from resolving the paths.
 */
export function isProgramCmdline(cmdline: string, identity: ProgramIdentity, cwd: string): boolean {
  const argv = cmdline.split('\0');
  if (argv[argv.length - 1] === '') argv.pop();
  const [argv0, ...rest] = argv;
  if (argv0 === undefined || !isNode(argv0)) return false;
  const script = rest.find((arg) => !arg.startsWith('-'));
  if (script === undefined || script === '') return false;
  const resolved = realpath(isAbsolute(script) ? script : join(cwd, script));
  return resolved !== undefined && resolved === realpath(identity.cli);
}

function procMounted(): boolean {
  try {
    statSync('/proc/self');
    return true;
  } catch {
    return false;
  }
}

/**
 * True if `pid` is alive and /proc shows it running `identity`'s program. Without /proc there
 * is nothing to check against, and a live process is taken at its word.
 */
export function isProgram(pid: number, identity: ProgramIdentity): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || !isAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return !procMounted();
  }
  let cwd: string;
  try {
    cwd = readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    cwd = '/';
  }
  return isProgramCmdline(cmdline, identity, cwd);
}
