/**
 * Options of the reconfig-wg daemon, with every default applied in one place.
 */
import { dirname, join } from 'node:path';
import { parseCommand } from '../common/command.js';
import { ReconfigError, usageError } from '../common/errors.js';
import { ensurePrivateDir } from '../common/private-dir.js';
import { runtimeDir, STATE_DIR } from '../common/runtime-dir.js';
import { registryOptions, type RegistryOptions } from '../registry/options.js';
import { PINHOLE_MODES, type PinholeMode } from './deliver.js';
import { defaultPersist, parsePersist, type PersistChoice } from './tell/persist.js';

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
  /** serve the endpoint registry (src/registry/) on this address of the interface; undefined: not */
  readonly registry: RegistryOptions | undefined;
}

/** What the command line gives, before validation. */
export interface ReconfigInput extends Partial<Omit<ReconfigOptions, 'persist' | 'hook' | 'registry'>> {
  /** --registry text, or the parsed options */
  readonly registry?: string | RegistryOptions;
  /** --registry-zone text */
  readonly registryZone?: string;
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
    registry: typeof input.registry === 'object' ? input.registry : registryOptions(input.registry, input.registryZone),
  };
}

/** RUNTIME/PROGRAM/NAME.pid: /run/reconfig-wg/wg0.pid, /run/port-knock/19000.pid. */
export function defaultPidFile(program: string, name: string): string {
  return join(runtimeDir(program), `${name}.pid`);
}

/** /var/lib/reconfig-wg/IFACE.json (StateDirectory=reconfig-wg under the systemd unit). */
export function defaultStateFile(iface: string): string {
  return join(STATE_DIR, `${iface}.json`);
}

/** /run/reconfig-wg/IFACE.json (/var/run/… where there is no /run). */
export function defaultStatusFile(iface: string): string {
  return join(runtimeDir('reconfig-wg'), `${iface}.json`);
}

/** Where an instance leaves its live session indices for its successor: beside its pid file,
 *  in the runtime directory, so nothing is written to flash. */
export function sessionsFileFor(pidFile: string): string {
  return `${pidFile.replace(/\.pid$/, '')}.sessions.json`;
}

/** The files one instance writes, each in a directory only root can write. */
export interface InstanceFiles {
  readonly pidFile: string;
  readonly stateFile: string;
  readonly statusFile: string;
  readonly sessionsFile: string;
}

export function instanceFiles(options: Pick<ReconfigOptions, 'pidFile' | 'stateFile' | 'statusFile'>, program: string, iface: string): InstanceFiles {
  const pidFile = options.pidFile ?? defaultPidFile(program, iface);
  return {
    pidFile,
    stateFile: options.stateFile ?? defaultStateFile(iface),
    statusFile: options.statusFile ?? defaultStatusFile(iface),
    sessionsFile: sessionsFileFor(pidFile),
  };
}

const SERVICE_FIX = 'run it as root (the systemd unit gives it RuntimeDirectory= and StateDirectory=reconfig-wg; elsewhere it makes /run/reconfig-wg, or /var/run/reconfig-wg, itself)';

/**
 * Checks, before anything runs, that every file of the instance goes to a private directory
 * (creating a default one that is missing): exit 2 and the fix otherwise, never a fallback to a
 * shared directory.
 */
export function prepareInstanceFiles(files: InstanceFiles, given: Pick<ReconfigOptions, 'pidFile' | 'stateFile' | 'statusFile'>): void {
  const fix = (what: string, flag: string, path: string, isGiven: boolean): string =>
    `The ${what} (${path}) needs a directory that root alone can write: ${isGiven ? '' : `${SERVICE_FIX}, or `}pass ${flag} with a path in one.`;
  ensurePrivateDir(dirname(files.pidFile), { fix: fix('pid file', '--pid-file', files.pidFile, given.pidFile !== undefined) });
  ensurePrivateDir(dirname(files.statusFile), { fix: fix('status file', '--status-file', files.statusFile, given.statusFile !== undefined) });
  ensurePrivateDir(dirname(files.stateFile), { mode: 0o700, fix: fix('state file', '--state-file', files.stateFile, given.stateFile !== undefined) });
}
