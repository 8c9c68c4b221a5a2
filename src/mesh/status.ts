/**
 * What the mesh client knows, as a JSON file (replaced atomically) for `reconfig-wg mesh status`:
 * the registry's state and, per peer the registry lists, its path and why.
 */
import { rmSync } from 'node:fs';
import { writeFileAtomic } from '../common/atomic.js';
import { readTrustedFile } from '../common/private-dir.js';
import { fail, ok, type Result } from '../common/result.js';

/**
 * direct; via the hub while probing, quiet (after a direct path died, so the peer notices) or
 * backed off; or left alone (not this client's peer)
 */
export type MeshPath = 'direct' | 'probing' | 'quiet' | 'backed-off' | 'left-alone';

export interface MeshPeerStatus {
  readonly publicKey: string;
  readonly path: MeshPath;
  readonly why: string;
  readonly since: string;
  /** the endpoint probed or used */
  readonly endpoint: string | null;
  /** what the peer routes directly */
  readonly allowed: readonly string[];
  /** the registry's prefixes not taken, and why */
  readonly refused: readonly { readonly prefix: string; readonly reason: string }[];
  readonly failures: number;
  readonly nextProbe: string | null;
}

export interface MeshStatus {
  readonly kind: 'reconfig-wg-mesh';
  readonly interface: string;
  readonly pid: number;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly registry: string;
  readonly zone: string;
  readonly scope: readonly string[];
  readonly hub: string | null;
  readonly registryState: {
    readonly lastAnswer: string | null;
    readonly lastError: string | null;
    readonly peersListed: number;
    readonly beyondLimit: number;
    /** answers and records refused since start, by reason */
    readonly ignored: Readonly<Record<string, number>>;
  };
  readonly peers: readonly MeshPeerStatus[];
}

export function writeMeshStatus(path: string, status: MeshStatus): void {
  writeFileAtomic(path, `${JSON.stringify(status, null, 2)}\n`, 0o640);
}

export function removeMeshStatus(path: string, pid = process.pid): void {
  const status = readMeshStatus(path);
  if (status.ok && status.value.pid === pid) rmSync(path, { force: true });
}

export function readMeshStatus(path: string): Result<MeshStatus> {
  const text = readTrustedFile(path);
  if (!text.ok) return text.reason === 'does not exist' ? fail('does not exist') : fail(`is not read: ${text.reason}`);
  try {
    const value = JSON.parse(text.value) as MeshStatus;
    if (value?.kind !== 'reconfig-wg-mesh' || typeof value.pid !== 'number' || !Array.isArray(value.peers)) return fail('is not a mesh status file');
    return ok(value);
  } catch {
    return fail('is not JSON');
  }
}

const PATH_WORDS: Readonly<Record<MeshPath, string>> = {
  direct: 'direct',
  probing: 'via hub (probing)',
  quiet: 'via hub (direct path died)',
  'backed-off': 'via hub (backed off)',
  'left-alone': 'left alone',
};

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')).join('\n');
}

/** The status for people. Pure. */
export function formatMeshStatus(status: MeshStatus, running: boolean): string {
  const state = running ? `running (pid ${status.pid})` : `not running (pid ${status.pid} is gone; it did not stop cleanly)`;
  const r = status.registryState;
  const ignored = Object.entries(r.ignored).map(([reason, n]) => `${reason} ${n}`).join(', ') || '-';
  const lines = [
    `reconfig-wg mesh on ${status.interface}: ${state}, since ${status.startedAt}`,
    `registry ${status.registry} (zone ${status.zone}); hub ${status.hub ?? '(none found)'}; scope ${status.scope.join(',') || '-'}`,
    `last answer ${r.lastAnswer ?? 'never'}${r.lastError === null ? '' : `; last error: ${r.lastError}`}; ${r.peersListed} listed${r.beyondLimit > 0 ? `, ${r.beyondLimit} beyond --max-peers` : ''}; refused: ${ignored}`,
    `status written ${status.updatedAt}`,
    '',
  ];
  if (status.peers.length === 0) return `${lines.join('\n')}\nno other peers in the registry\n`;
  const rows = [
    ['PEER', 'PATH', 'ENDPOINT', 'DIRECT PREFIXES', 'SINCE', 'WHY'],
    ...status.peers.map((peer) => [
      peer.publicKey,
      PATH_WORDS[peer.path] ?? peer.path,
      peer.endpoint ?? '-',
      peer.allowed.join(',') || '-',
      peer.since,
      `${peer.why}${peer.refused.length > 0 ? `; not taken: ${peer.refused.map((r) => `${r.prefix} (${r.reason})`).join(', ')}` : ''}`,
    ]),
  ];
  return `${lines.join('\n')}\n${table(rows)}\n`;
}
