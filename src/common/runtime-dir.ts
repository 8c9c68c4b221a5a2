/**
 * Where the daemons keep their files by default. Runtime files (pid, status, session indices)
 * go to a directory of their own under /run, the one the systemd units create
 * (RuntimeDirectory=) and the OpenWrt init scripts make; OpenWrt without /run has it under
 * /var/run. Never a shared /tmp: see private-dir.ts.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

/** replay watermarks, kept across restarts (StateDirectory=reconfig-wg) */
export const STATE_DIR = '/var/lib/reconfig-wg';

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** /run/PROGRAM, or /var/run/PROGRAM where there is no /run. */
export function runtimeDir(program: string): string {
  return join(isDirectory('/run') ? '/run' : '/var/run', program);
}
