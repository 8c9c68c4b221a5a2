/**
 * Options of the reconfig-wg daemon, with every default applied in one place.
 */
import { accessSync, constants } from 'node:fs';
import { usageError } from '../common/errors.js';
import { PINHOLE_MODES, type PinholeMode } from './deliver.js';

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
}

export const DEFAULTS = {
  device: 'any',
  once: false,
  dryRun: false,
  inject: true,
  pinhole: 'auto',
  refreshMs: 10_000,
  unknownPeerRefreshMs: 5_000,
} as const;

/** Linux interface names: at most 15 bytes, no slash, no white space (dev_valid_name). */
const INTERFACE_NAME = /^[A-Za-z0-9_.=+:-]{1,15}$/;

export function validateInterfaceName(name: string): string {
  if (!INTERFACE_NAME.test(name) || name === '.' || name === '..') {
    throw usageError(`'${name}' is not a valid interface name (1 to 15 letters, digits or _.=+:-).`);
  }
  return name;
}

export function normalizeOptions(input: Partial<ReconfigOptions>): ReconfigOptions {
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

/** Where an instance leaves its live session indices for its successor: beside its pid file,
 *  in a runtime directory (/run), so nothing is written to flash. */
export function sessionsFileFor(pidFile: string): string {
  return `${pidFile.replace(/\.pid$/, '')}.sessions.json`;
}
