/**
 * `npm run bench -- --hostile [--baseline REF]`: reconfig-wg under each attack of the security
 * issue, in the netns lab, under the service files' node flags. Per attack: the daemon's CPU
 * share while it ran, its resident memory before, at its peak and after, R2's conntrack entries
 * before, at their peak and after, and how long a genuine re-handshake from R1 took in the
 * middle of it. With --baseline, the same attacks against the code of git REF first, in the
 * same run. Figures are printed, never asserted. BENCH_HOSTILE_ONLY=TEXT keeps the attacks whose
 * name holds TEXT.
 */
import { daemonArgs, startReconfigWg } from './lab/daemons.js';
import { junkInitiations, startFlood } from './lab/flood.js';
import { conntrackCount, rehandshake, rssKiB, SERVICE_NODE_FLAGS } from './lab/hostile.js';
import { createLab, pingOnce, recordPackets, R2_V6, WG_PORT, type Lab } from './lab/lab.js';
import { waitFor, type LabProcess } from './lab/netns.js';
import { cpuSeconds } from './bench-flood.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SECONDS = 15;
/** R1 starts its re-handshake this long into the attack */
const GENUINE_AFTER_MS = 5000;
/** after the attack, this long before the "after" figures */
const SETTLE_MS = 5000;

interface Attack {
  readonly name: string;
  readonly perSecond: number;
  readonly spoof: { readonly prefix: string; readonly networks: number };
  /** what is sent: junk initiations, or one of R1's own data packets recorded on the path */
  readonly payload: 'junk-initiations' | 'recorded-data';
}

export const ATTACKS: readonly Attack[] = [
  { name: 'valid-mac1 junk, 20k/s from 1,024 /64s', perSecond: 20_000, spoof: { prefix: '2001:db8:66::', networks: 1024 }, payload: 'junk-initiations' },
  { name: 'valid-mac1 junk, 20k/s from 65,536 /64s', perSecond: 20_000, spoof: { prefix: '2001:db8:66::', networks: 65_536 }, payload: 'junk-initiations' },
  // R1's NAT, R2 and the attacker share 2001:db8:100::/64 in the lab
  { name: 'valid-mac1 junk, 10k/s inside R1\'s /64', perSecond: 10_000, spoof: { prefix: '2001:db8:100::', networks: 1 }, payload: 'junk-initiations' },
  { name: 'R1\'s data replayed, 5k/s from 65,536 /64s', perSecond: 5000, spoof: { prefix: '2001:db8:66::', networks: 65_536 }, payload: 'recorded-data' },
];

export interface HostileFigures {
  readonly attack: string;
  readonly sent: number;
  readonly cpuShare: number;
  readonly rssMiB: { readonly before: number; readonly peak: number; readonly after: number };
  readonly conntrack: { readonly before: number; readonly peak: number; readonly after: number };
  readonly genuineMs: number | undefined;
  readonly exited: boolean;
}

async function recordedData(lab: Lab): Promise<Buffer[]> {
  // over IPv6 (libpcap cannot index udp[] behind IPv6): the payload's first byte, type 4
  const recording = await recordPackets(lab, `ip6 and udp dst port ${WG_PORT} and ip6[48] = 4`, 4);
  for (let i = 0; i < 4; i++) void pingOnce(lab.roamers[0]!, 1);
  const packets = await recording.next(5000);
  if (packets.length === 0) throw new Error('no data packet of R1 was recorded');
  return packets.map((p) => p.payload);
}

async function runAttack(attack: Attack, command: string | undefined): Promise<HostileFigures> {
  const lab = await createLab({ ipv6: true });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-hostile-'));
  try {
    const roamer = lab.roamers[0]!;
    const daemon: LabProcess = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir), true, command, SERVICE_NODE_FLAGS);
    if (!(await waitFor(() => pingOnce(roamer, 0.5), 15_000, 0))) throw new Error('the tunnel did not come up before the attack');
    const payloads = attack.payload === 'recorded-data'
      ? await recordedData(lab)
      : junkInitiations(Buffer.from(lab.r2.publicKey, 'base64'), 1024, true);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const rssBefore = rssKiB(daemon);
    const ctBefore = await conntrackCount(lab);
    const cpuBefore = cpuSeconds(daemon.pid!);
    const startedAt = performance.now();
    const flood = await startFlood(lab.scope, lab.attacker.ns, { to: R2_V6, port: WG_PORT, perSecond: attack.perSecond, seconds: SECONDS, sources: [], spoof: attack.spoof, payloads });
    let rssPeak = rssBefore;
    let ctPeak = ctBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rss = rssKiB(daemon);
        if (Number.isFinite(rss)) rssPeak = Math.max(rssPeak, rss);
        ctPeak = Math.max(ctPeak, await conntrackCount(lab).catch(() => 0));
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, GENUINE_AFTER_MS));
    const genuineMs = daemon.exited ? undefined : await rehandshake(lab, daemon, true, (SECONDS * 1000) - GENUINE_AFTER_MS);
    const report = await flood.finished();
    const elapsed = (performance.now() - startedAt) / 1000;
    const exited = daemon.exited;
    const cpuShare = exited ? Number.NaN : (cpuSeconds(daemon.pid!) - cpuBefore) / elapsed;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    sampling = false;
    await sampler;
    return {
      attack: attack.name,
      sent: report.sent,
      cpuShare,
      rssMiB: { before: rssBefore / 1024, peak: rssPeak / 1024, after: rssKiB(daemon) / 1024 },
      conntrack: { before: ctBefore, peak: ctPeak, after: await conntrackCount(lab) },
      genuineMs,
      exited,
    };
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every attack in turn; one that could not be run is a row that says why, not the end of the bench. */
export async function hostileRounds(command?: string): Promise<HostileFigures[]> {
  const rows: HostileFigures[] = [];
  // BENCH_HOSTILE_ONLY=TEXT runs only the attacks whose name holds TEXT
  const only = process.env.BENCH_HOSTILE_ONLY;
  for (const attack of ATTACKS.filter((a) => only === undefined || a.name.includes(only))) {
    try {
      rows.push(await runAttack(attack, command));
    } catch (error) {
      rows.push({ attack: `${attack.name} (not run: ${(error as Error).message})`, sent: 0, cpuShare: Number.NaN, rssMiB: { before: Number.NaN, peak: Number.NaN, after: Number.NaN }, conntrack: { before: 0, peak: 0, after: 0 }, genuineMs: undefined, exited: false });
    }
  }
  return rows;
}

export function printHostileFigures(title: string, rows: readonly HostileFigures[]): void {
  const mib = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : '—');
  process.stdout.write(`\n${title} (${SECONDS} s each, service node flags, R1 re-handshakes ${GENUINE_AFTER_MS / 1000} s in)\n`);
  process.stdout.write(`${'attack'.padEnd(44)} ${'sent'.padStart(8)} ${'CPU'.padStart(6)}  ${'RSS MiB before/peak/after'.padEnd(26)} ${'conntrack before/peak/after'.padEnd(28)} genuine\n`);
  for (const row of rows) {
    const cpu = Number.isFinite(row.cpuShare) ? `${(row.cpuShare * 100).toFixed(1)}%` : '—';
    const rss = `${mib(row.rssMiB.before)}/${mib(row.rssMiB.peak)}/${row.exited ? 'crashed' : mib(row.rssMiB.after)}`;
    const ct = `${row.conntrack.before}/${row.conntrack.peak}/${row.conntrack.after}`;
    const genuine = row.genuineMs === undefined ? 'not accepted' : `${row.genuineMs} ms`;
    process.stdout.write(`${row.attack.padEnd(44)} ${String(row.sent).padStart(8)} ${cpu.padStart(6)}  ${rss.padEnd(26)} ${ct.padEnd(28)} ${genuine}\n`);
  }
}
