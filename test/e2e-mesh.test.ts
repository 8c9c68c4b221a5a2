/**
 * The mesh client in the mesh lab (scripts/lab/mesh-lab.ts): real wireguard-go, wg, nftables
 * NATs and firewalls, and the registry served by reconfig-wg on the hub. One lab at a time.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { events, waitForEvent } from '../scripts/lab/daemons.js';
import {
  connectSpokes, createMeshLab, hubTransfer, HUB_TUNNEL, meshStatusFile, natMappings, ping, pingSeries, remapSpoke, spokePeers, startHub, startMeshClient, withMeshLab,
  type MeshLab, type Spoke,
} from '../scripts/lab/mesh-lab.js';
import { nsRun, waitFor } from '../scripts/lab/netns.js';
import type { MeshStatus } from '../src/mesh/status.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.skip;

function status(lab: MeshLab, spoke: Spoke): MeshStatus | undefined {
  try {
    return JSON.parse(readFileSync(meshStatusFile(lab, spoke), 'utf8')) as MeshStatus;
  } catch {
    return undefined;
  }
}

function pathTo(lab: MeshLab, from: Spoke, to: Spoke): string | undefined {
  return status(lab, from)?.peers.find((peer) => peer.publicKey === to.publicKey)?.path;
}

/** Both clients running, both spokes known to the hub; returns when `from` is direct to `to` (or the time runs out). */
async function meshUp(lab: MeshLab, extra: readonly string[] = []): Promise<{ startedAt: number; clients: Awaited<ReturnType<typeof startMeshClient>>[] }> {
  await startHub(lab);
  await connectSpokes(lab);
  const startedAt = Date.now();
  const clients = [];
  for (const spoke of lab.spokes) clients.push(await startMeshClient(lab, spoke, extra));
  return { startedAt, clients };
}

e2e('EIM × EIM: direct within seconds; spoke-to-spoke pings come back with TTL 64 and the hub carries none of them', async (t) => {
  await withMeshLab({ nats: ['eim', 'eim'] }, async (lab) => {
    const [a, b] = lab.spokes as [Spoke, Spoke];
    const { startedAt, clients } = await meshUp(lab);
    const direct = await waitFor(() => pathTo(lab, a, b) === 'direct' && pathTo(lab, b, a) === 'direct', 15_000, 50);
    t.true(direct, `both direct; a: ${JSON.stringify(status(lab, a)?.peers)}`);
    t.log(`direct ${((Date.now() - startedAt) / 1000).toFixed(2)} s after the first client started`);
    const probe = events(clients[0]!, 'mesh.direct')[0];
    t.truthy(probe, 'mesh.direct logged');
    // the NAT is endpoint-independent: one public port for the hub and for the other spoke
    const mappings = [...(await natMappings(a)).values()];
    t.true(mappings.length >= 2 && new Set(mappings).size === 1, `one public port for every destination: ${JSON.stringify([...(await natMappings(a)).entries()])}`);
    t.is((await spokePeers(a)).get(b.publicKey), `${b.tunnel}/32`, 'the direct peer has the specific');
    const before = await hubTransfer(lab, a);
    const series = await pingSeries(a, b.tunnel, 20, 0.1);
    const after = await hubTransfer(lab, a);
    t.is(series.replies.length, 20, 'every ping answered');
    t.true(series.replies.every((reply) => reply.ttl === 64), `TTL 64 (not forwarded by the hub): ${series.replies.map((r) => r.ttl).join(',')}`);
    // 20 echo requests through the hub would be 20 × (84 + 32) bytes received from a; what moves is the registry's few queries
    const received = after[0] - before[0];
    t.true(received < (20 * 116) / 2, `the hub received ${received} bytes from spoke a meanwhile`);
  });
});
