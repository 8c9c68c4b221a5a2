/**
 * port-knock's -c: the knock's values as placeholders. Splitting and filling are shared with
 * reconfig-wg's --hook (src/common/command.ts).
 */
import { fillPlaceholders } from '../common/command.js';

export { parseCommand } from '../common/command.js';

export const PLACEHOLDERS = ['src', 'port', 'proto', 'family', 'ttl'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type KnockValues = Readonly<Record<Placeholder, string>>;

/** Fills {src}, {port}, {proto}, {family} and {ttl} in each argument. */
export function substitute(argv: readonly string[], values: KnockValues): string[] {
  return fillPlaceholders(argv, values);
}
