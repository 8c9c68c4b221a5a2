/**
 * One instance per interface: the pid file is the lock. A pid file is trusted only as far as
 * /proc confirms it: the process it names must be alive and be the same program, because a
 * stale file can name a process id the kernel has since given to someone else. A file whose
 * process is gone, or is another program, is stale and is taken over; -k and a re-arm never
 * signal a process that is not ours.
 */
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { ReconfigError } from './errors.js';
import { ensurePrivateDir, readTrustedFile } from './private-dir.js';
import { isAlive, isProgram, type ProgramIdentity } from './proc.js';
import { fail, ok, type Result } from './result.js';

export { isAlive, isProgram, type ProgramIdentity } from './proc.js';

/** The pid in the file, or why there is none (missing, not ours, a link, not a pid). */
export function readPidFile(path: string): Result<number> {
  const text = readTrustedFile(path);
  if (!text.ok) return text.reason === 'does not exist' ? text : fail(`is not read: ${text.reason}`);
  const trimmed = text.value.trim();
  const pid = Number.parseInt(trimmed, 10);
  return Number.isSafeInteger(pid) && pid > 0 && String(pid) === trimmed ? ok(pid) : fail('holds no pid');
}

export function readPid(path: string): number | undefined {
  const pid = readPidFile(path);
  return pid.ok ? pid.value : undefined;
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
  ensurePrivateDir(dirname(path), { fix: 'The pid file needs a directory that root alone can write: run it as root (the service units give it one), or pass --pid-file with a path in one.' });
  try {
    writeFileAtomic(path, `${process.pid}\n`, 0o640);
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
  const named = readPidFile(path);
  const pid = runningInstance(path, identity);
  if (pid === undefined) {
    const why = !named.ok
      ? named.reason === 'does not exist'
        ? `no pid in ${path}`
        : `pid file ${path} ${named.reason}; it was left alone`
      : isAlive(named.value)
          ? `pid file ${path} names pid ${named.value}, which is another program; the file is stale and was left alone`
          : `pid file ${path} names pid ${named.value}, which has exited`;
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
