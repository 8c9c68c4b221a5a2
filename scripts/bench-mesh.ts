/**
 * `npm run bench -- --mesh` (root): the mesh client in the mesh lab (scripts/lab/mesh-lab.ts),
 * per NAT combination: how long after the clients start the path is direct, the RTT of
 * spoke-to-spoke pings direct and through the hub (before the clients start), the bytes the hub
 * received from the pinging spoke during the direct pings, and for EIM × EIM a remap of one
 * spoke's NAT under traffic: the longest gap in replies and the time until direct again.
 * Figures are printed, never asserted. BENCH_MESH_ROUNDS rounds per combination (default 3).
 */
import { readFileSync } from 'node:fs';
import {
  connectSpokes, createMeshLab, hubTransfer, meshStatusFile, pingSeries, remapSpoke, startHub, startMeshClient,
  type MeshLab, type MeshLabOptions, type Spoke,
} from './lab/mesh-lab.js';
import { waitFor } from './lab/netns.js';
import type { MeshStatus } from '../src/mesh/status.js';

interface Round {
  directMs: number | undefined;
  rttDirect: number[];
  rttHub: number[];
  hubBytes: number | undefined;
  remapGapMs?: number;
  remapDirectMs?: number | undefined;
}

function pathTo(lab: MeshLab, from: Spoke, to: Spoke): string | undefined {
  try {
    const status = JSON.parse(readFileSync(meshStatusFile(lab, from), 'utf8')) as MeshStatus;
    return status.peers.find((peer) => peer.publicKey === to.publicKey)?.path;
  } catch {
    return undefined;
  }
}

async function round(options: MeshLabOptions, remap: boolean): Promise<Round> {
  const lab = await createMeshLab(options);
  try {
    const [a, b] = lab.spokes as [Spoke, Spoke];
    await startHub(lab);
    await connectSpokes(lab);
    const viaHub = await pingSeries(a, b.tunnel, 20, 0.05);
    const started = performance.now();
    for (const spoke of lab.spokes) await startMeshClient(lab, spoke);
    const direct = await waitFor(() => pathTo(lab, a, b) === 'direct' && pathTo(lab, b, a) === 'direct', 40_000, 20);
    const directMs = direct ? performance.now() - started : undefined;
    const result: Round = { directMs, rttHub: viaHub.replies.map((r) => r.rttMs), rttDirect: [], hubBytes: undefined };
    if (!direct) return result;
    const before = await hubTransfer(lab, a);
    const pings = await pingSeries(a, b.tunnel, 50, 0.05);
    const after = await hubTransfer(lab, a);
    result.rttDirect = pings.replies.filter((r) => r.ttl === 64).map((r) => r.rttMs);
    result.hubBytes = after[0] - before[0];
    if (remap) {
      const series = pingSeries(a, b.tunnel, 300, 0.1);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const at = Date.now();
      await remapSpoke(lab, b);
      const fell = await waitFor(() => pathTo(lab, a, b) !== 'direct', 10_000, 50);
      const back = fell && (await waitFor(() => pathTo(lab, a, b) === 'direct' && pathTo(lab, b, a) === 'direct', 60_000, 50));
      result.remapDirectMs = back ? Date.now() - at : undefined;
      const replies = (await series).replies.filter((r) => r.at > at - 200);
      let gap = 0;
      for (let i = 1; i < replies.length; i++) gap = Math.max(gap, replies[i]!.at - replies[i - 1]!.at);
      result.remapGapMs = gap;
    }
    return result;
  } finally {
    await lab.close();
  }
}

function quantile(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const ms = (value: number | undefined, digits = 2): string => (value === undefined ? '-' : `${value.toFixed(digits)}`);

export async function meshBench(write: (text: string) => void): Promise<void> {
  const rounds = Number(process.env.BENCH_MESH_ROUNDS ?? 3);
  const combos: { name: string; options: MeshLabOptions; remap: boolean }[] = [
    { name: 'EIM × EIM', options: { nats: ['eim', 'eim'] }, remap: true },
    { name: 'EIM × symmetric', options: { nats: ['eim', 'symmetric'] }, remap: false },
    { name: 'symmetric × symmetric', options: { nats: ['symmetric', 'symmetric'] }, remap: false },
    { name: 'shared NAT (no hairpin)', options: { nats: ['eim', 'eim'], sharedNat: true }, remap: false },
    { name: 'IPv6, stateful firewalls', options: { nats: ['eim', 'eim'], ipv6: true }, remap: false },
  ];
  write(`mesh: ${rounds} rounds per combination; pings every 50 ms; times in ms\n`);
  write('| NATs | direct after start (each round) | RTT direct p50 / p95 | RTT via R2 p50 / p95 | R2 bytes from spoke during 50 direct pings | remap: longest gap | remap: direct again |\n');
  write('| --- | --- | --- | --- | --- | --- | --- |\n');
  for (const combo of combos) {
    const results: Round[] = [];
    for (let i = 0; i < rounds; i++) results.push(await round(combo.options, combo.remap));
    const direct = results.map((r) => (r.directMs === undefined ? 'never (backed off)' : ms(r.directMs, 0))).join(', ');
    const rttDirect = results.flatMap((r) => r.rttDirect);
    const rttHub = results.flatMap((r) => r.rttHub);
    const bytes = results.map((r) => (r.hubBytes === undefined ? '-' : String(r.hubBytes))).join(', ');
    const gaps = combo.remap ? results.map((r) => ms(r.remapGapMs, 0)).join(', ') : '-';
    const again = combo.remap ? results.map((r) => ms(r.remapDirectMs, 0)).join(', ') : '-';
    write(`| ${combo.name} | ${direct} | ${ms(quantile(rttDirect, 0.5))} / ${ms(quantile(rttDirect, 0.95))} | ${ms(quantile(rttHub, 0.5))} / ${ms(quantile(rttHub, 0.95))} | ${bytes} | ${gaps} | ${again} |\n`);
  }
}
