/**
 * What the mesh client reads from and does to WireGuard, through the `wg` runner of
 * src/wireguard/wg.ts (the one place that runs wg). `wg show IFACE dump` prints the private key
 * on its first line: that line is read for the public key and listen port only, and nothing
 * here ever quotes the output. The interface's addresses come from `ip -o addr`.
 */
import { ReconfigError } from '../common/errors.js';
import { runTool } from '../common/run-tool.js';
import { runWg, type WgRunner } from '../wireguard/wg.js';
import { parsePrefix, type Prefix } from './prefix.js';

export interface MeshPeer {
  readonly publicKey: string;
  readonly hasPresharedKey: boolean;
  readonly endpoint: string | undefined;
  readonly allowed: readonly string[];
  /** epoch ms; 0 when none */
  readonly latestHandshakeMs: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly keepalive: number;
}

export interface MeshInterface {
  readonly publicKey: string | undefined;
  readonly peers: ReadonlyMap<string, MeshPeer>;
}

const none = (field: string | undefined): string | undefined => (field === undefined || field === '' || field === '(none)' ? undefined : field);
const count = (field: string | undefined): number => {
  const value = Number(field);
  return Number.isSafeInteger(value) && value >= 0 ? value : 0;
};

/** `wg show IFACE dump` → the public key and each peer; undefined when it is not that format. */
export function parseMeshDump(text: string): MeshInterface | undefined {
  const lines = text.split('\n').filter((line) => line.length > 0);
  const head = lines[0]?.split('\t');
  if (head === undefined || head.length < 4) return undefined;
  const peers = new Map<string, MeshPeer>();
  for (const line of lines.slice(1)) {
    const f = line.split('\t');
    if (f.length < 8 || f[0] === undefined) return undefined;
    const allowed = none(f[3]);
    peers.set(f[0], {
      publicKey: f[0],
      hasPresharedKey: none(f[1]) !== undefined,
      endpoint: none(f[2]),
      allowed: allowed === undefined ? [] : allowed.split(','),
      latestHandshakeMs: count(f[4]) * 1000,
      rxBytes: count(f[5]),
      txBytes: count(f[6]),
      keepalive: f[7] === 'off' ? 0 : count(f[7]),
    });
  }
  return { publicKey: none(head[1]), peers };
}

export class MeshWireGuard {
  constructor(
    readonly iface: string,
    private readonly run: WgRunner = runWg,
  ) {}

  async read(): Promise<MeshInterface> {
    const result = await this.run(['show', this.iface, 'dump']);
    if (result.exitCode !== 0) {
      throw new ReconfigError('E_NO_INTERFACE', `Unable to access WireGuard interface ${this.iface} (wg says: ${result.stderr.trim().split('\n')[0] ?? ''}). List the interfaces with 'wg show interfaces' and pass one with -i.`);
    }
    const parsed = parseMeshDump(result.stdout);
    if (parsed === undefined) throw new ReconfigError('E_WG', `'wg show ${this.iface} dump' printed something this version does not understand.`);
    return parsed;
  }

  private async set(publicKey: string, settings: readonly string[]): Promise<void> {
    const result = await this.run(['set', this.iface, 'peer', publicKey, ...settings]);
    if (result.exitCode !== 0) {
      throw new ReconfigError('E_WG', `'wg set ${this.iface} peer ${publicKey} ${settings.join(' ')}' failed: ${result.stderr.trim()}`);
    }
  }

  /**
   * A probe: the peer (added if it is not there) with this endpoint, no allowed IPs, and the
   * keepalive turned on from off, which makes WireGuard send at once (a handshake, with no
   * session) rather than a keepalive interval later. Never a pre-shared key.
   */
  async probe(publicKey: string, endpoint: string, keepalive: number): Promise<void> {
    await this.set(publicKey, ['endpoint', endpoint, 'allowed-ips', '', 'persistent-keepalive', '0']);
    await this.set(publicKey, ['persistent-keepalive', String(keepalive)]);
  }

  /** A new endpoint for a peer being probed, with the same prompt first packet. */
  async follow(publicKey: string, endpoint: string, keepalive: number): Promise<void> {
    await this.set(publicKey, ['endpoint', endpoint, 'persistent-keepalive', '0']);
    await this.set(publicKey, ['persistent-keepalive', String(keepalive)]);
  }

  async setAllowed(publicKey: string, allowed: readonly string[]): Promise<void> {
    await this.set(publicKey, ['allowed-ips', allowed.join(',')]);
  }

  async remove(publicKey: string): Promise<void> {
    await this.set(publicKey, ['remove']);
  }
}

/** The networks of the interface's own addresses (`ip -o addr show dev IFACE`): the default scope. */
export async function interfaceNetworks(iface: string): Promise<Prefix[]> {
  const result = await runTool('ip', ['-o', 'addr', 'show', 'dev', iface], 5_000);
  if (result.exitCode !== 0) throw new ReconfigError('E_NO_INTERFACE', `Cannot read the addresses of ${iface} (ip says: ${result.stderr.trim().split('\n')[0] ?? result.failure ?? ''}); pass --scope.`);
  const networks: Prefix[] = [];
  for (const match of result.stdout.matchAll(/\binet6? ([0-9a-fA-F:.]+\/\d+)/g)) {
    const prefix = parsePrefix(match[1]!, { allowHostBits: true });
    // a link-local fe80::/64 is no tunnel network
    if (prefix.ok && !prefix.value.text.startsWith('fe80:')) networks.push(prefix.value);
  }
  return networks;
}
