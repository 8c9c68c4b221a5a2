/**
 * Where a confirmed endpoint is written so that it survives an interface restart or a reboot:
 * OpenWrt's UCI (persist-uci.ts), a wg-quick file (persist-wgquick.ts), or nowhere.
 */
import { existsSync } from 'node:fs';
import { ReconfigError } from '../../common/errors.js';

export type PersistOutcome = 'updated' | 'unchanged';

export interface Persister {
  /** for logs and `check`: "UCI network config", "wg-quick file /etc/wireguard/wg0.conf" */
  readonly target: string;
  /** Points the peer at `endpoint` in the target; writes nothing when it is already there. Throws a ReconfigError (E_PERSIST). */
  persist(publicKey: string, endpoint: string): Promise<PersistOutcome>;
  /** At start: throws an E_PERSIST ReconfigError with exit status 2 when the target cannot be read at all. */
  verify(): Promise<void>;
}

export type PersistChoice =
  | { readonly kind: 'none' }
  /** confDir: uci's -c; undefined: uci's own default (/etc/config) */
  | { readonly kind: 'uci'; readonly confDir: string | undefined }
  /** path: undefined means /etc/wireguard/IFACE.conf */
  | { readonly kind: 'wg-quick'; readonly path: string | undefined };

/** OpenWrt says who it is in this file; nothing else is needed to tell. */
export const OPENWRT_RELEASE = '/etc/openwrt_release';

export function defaultPersist(releaseFile = OPENWRT_RELEASE): PersistChoice {
  return existsSync(releaseFile) ? { kind: 'uci', confDir: undefined } : { kind: 'none' };
}

/** `--persist uci|uci=CONFDIR|wg-quick|wg-quick=PATH|none` */
export function parsePersist(text: string): PersistChoice {
  const equals = text.indexOf('=');
  const kind = equals < 0 ? text : text.slice(0, equals);
  const value = equals < 0 ? undefined : text.slice(equals + 1);
  if (value === '') throw new ReconfigError('E_USAGE', `--persist ${text}: the path after = is empty. Leave out =PATH for the default.`);
  if (kind === 'none' && value === undefined) return { kind: 'none' };
  if (kind === 'uci') return { kind: 'uci', confDir: value };
  if (kind === 'wg-quick') return { kind: 'wg-quick', path: value };
  throw new ReconfigError('E_USAGE', `--persist must be uci, wg-quick[=PATH] or none, not '${text}'.`);
}

export function describePersist(choice: PersistChoice): string {
  switch (choice.kind) {
    case 'none':
      return 'none';
    case 'uci':
      return choice.confDir === undefined ? 'uci' : `uci=${choice.confDir}`;
    case 'wg-quick':
      return choice.path === undefined ? 'wg-quick' : `wg-quick=${choice.path}`;
  }
}
