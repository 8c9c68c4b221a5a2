/**
 * One instance per interface: the pid file is the lock. A pid file whose process is gone is
 * stale and is taken over; one whose process lives means another instance runs.
 */
import { readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { ReconfigError } from './errors.js';

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

/** Writes our pid; throws E_ALREADY_RUNNING if a live process holds the file. */
export function acquirePidFile(path: string, what: string): () => void {
  const holder = readPid(path);
  if (holder !== undefined && holder !== process.pid && isAlive(holder)) {
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

/** Sends `signal` to the process named in the pid file; throws E_NOT_RUNNING if there is none. */
export function signalPidFile(path: string, signal: NodeJS.Signals, what: string): number {
  const pid = readPid(path);
  if (pid === undefined || !isAlive(pid)) {
    throw new ReconfigError('E_NOT_RUNNING', `${what} is not running (no live process in pid file ${path}).`, {
      exitCode: 1,
    });
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
