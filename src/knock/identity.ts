/** The port-knock command's name and how /proc shows it (node running this cli file). */
import { fileURLToPath } from 'node:url';
import type { ProgramIdentity } from '../common/proc.js';

export const PROGRAM = 'port-knock';
export const IDENTITY: ProgramIdentity = { name: PROGRAM, cli: fileURLToPath(new URL('./cli.js', import.meta.url)) };
