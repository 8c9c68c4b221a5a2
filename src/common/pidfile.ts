/**
 * One instance per interface: the pid file is the lock. A pid file is trusted only as far as
 * /proc confirms it: the process it names must be alive and be the same program, because a
 * stale file can name a process id the kernel has since given to someone else. A file whose
 * process is gone, or is another program, is stale and is taken over; -k and a re-arm never
 * signal a process that is not ours.
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { ReconfigError } from './errors.js';

/** How /proc shows one of our daemons. */
export interface ProgramIdentity {
  /** the process title the command sets as it starts (`reconfig-wg`) */
  readonly title: string;
  /** its entry point under dist/src, as node's argument (`reconfig/cli.js`) */
  readonly entry: string;
}

export function readPid(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 && String(pid) === text.trim() ? pid : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else, which still means it is alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
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
 * True if `pid` is alive and its command line is `identity`'s: the title it sets itself, the
 * command's name (a bin link), or node running its entry point. Without /proc there is
 * nothing to check against, and a live process is taken at its word.
 */
export function isProgram(pid: number, identity: ProgramIdentity): boolean {
  if (!isAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT' || !procMounted();
  }
  const args = cmdline.split('\0').slice(0, 3);
  const base = (arg: string): string => arg.slice(arg.lastIndexOf('/') + 1);
  return args.some((arg) => arg === identity.title || base(arg) === identity.title || arg.endsWith(`/${identity.entry}`));
}

/** The pid in the file, if that process is alive and is `identity`'s program. */
export function runningInstance(path: string, identity: ProgramIdentity): number | undefined {
  const pid = readPid(path);
  return pid !== undefined && isProgram(pid, identity) ? pid : undefined;
}

/** Writes our pid; throws E_ALREADY_RUNNING if another live instance of ours holds the file. */
export function acquirePidFile(path: string, what: string, identity: ProgramIdentity): () => void {
  const holder = runningInstance(path, identity);
  if (holder !== undefined && holder !== process.pid) {
    throw new ReconfigError(
      'E_ALREADY_RUNNING',
      `${what} is already running as pid ${holder} (pid file ${path}). Stop it with -k, or pass another --pid-file.`,
    );
  }
  try {
    writeFileAtomic(path, `${process.pid}\n`);
  } catch (error) {
    throw new ReconfigError(
      'E_PID_FILE',
      `Cannot write pid file ${path}: ${(error as Error).message}. Pass --pid-file with a writable path.`,
    );
  }
  return () => {
    if (readPid(path) === process.pid) rmSync(path, { force: true });
  };
}

/** Sends `signal` to our instance named in the pid file; throws E_NOT_RUNNING if there is none. */
export function signalPidFile(path: string, signal: NodeJS.Signals, what: string, identity: ProgramIdentity): number {
  const named = readPid(path);
  const pid = runningInstance(path, identity);
  if (pid === undefined) {
    const why =
      named === undefined
        ? `no pid in ${path}`
        : isAlive(named)
          ? `pid file ${path} names pid ${named}, which is another program; the file is stale and was left alone`
          : `pid file ${path} names pid ${named}, which has exited`;
    throw new ReconfigError('E_NOT_RUNNING', `${what} is not running (${why}).`, { exitCode: 1 });
  }
  process.kill(pid, signal);
  return pid;
}

/** Waits until `pid` has exited, up to `timeoutMs`; returns whether it did. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return !isAlive(pid);
}
