/** The port-knock command's name and how /proc shows it. */
import type { ProgramIdentity } from '../common/pidfile.js';

export const PROGRAM = 'port-knock';
export const IDENTITY: ProgramIdentity = { title: PROGRAM, entry: 'knock/cli.js' };
