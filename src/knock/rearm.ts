/**
 * The default knock action: re-arm reconfig-wg for one interface. A running instance is told
 * through its pid file (SIGUSR1); when none runs, `reconfig-wg --once -i IFACE` is started.
 */
import { runningInstance } from '../common/pidfile.js';
import type { ProgramIdentity } from '../common/proc.js';
import { IDENTITY as RECONFIG_IDENTITY, PROGRAM as RECONFIG } from '../reconfig/identity.js';
import { defaultPidFile } from '../reconfig/options.js';

/** The reconfig-wg of this installation, whatever PATH says. */
export const RECONFIG_CLI = RECONFIG_IDENTITY.cli;

export type ReconfigState = { readonly kind: 'running'; readonly pid: number } | { readonly kind: 'absent' };

export function reconfigPidFile(iface: string): string {
  return defaultPidFile(RECONFIG, iface);
}

/** `reconfig-wg --once -i IFACE`, with its pid file when that is not the default one. */
export function reconfigArgv(iface: string, pidFile?: string): string[] {
  const argv = [process.execPath, RECONFIG_CLI, '--once', '-i', iface, '--log-format', 'json'];
  return pidFile === undefined ? argv : [...argv, '--pid-file', pidFile];
}

/**
 * What the pid file says about reconfig-wg, checked against the live process: a stale pid
 * file can name a process id the kernel has since given to someone else, and SIGUSR1 kills
 * most programs. reconfig-wg handles SIGUSR1 from the moment its pid file exists, so a
 * running one can always be told.
 */
export function findReconfig(pidFile: string, identity: ProgramIdentity = RECONFIG_IDENTITY): ReconfigState {
  const pid = runningInstance(pidFile, identity);
  return pid === undefined ? { kind: 'absent' } : { kind: 'running', pid };
}
