/**
 * The one module that runs the `wg` tool. Its output can hold the interface's private key, so
 * no error built here ever quotes stdout: messages use wg's stderr and our own words only.
 */
import { ReconfigError } from '../common/errors.js';
import { runTool } from '../common/run-tool.js';

export interface PeerConfig {
  /** base64, as wg prints it */
  readonly publicKey: string;
  /** `addr:port` or `[addr]:port`, as wg prints it; undefined when the peer has none */
  readonly endpoint: string | undefined;
  /** seconds; 0 when off */
  readonly keepalive: number;
  /** the peer's allowed IPs as wg prints them (`203.0.113.10/32`); what the registry serves and admits by */
  readonly allowedIps?: readonly string[];
  /** unix seconds of the latest completed handshake; 0 when there was none */
  readonly latestHandshake?: number;
}

export interface InterfaceConfig {
  readonly name: string;
  /** base64; undefined when the interface has none. Callers turn it into a Secret at once. */
  readonly privateKey: string | undefined;
  readonly publicKey: string | undefined;
  readonly listenPort: number;
  readonly peers: ReadonlyMap<string, PeerConfig>;
}

export interface WgRunner {
  (args: readonly string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

const WG_TIMEOUT_MS = 10_000;

/**
 * Runs `wg` through runTool (execa): a call that does not end within the timeout is stopped.
 * Only wg's exit status and stderr, and our words, ever make an error message.
 */
export const runWg: WgRunner = async (args) => {
  const result = await runTool('wg', args, WG_TIMEOUT_MS);
  if (result.exitCode !== undefined) return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  if (result.missing) throw noWg();
  throw new ReconfigError('E_WG', `wg ${args[0] ?? ''} did not complete: ${result.failure ?? 'it could not be run'}`);
};

function noWg(): ReconfigError {
  return new ReconfigError(
    'E_NO_WG',
    'The wg tool was not found. Install it: apt-get install wireguard-tools (Debian) or opkg install wireguard-tools (OpenWrt).',
  );
}

function interfaceError(name: string, stderr: string): ReconfigError {
  const said = stderr.trim().split('\n')[0] ?? '';
  if (/Operation not permitted|Permission denied/i.test(said)) {
    return new ReconfigError('E_NOT_ROOT', `Not allowed to read WireGuard interface ${name} (wg says: ${said}). Run as root, or with CAP_NET_ADMIN.`);
  }
  return new ReconfigError(
    'E_NO_INTERFACE',
    `Unable to access WireGuard interface ${name}${said ? ` (wg says: ${said})` : ''}. List the interfaces with 'wg show interfaces' and pass one with -i.`,
  );
}

export async function listInterfaces(run: WgRunner = runWg): Promise<string[]> {
  const result = await run(['show', 'interfaces']);
  if (result.exitCode !== 0) {
    throw new ReconfigError('E_WG', `'wg show interfaces' failed: ${result.stderr.trim()}. Are you root?`);
  }
  return result.stdout.split(/\s+/).filter((name) => name.length > 0);
}

/** The interface the user means: `-i` if given, else the only one there is. */
export async function resolveInterface(requested: string | undefined, run: WgRunner = runWg): Promise<string> {
  if (requested !== undefined) return requested;
  const names = await listInterfaces(run);
  if (names.length === 0) {
    throw new ReconfigError('E_NO_INTERFACE', 'No WireGuard interface is up. Bring one up first (wg-quick up wg0, or ifup), or pass -i.');
  }
  if (names.length > 1) {
    throw new ReconfigError('E_SEVERAL_INTERFACES', `Several WireGuard interfaces are up (${names.join(', ')}). Choose one with -i.`);
  }
  return names[0] as string;
}

function parseKeepalive(field: string): number {
  if (field === 'off') return 0;
  const seconds = Number.parseInt(field, 10);
  return Number.isInteger(seconds) && seconds >= 0 ? seconds : 0;
}

/** `203.0.113.10/32,2001:db8::10/128`, or `(none)`. */
function parseAllowedIps(field: string | undefined): string[] {
  const text = orUndefined(field);
  return text === undefined ? [] : text.split(',').filter((prefix) => prefix.length > 0);
}

function parseSeconds(field: string | undefined): number {
  const seconds = Number.parseInt(field ?? '', 10);
  return Number.isSafeInteger(seconds) && seconds > 0 ? seconds : 0;
}

function orUndefined(field: string | undefined): string | undefined {
  return field === undefined || field === '(none)' || field === '' ? undefined : field;
}

/**
 * Parses `wg show IFACE dump`: the interface line (private key, public key, listen port,
 * fwmark) and one line per peer (public key, preshared key, endpoint, allowed ips, latest
 * handshake, rx, tx, persistent keepalive), tab separated.
 */
export function parseDump(name: string, text: string): InterfaceConfig | undefined {
  const lines = text.split('\n').filter((line) => line.length > 0);
  const head = lines[0]?.split('\t');
  if (head === undefined || head.length < 4) return undefined;
  const listenPort = Number.parseInt(head[2] ?? '', 10);
  const peers = new Map<string, PeerConfig>();
  for (const line of lines.slice(1)) {
    const fields = line.split('\t');
    const publicKey = fields[0];
    if (publicKey === undefined || fields.length < 8) return undefined;
    peers.set(publicKey, {
      publicKey,
      endpoint: orUndefined(fields[2]),
      keepalive: parseKeepalive(fields[7] ?? 'off'),
      allowedIps: parseAllowedIps(fields[3]),
      latestHandshake: parseSeconds(fields[4]),
    });
  }
  return {
    name,
    privateKey: orUndefined(head[0]),
    publicKey: orUndefined(head[1]),
    listenPort: Number.isInteger(listenPort) ? listenPort : 0,
    peers,
  };
}

export async function readInterface(name: string, run: WgRunner = runWg): Promise<InterfaceConfig> {
  const result = await run(['show', name, 'dump']);
  if (result.exitCode !== 0) throw interfaceError(name, result.stderr);
  const config = parseDump(name, result.stdout);
  if (config === undefined) {
    throw new ReconfigError('E_WG', `'wg show ${name} dump' printed something this version does not understand.`);
  }
  return config;
}

/** `wg set IFACE peer KEY …` with the given settings, in order. */
export async function setPeer(name: string, publicKey: string, settings: readonly string[], run: WgRunner = runWg): Promise<void> {
  const result = await run(['set', name, 'peer', publicKey, ...settings]);
  if (result.exitCode !== 0) {
    throw new ReconfigError('E_WG', `'wg set ${name} peer ${publicKey} ${settings.join(' ')}' failed: ${result.stderr.trim()}`);
  }
}

/**
 * `wg show IFACE endpoints`: each peer's current endpoint (undefined when it has none). Cheaper
 * than a dump and never carries the private key: this is how a change is confirmed.
 */
export async function readEndpoints(name: string, run: WgRunner = runWg): Promise<Map<string, string | undefined>> {
  const result = await run(['show', name, 'endpoints']);
  if (result.exitCode !== 0) throw interfaceError(name, result.stderr);
  const endpoints = new Map<string, string | undefined>();
  for (const line of result.stdout.split('\n')) {
    const [key, endpoint] = line.split('\t');
    if (key === undefined || key.length === 0) continue;
    endpoints.set(key, orUndefined(endpoint?.trim()));
  }
  return endpoints;
}
