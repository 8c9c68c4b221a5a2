/**
 * The reconfig-wg command's name and how /proc shows it (node running this cli file), apart
 * from the daemon so that port-knock can find a running reconfig-wg without loading it.
 */
import { fileURLToPath } from 'node:url';
import type { ProgramIdentity } from '../common/proc.js';

export const PROGRAM = 'reconfig-wg';
export const IDENTITY: ProgramIdentity = { name: PROGRAM, cli: fileURLToPath(new URL('./cli.js', import.meta.url)) };
