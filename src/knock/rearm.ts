/**
 * The default knock action: re-arm reconfig-wg for one interface. A running instance is told
 * through its pid file (SIGUSR1); when none runs, `reconfig-wg --once -i IFACE` is started.
 */
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isAlive, readPid } from '../common/pidfile.js';
import { PROGRAM as RECONFIG } from '../reconfig/daemon.js';
import { defaultPidFile } from '../reconfig/options.js';

/** The reconfig-wg of this installation, whatever PATH says. */
export const RECONFIG_CLI = fileURLToPath(new URL('../reconfig/cli.js', import.meta.url));

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
 * What the pid file says about reconfig-wg, checked against the live process. reconfig-wg
 * handles SIGUSR1 from the moment its pid file exists, so a running one can always be told.
 */
export function findReconfig(pidFile: string): ReconfigState {
  const pid = readPid(pidFile);
  return pid !== undefined && isAlive(pid) && isReconfigProcess(pid) ? { kind: 'running', pid } : { kind: 'absent' };
}

/**
 * A stale pid file can name a process id the kernel has since given to someone else, and
 * SIGUSR1 kills most programs. Where /proc tells us the command line, it must be reconfig-wg.
 */
function isReconfigProcess(pid: number): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch (error) {
    // no /proc here at all: the pid file is all there is to go on
    return (error as NodeJS.ErrnoException).code !== 'ENOENT' || !procMounted();
  }
  // meow retitles the process (its cmdline becomes the title); before that it is node's argv
  const args = cmdline.split('\0');
  return args[0] === RECONFIG || args.some((arg) => arg.endsWith('/reconfig/cli.js'));
}

function procMounted(): boolean {
  try {
    statSync('/proc/self');
    return true;
  } catch {
    return false;
  }
}
