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

for (const nats of [['eim', 'symmetric'], ['symmetric', 'symmetric']] as const) {
  e2e(`${nats.join(' × ')}: the NAT maps per destination, every ping is answered through the hub while probing, and probes back off`, async (t) => {
    await withMeshLab({ nats }, async (lab) => {
      const [a, b] = lab.spokes as [Spoke, Spoke];
      const symmetric = lab.spokes.find((spoke) => spoke.gateway.nat === 'symmetric')!;
      const other = lab.spokes.find((spoke) => spoke !== symmetric)!;
      const { clients } = await meshUp(lab);
      // pings from the start of the probe to past the probe window: none may be lost
      const series = await pingSeries(a, b.tunnel, 70, 0.2);
      t.is(series.replies.length, 70, `every ping answered (${series.replies.length}/70)`);
      t.true(series.replies.every((reply) => reply.ttl === 63), 'all through the hub (TTL 63)');
      // the NAT really is symmetric: the hub and the other spoke see different public ports
      const mappings = await natMappings(symmetric);
      const toHub = [...mappings.entries()].find(([dst]) => dst.startsWith('192.0.2.1:'))?.[1];
      const toPeer = [...mappings.entries()].filter(([dst]) => dst.startsWith(`${other.gateway.v4}:`)).map(([, port]) => port);
      t.true(toHub !== undefined && toPeer.length > 0 && !toPeer.includes(toHub), `per-destination ports: ${JSON.stringify([...mappings.entries()])}`);
      const backedOff = await waitFor(() => pathTo(lab, a, b) === 'backed-off' && pathTo(lab, b, a) === 'backed-off', 10_000, 200);
      t.true(backedOff, `both back off: ${JSON.stringify(status(lab, a)?.peers)}`);
      t.regex(status(lab, a)?.peers[0]?.why ?? '', /no handshake within .*next in 30 s/);
      t.false((await spokePeers(a)).has(b.publicKey), 'a backed-off peer is removed from WireGuard');
      t.true(events(clients[0]!, 'mesh.backoff').length >= 1);
    });
  });
}

e2e('EIM × EIM: a NAT remap under traffic interrupts it at most 3 s (the hub carries it meanwhile) and the path is direct again within 30 s', async (t) => {
  await withMeshLab({ nats: ['eim', 'eim'] }, async (lab) => {
    const [a, b] = lab.spokes as [Spoke, Spoke];
    const { clients } = await meshUp(lab);
    t.true(await waitFor(() => pathTo(lab, a, b) === 'direct' && pathTo(lab, b, a) === 'direct', 20_000, 100), 'direct first');
    const pings = pingSeries(a, b.tunnel, 350, 0.1);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const remappedAt = Date.now();
    await remapSpoke(lab, b);
    // watched while the pings go on: first the fall-back, then direct again
    const fellBack = await waitFor(() => pathTo(lab, a, b) !== 'direct', 10_000, 100);
    const back = fellBack && (await waitFor(() => pathTo(lab, a, b) === 'direct' && pathTo(lab, b, a) === 'direct', 30_000 - (Date.now() - remappedAt), 100));
    const directAgainMs = Date.now() - remappedAt;
    const series = await pings;
    const after = series.replies.filter((reply) => reply.at > remappedAt - 200);
    let gap = 0;
    for (let i = 1; i < after.length; i++) gap = Math.max(gap, after[i]!.at - after[i - 1]!.at);
    t.log(`longest gap in replies around the remap: ${Math.round(gap)} ms; replies ${series.replies.length}/350; direct again ${(directAgainMs / 1000).toFixed(1)} s after the remap`);
    t.true(gap <= 3_000, `no gap over 3 s (${Math.round(gap)} ms)`);
    t.true(after.some((reply) => reply.ttl === 63), 'the hub carried it for a while');
    t.true(back, `direct again within 30 s of the remap: ${JSON.stringify(status(lab, a)?.peers)}`);
    for (const [name, client] of [['a', clients[0]!], ['b', clients[1]!]] as const) {
      for (const e of events(client).filter((e) => String(e.event).startsWith('mesh.') && Date.parse(String(e.time)) >= remappedAt - 1000)) {
        t.log(`${name} +${((Date.parse(String(e.time)) - remappedAt) / 1000).toFixed(2)} s ${String(e.event)} ${String(e.msg)}`);
      }
    }
    const ttl = await ping(a, b.tunnel);
    t.is(ttl.ttl, 64, 'direct again: TTL 64');
    t.true(events(clients[0]!, 'mesh.fallback').length + events(clients[1]!, 'mesh.fallback').length >= 1, 'a fall-back was logged');
  });
});

e2e('EIM × EIM: a direct path broken one way only is dropped by both sides, and the traffic that went that way goes through the hub again', async (t) => {
  await withMeshLab({ nats: ['eim', 'eim'] }, async (lab) => {
    const [a, b] = lab.spokes as [Spoke, Spoke];
    await meshUp(lab);
    t.true(await waitFor(() => pathTo(lab, a, b) === 'direct' && pathTo(lab, b, a) === 'direct', 20_000, 100), 'direct first');
    const pings = pingSeries(a, b.tunnel, 250, 0.1);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    // b's gateway drops whatever a's gateway sends it, before conntrack: a → b is broken, b → a
    // still works, so a keeps hearing b's keepalives.
    const brokenAt = Date.now();
    await nsRun(b.gateway.ns, 'nft', ['-f', '-'], `table inet oneway {\n  chain pre {\n    type filter hook prerouting priority -300; policy accept;\n    ip saddr ${a.gateway.v4} meta l4proto udp drop\n  }\n}\n`);
    // Without b going silent, a hears b and stays direct until WireGuard's own timers give up on
    // the session (16 s in the lab, minutes under traffic that keeps it alive); with it, a few
    // seconds (2 s for b to notice, 2 s for a). The bound leaves room for a busy machine.
    const aFellBack = await waitFor(() => pathTo(lab, a, b) !== 'direct', 10_000, 100);
    const series = await pings;
    const viaHub = series.replies.find((reply) => reply.at > brokenAt && reply.ttl === 63);
    t.true(aFellBack, `a, which still heard b, fell back too: ${JSON.stringify(status(lab, a)?.peers)}`);
    t.true(viaHub !== undefined && viaHub.at - brokenAt < 10_000, 'a reaches b through the hub again within 10 s');
    t.log(`a → b answered again ${(((viaHub?.at ?? Number.NaN) - brokenAt) / 1000).toFixed(1)} s after the break; replies ${series.replies.length}/250`);
  });
});

e2e('the client never touches a peer it did not add, removes what it added when it stops, and what a killed run left at the next start', async (t) => {
  await withMeshLab({ nats: ['eim', 'eim', 'eim'] }, async (lab) => {
    const [a, b, c] = lab.spokes as [Spoke, Spoke, Spoke];
    // an administrator configured c on a by hand, with an endpoint and a prefix of its own
    await nsRun(a.ns, 'wg', ['set', a.wg, 'peer', c.publicKey, 'endpoint', '192.0.2.99:4444', 'allowed-ips', '198.51.100.200/32']);
    const handmade = await nsRun(a.ns, 'wg', ['show', a.wg, 'dump']);
    const line = (dump: string, key: string): string[] => (dump.split('\n').find((l) => l.startsWith(key)) ?? '').split('\t');
    const { clients } = await meshUp(lab);
    t.true(await waitFor(() => pathTo(lab, a, b) === 'direct', 20_000, 100), 'a goes direct to b');
    t.is(pathTo(lab, a, c), 'left-alone');
    const during = await nsRun(a.ns, 'wg', ['show', a.wg, 'dump']);
    t.deepEqual(line(during, c.publicKey).slice(0, 4), line(handmade, c.publicKey).slice(0, 4), 'c: endpoint and allowed IPs as configured');
    t.deepEqual(line(during, lab.hub.publicKey).slice(0, 4), line(handmade, lab.hub.publicKey).slice(0, 4), 'the hub untouched');
    t.is(line(during, b.publicKey)[1], '(none)', 'no pre-shared key written');
    // a clean stop removes b and nothing else
    await clients[0]!.stop();
    const stopped = await spokePeers(a);
    t.false(stopped.has(b.publicKey), 'b removed on stop');
    t.true(stopped.has(c.publicKey) && stopped.has(lab.hub.publicKey), 'c and the hub kept');
    t.true(events(clients[0]!, 'stopped').length === 1);
    // a killed run leaves b behind: the next start removes it before anything else
    const again = await startMeshClient(lab, a);
    t.true(await waitFor(() => spokePeers(a).then((p) => p.has(b.publicKey)), 20_000, 100), 'b added again');
    again.child.kill('SIGKILL');
    await again.waitForExit(5_000);
    t.true((await spokePeers(a)).has(b.publicKey), 'a killed client leaves its peer');
    const third = await startMeshClient(lab, a);
    t.truthy(await waitForEvent(third, 'mesh.leftover', 5_000, (e) => e.peer === b.publicKey), 'the leftover is removed at start');
    await third.stop();
    const end = await spokePeers(a);
    t.deepEqual([...end.keys()].sort(), [lab.hub.publicKey, c.publicKey].sort());
  });
});

e2e('shared NAT without hairpinning: both spokes stay reachable through the hub and the probes back off', async (t) => {
  await withMeshLab({ nats: ['eim', 'eim'], sharedNat: true }, async (lab) => {
    const [a, b] = lab.spokes as [Spoke, Spoke];
    await meshUp(lab);
    const series = await pingSeries(a, b.tunnel, 70, 0.2);
    t.is(series.replies.length, 70, 'every ping answered');
    t.true(await waitFor(() => pathTo(lab, a, b) === 'backed-off', 10_000, 200), `backed off: ${JSON.stringify(status(lab, a)?.peers)}`);
  });
});

e2e('IPv6, no NAT, each spoke behind a stateful firewall: hole punching makes the path direct', async (t) => {
  await withMeshLab({ nats: ['eim', 'eim'], ipv6: true }, async (lab) => {
    const [a, b] = lab.spokes as [Spoke, Spoke];
    const { startedAt } = await meshUp(lab);
    t.true(await waitFor(() => pathTo(lab, a, b) === 'direct' && pathTo(lab, b, a) === 'direct', 15_000, 50), `direct: ${JSON.stringify(status(lab, a)?.peers)}`);
    t.log(`direct ${((Date.now() - startedAt) / 1000).toFixed(2)} s after the first client started`);
    t.regex(status(lab, a)?.peers[0]?.endpoint ?? '', /^\[2001:db8:2::3\]:51001$/, 'the other spoke\'s own IPv6 address');
    const drops = await nsRun(b.gateway.ns, 'nft', ['list', 'chain', 'inet', 'filter', 'forward']);
    t.regex(drops, /iifname "wan" ct state new counter packets \d+/, 'the firewall drops new inbound');
    const result = await ping(a, b.tunnel);
    t.is(result.ttl, 64);
  });
});

void createMeshLab;
void HUB_TUNNEL;
