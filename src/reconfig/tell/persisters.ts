/**
 * --persist → the Persister that does it.
 */
import type { PersistChoice, Persister } from './persist.js';
import { uciPersister } from './persist-uci.js';
import { defaultWgQuickPath, wgQuickPersister } from './persist-wgquick.js';

export function createPersister(choice: PersistChoice, iface: string): Persister | undefined {
  switch (choice.kind) {
    case 'none':
      return undefined;
    case 'uci':
      return uciPersister({ iface, confDir: choice.confDir });
    case 'wg-quick':
      return wgQuickPersister(choice.path ?? defaultWgQuickPath(iface));
  }
}
