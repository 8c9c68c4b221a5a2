/**
 * Options of the reconfig-wg daemon, with every default applied in one place.
 */
import { accessSync, constants } from 'node:fs';
import { parseCommand } from '../common/command.js';
import { ReconfigError, usageError } from '../common/errors.js';
import { PINHOLE_MODES, type PinholeMode } from './deliver.js';
import { defaultPersist, parsePersist, type PersistChoice } from './tell/persist.js';
import { defaultStatusFile as statusFileFor } from './tell/status.js';

export interface ReconfigOptions {
  /** WireGuard interface; undefined means "the only one there is" */
  readonly interface: string | undefined;
  /** capture device (libpcap name); `any` sees every interface */
  readonly device: string;
  /** exit 0 after the first endpoint change */
  readonly once: boolean;
  /** log what would change, change nothing (and hand nothing to WireGuard) */
  readonly dryRun: boolean;
  /** hand vouched-for packets to WireGuard through a raw socket (false: only `wg set`) */
  readonly inject: boolean;
  /** conntrack pinhole before each injection: decided by a self-test, always, or never */
  readonly pinhole: PinholeMode;
  /** undefined: derived from the interface name */
  readonly pidFile: string | undefined;
  readonly stateFile: string | undefined;
  /** how often the WireGuard configuration is re-read, to follow a new port or key */
  readonly refreshMs: number;
  /** at most one `wg show` re-read per this interval when an unknown key proves genuine */
  readonly unknownPeerRefreshMs: number;
  /** where a confirmed endpoint is saved */
  readonly persist: PersistChoice;
  /** run after each confirmed change; undefined: none */
  readonly hook: readonly string[] | undefined;
  readonly hookTimeoutMs: number;
  /** undefined: derived from the interface name */
  readonly statusFile: string | undefined;
}

/** What the command line gives, before validation. */
export interface ReconfigInput extends Partial<Omit<ReconfigOptions, 'persist' | 'hook'>> {
  /** --persist text, or the parsed choice */
  readonly persist?: string | PersistChoice;
  /** --hook text, or argv */
  readonly hook?: string | readonly string[];
  /** --hook-timeout in seconds, as typed or as a number */
  readonly hookTimeout?: string | number;
}

export const DEFAULTS = {
  device: 'any',
  once: false,
  dryRun: false,
  inject: true,
  pinhole: 'auto',
  refreshMs: 10_000,
  unknownPeerRefreshMs: 5_000,
  hookTimeoutMs: 10_000,
} as const;

/** Linux interface names: at most 15 bytes, no slash, no white space (dev_valid_name). */
const INTERFACE_NAME = /^[A-Za-z0-9_.=+:-]{1,15}$/;

export function validateInterfaceName(name: string): string {
  if (!INTERFACE_NAME.test(name) || name === '.' || name === '..') {
    throw usageError(`'${name}' is not a valid interface name (1 to 15 letters, digits or _.=+:-).`);
  }
  return name;
}

function hookArgv(hook: string | readonly string[] | undefined): readonly string[] | undefined {
  if (hook === undefined || typeof hook !== 'string') return hook;
  const parsed = parseCommand(hook);
  if (!parsed.ok) throw new ReconfigError('E_USAGE', `--hook ${parsed.reason}.`);
  return parsed.value;
}

function hookTimeoutMs(input: ReconfigInput): number {
  if (input.hookTimeout !== undefined) {
    const seconds = typeof input.hookTimeout === 'number' ? input.hookTimeout : /^\d+(\.\d+)?$/.test(input.hookTimeout) ? Number(input.hookTimeout) : Number.NaN;
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
      throw new ReconfigError('E_USAGE', `--hook-timeout must be a number of seconds above 0 and at most 3600, not ${String(input.hookTimeout)}.`);
    }
    return Math.round(seconds * 1000);
  }
  return input.hookTimeoutMs ?? DEFAULTS.hookTimeoutMs;
}

export function normalizeOptions(input: ReconfigInput): ReconfigOptions {
  const iface = input.interface === undefined ? undefined : validateInterfaceName(input.interface);
  const device = input.device ?? DEFAULTS.device;
  if (device.length === 0) throw usageError('The capture device (-d) must not be empty; use -d any to capture on all.');
  const pinhole = input.pinhole ?? DEFAULTS.pinhole;
  if (!PINHOLE_MODES.includes(pinhole)) {
    throw usageError(`--pinhole must be one of ${PINHOLE_MODES.join(', ')}, not '${String(pinhole)}'.`);
  }
  return {
    interface: iface,
    device,
    once: input.once ?? DEFAULTS.once,
    dryRun: input.dryRun ?? DEFAULTS.dryRun,
    inject: input.inject ?? DEFAULTS.inject,
    pinhole,
    pidFile: input.pidFile,
    stateFile: input.stateFile,
    refreshMs: input.refreshMs ?? DEFAULTS.refreshMs,
    unknownPeerRefreshMs: input.unknownPeerRefreshMs ?? DEFAULTS.unknownPeerRefreshMs,
    persist: typeof input.persist === 'string' ? parsePersist(input.persist) : (input.persist ?? defaultPersist()),
    hook: hookArgv(input.hook),
    hookTimeoutMs: hookTimeoutMs(input),
    statusFile: input.statusFile,
  };
}

function writableDir(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** /run when we may write there (root), else the temp directory. */
export function defaultPidFile(program: string, iface: string): string {
  return writableDir('/run') ? `/run/${program}-${iface}.pid` : `/tmp/${program}-${iface}.pid`;
}

/** /var/lib/reconfig-wg when we may write there (root), else the temp directory. */
export function defaultStateFile(iface: string): string {
  // under a systemd unit with StateDirectory=reconfig-wg only that directory is writable
  const writable = writableDir('/var/lib/reconfig-wg') || writableDir('/var/lib');
  return writable ? `/var/lib/reconfig-wg/${iface}.json` : `/tmp/reconfig-wg-${iface}.json`;
}

/** /run/reconfig-wg/IFACE.json (under /tmp when /run is not writable). */
export function defaultStatusFile(iface: string): string {
  return statusFileFor(iface, writableDir('/run'));
}

/** Where an instance leaves its live session indices for its successor: beside its pid file,
 *  in a runtime directory (/run), so nothing is written to flash. */
export function sessionsFileFor(pidFile: string): string {
  return `${pidFile.replace(/\.pid$/, '')}.sessions.json`;
}
