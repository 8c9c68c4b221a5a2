/**
 * Options of `reconfig-wg mesh`, every default applied in one place.
 */
import { join } from 'node:path';
import { usageError } from '../common/errors.js';
import { runtimeDir } from '../common/runtime-dir.js';
import { validateInterfaceName } from '../reconfig/options.js';
import { PROBE_WINDOW_MS, BACKOFF_FIRST_MS, BACKOFF_MAX_MS } from './path.js';
import { parseAddress, parsePrefix, canonicalAddress, type Prefix } from './prefix.js';
import { normalizeZone } from './records.js';
import { DEFAULT_REGISTRY_PORT, DEFAULT_REGISTRY_ZONE } from '../registry/options.js';
import type { RegistryAddress } from './registry-client.js';

export interface MeshOptions {
  readonly interface: string | undefined;
  readonly registry: RegistryAddress;
  readonly zone: string;
  /** undefined: the interface's own networks */
  readonly scope: readonly Prefix[] | undefined;
  /** persistent keepalive of probed and direct peers, seconds */
  readonly keepalive: number;
  /** how often the registry is asked */
  readonly intervalMs: number;
  /** how often WireGuard is read (handshakes, received bytes) */
  readonly watchMs: number;
  readonly maxPeers: number;
  readonly deadAfterMs: number;
  readonly probeWindowMs: number;
  readonly backoffFirstMs: number;
  readonly backoffMaxMs: number;
  readonly queryTimeoutMs: number;
  readonly queryTries: number;
  readonly pidFile: string | undefined;
  readonly statusFile: string | undefined;
  readonly peersFile: string | undefined;
}

export interface MeshInput {
  readonly interface?: string;
  readonly registry?: string;
  readonly zone?: string;
  readonly scope?: string;
  readonly keepalive?: string;
  readonly interval?: string;
  readonly maxPeers?: string;
  readonly pidFile?: string;
  readonly statusFile?: string;
  readonly peersFile?: string;
}

/** What the registry (reconfig-wg --registry) uses unless told otherwise. */
export const DEFAULT_ZONE = DEFAULT_REGISTRY_ZONE;
export const DEFAULT_PORT = DEFAULT_REGISTRY_PORT;

export const MESH_DEFAULTS = {
  keepalive: 1,
  intervalMs: 5_000,
  watchMs: 500,
  maxPeers: 32,
  queryTimeoutMs: 1_000,
  queryTries: 3,
} as const;

/** `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address → the registry's address and port. */
export function parseRegistry(text: string): RegistryAddress {
  let host = text;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host, portText] = text.split(':') as [string, string];
  }
  const address = canonicalAddress(host);
  if (address === undefined) throw usageError(`--registry ${text} is not an address: give the hub's tunnel address, e.g. 203.0.113.1 or 203.0.113.1:5182 ([2001:db8::1]:5182 for IPv6).`);
  const port = portText === undefined ? DEFAULT_PORT : /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= 1 && port <= 65_535)) throw usageError(`--registry ${text}: the port must be 1 to 65535.`);
  return { address, port };
}

export function parseScope(text: string): Prefix[] {
  const prefixes: Prefix[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p.length > 0)) {
    const prefix = parsePrefix(part);
    if (!prefix.ok) throw usageError(`--scope ${part} ${prefix.reason}: give prefixes such as 203.0.113.0/24,2001:db8:ff::/64.`);
    if (prefix.value.length === 0) throw usageError(`--scope ${part} is a default route: the mesh never routes everything to a direct peer; give the tunnel's networks.`);
    prefixes.push(prefix.value);
  }
  if (prefixes.length === 0) throw usageError('--scope needs at least one prefix.');
  return prefixes;
}

function number(flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) throw usageError(`${flag} must be a number from ${min} to ${max}, not ${text}.`);
  return value;
}

export function normalizeMeshOptions(input: MeshInput): MeshOptions {
  if (input.registry === undefined) throw usageError('--registry ADDR[:PORT] is needed: the hub\'s tunnel address, where reconfig-wg --registry answers.');
  const registry = parseRegistry(input.registry);
  const zone = normalizeZone(input.zone ?? DEFAULT_ZONE);
  if (!zone.ok) throw usageError(`--zone ${input.zone ?? ''} ${zone.reason}.`);
  const keepalive = number('--keepalive', input.keepalive, MESH_DEFAULTS.keepalive, 1, 25);
  if (!Number.isInteger(keepalive)) throw usageError('--keepalive must be whole seconds.');
  const intervalMs = number('--interval', input.interval, MESH_DEFAULTS.intervalMs / 1000, 1, 3600) * 1000;
  const maxPeers = number('--max-peers', input.maxPeers, MESH_DEFAULTS.maxPeers, 1, 1024);
  if (!Number.isInteger(maxPeers)) throw usageError('--max-peers must be a whole number.');
  if (parseAddress(registry.address) === undefined) throw usageError(`--registry ${input.registry} is not an address.`);
  return {
    interface: input.interface === undefined ? undefined : validateInterfaceName(input.interface),
    registry,
    zone: zone.value,
    scope: input.scope === undefined ? undefined : parseScope(input.scope),
    keepalive,
    intervalMs,
    watchMs: MESH_DEFAULTS.watchMs,
    maxPeers,
    // two keepalives missed: the peer sends one whenever it sent nothing for `keepalive` s
    deadAfterMs: Math.max(2_000, 2 * keepalive * 1000),
    probeWindowMs: PROBE_WINDOW_MS,
    backoffFirstMs: BACKOFF_FIRST_MS,
    backoffMaxMs: BACKOFF_MAX_MS,
    queryTimeoutMs: MESH_DEFAULTS.queryTimeoutMs,
    queryTries: MESH_DEFAULTS.queryTries,
    pidFile: input.pidFile,
    statusFile: input.statusFile,
    peersFile: input.peersFile,
  };
}

/** /run/reconfig-wg/mesh-IFACE.{pid,json,peers.json} */
export function meshFiles(options: Pick<MeshOptions, 'pidFile' | 'statusFile' | 'peersFile'>, iface: string): { pidFile: string; statusFile: string; peersFile: string } {
  const dir = runtimeDir('reconfig-wg');
  return {
    pidFile: options.pidFile ?? join(dir, `mesh-${iface}.pid`),
    statusFile: options.statusFile ?? join(dir, `mesh-${iface}.json`),
    peersFile: options.peersFile ?? join(dir, `mesh-${iface}.peers.json`),
  };
}
