/**
 * The reconfig-wg command's name and how /proc shows it, apart from the daemon so that
 * port-knock can find a running reconfig-wg without loading it.
 */
import type { ProgramIdentity } from '../common/pidfile.js';

export const PROGRAM = 'reconfig-wg';
export const IDENTITY: ProgramIdentity = { title: PROGRAM, entry: 'reconfig/cli.js' };
