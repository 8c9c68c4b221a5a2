/**
 * `npm run bench -- --flood` (root): reconfig-wg under a flood in the netns lab. For bad-mac1
 * and valid-mac1 junk initiations at 1k, 10k and 50k a second from 155 addresses, it prints the
 * daemon's CPU share and cost per packet, how long a genuine peer's fresh initiation (R1 after
 * a NAT remap, starting its handshake in the middle of the flood) took to be accepted, and
 * the capture's drop counter. Figures are printed, never asserted.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { events, startReconfigWg, type LogEvent } from './lab/daemons.js';
import { addFloodSources, floodSourcesV4, junkInitiations, startFlood } from './lab/flood.js';
import { connectRoamer, createLab, natRemap, pingOnce, R2_V4, WG_PORT, type Lab, type Roamer } from './lab/lab.js';
import { nsRun, waitFor, type LabProcess } from './lab/netns.js';

const CLOCK_TICKS = 100; // USER_HZ on Linux
const FLOOD_SECONDS = 10;
/** R1 starts its handshake this long into the flood */
const GENUINE_AFTER_MS = 3000;

/** utime + stime of a process, in seconds, and stime alone (time in the kernel for it). */
export function cpuSeconds(pid: number): number {
  return cpuTimes(pid).user + cpuTimes(pid).system;
}

export function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
}

export interface FloodFigures {
  readonly kind: string;
  readonly perSecond: number;
  readonly sent: number;
  readonly cpuShare: number;
  /** the part of cpuShare spent in the kernel (poll, the capture ring, timers) */
  readonly systemShare: number;
  readonly microsPerPacket: number;
  /** ms from R1's handshake start to its initiation.accepted; undefined if not within the flood */
  readonly acceptMs: number | undefined;
  readonly captureDrops: number;
  /** packets a second that reached R2's interface during the measurement */
  readonly delivered: number;
  readonly wanDrops: number;
}

async function restartHandshake(lab: Lab, roamer: Roamer): Promise<void> {
  await nsRun(roamer.ns, 'wg', ['set', roamer.wg, 'peer', lab.r2.publicKey, 'remove']);
  await natRemap(roamer);
  await connectRoamer(lab, roamer, false);
}

/** The capture's drop total as last logged (0 when it never logged any). */
function lastDrops(daemon: LabProcess): number {
  const stats = events(daemon, 'capture.drops').at(-1);
  return typeof stats?.dropped === 'number' ? stats.dropped : 0;
}

/** Packets R2's `wan` received, and dropped before any capture saw them (a saturated link). */
async function wanCounters(lab: Lab): Promise<{ packets: number; dropped: number }> {
  const [link] = JSON.parse(await nsRun(lab.r2.ns, 'ip', ['-s', '-j', 'link', 'show', 'wan'])) as { stats64: { rx: { packets: number; dropped: number } } }[];
  return { packets: link?.stats64.rx.packets ?? 0, dropped: link?.stats64.rx.dropped ?? 0 };
}

/** One flood with R1's fresh handshake in the middle of it. */
async function floodRound(lab: Lab, daemon: LabProcess, kind: 'bad-mac1' | 'valid-mac1', perSecond: number): Promise<FloodFigures> {
  const roamer = lab.roamers[0]!;
  const dropsBefore = lastDrops(daemon);
  const payloads = junkInitiations(Buffer.from(lab.r2.publicKey, 'base64'), 1024, kind === 'valid-mac1');
  const pid = daemon.pid!;
  const flood = await startFlood(lab.scope, lab.attacker.ns, {
    to: R2_V4, port: WG_PORT, perSecond, seconds: FLOOD_SECONDS, sources: floodSourcesV4(155), payloads,
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const wanStart = await wanCounters(lab);
  const cpuStart = cpuSeconds(pid);
  const systemStart = cpuTimes(pid).system;
  const wallStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, GENUINE_AFTER_MS - 1000));
  const seen = events(daemon, 'initiation.accepted').length;
  const startedAt = Date.now();
  await restartHandshake(lab, roamer);
  const accepted = (e: LogEvent): boolean => e.peer === roamer.publicKey;
  // R1 initiates on its first packet and retries every 5 s: keep it sending.
  await waitFor(async () => {
    void pingOnce(roamer, 0.2);
    return events(daemon, 'initiation.accepted').slice(seen).some(accepted);
  }, (FLOOD_SECONDS - 1) * 1000 - GENUINE_AFTER_MS, 200);
  const acceptedEvent = events(daemon, 'initiation.accepted').slice(seen).find(accepted);
  const wallLeft = FLOOD_SECONDS * 1000 - 500 - (performance.now() - wallStart) - 1000;
  if (wallLeft > 0) await new Promise((resolve) => setTimeout(resolve, wallLeft));
  const cpu = cpuSeconds(pid) - cpuStart;
  const system = cpuTimes(pid).system - systemStart;
  const wall = (performance.now() - wallStart) / 1000;
  const wanEnd = await wanCounters(lab);
  const { sent } = await flood.finished();
  await new Promise((resolve) => setTimeout(resolve, 6000)); // the last drop line (one per 5 s at most)
  const delivered = (wanEnd.packets - wanStart.packets) / wall;
  return {
    kind,
    perSecond,
    sent,
    cpuShare: cpu / wall,
    systemShare: system / wall,
    microsPerPacket: (cpu / Math.max(1, delivered * wall)) * 1e6,
    delivered,
    wanDrops: wanEnd.dropped - wanStart.dropped,
    acceptMs: typeof acceptedEvent?.time === 'string' ? Date.parse(acceptedEvent.time) - startedAt : undefined,
    captureDrops: lastDrops(daemon) - dropsBefore,
  };
}

/** `logsDrops` false: the code measured never logged libpcap's counter, so its drops are unknown. */
export function printFloodFigures(title: string, rows: readonly FloodFigures[], logsDrops = true): void {
  process.stdout.write(`\n${title}\n`);
  process.stdout.write(
    `${'junk'.padEnd(11)} ${'sent/s'.padStart(7)} ${'at R2/s'.padStart(8)} ${'CPU'.padStart(7)} ${'(sys)'.padStart(7)} ${'µs/pkt'.padStart(7)}  ${'genuine accepted after'.padEnd(23)} ${'capture drops'.padStart(13)} ${'link drops'.padStart(10)}\n`,
  );
  for (const r of rows) {
    const accept = r.acceptMs === undefined ? `not within ${FLOOD_SECONDS - 1 - GENUINE_AFTER_MS / 1000} s` : `${(r.acceptMs / 1000).toFixed(2)} s`;
    process.stdout.write(
      `${r.kind.padEnd(11)} ${r.perSecond.toLocaleString('en-US').padStart(7)} ${Math.round(r.delivered).toLocaleString('en-US').padStart(8)} ` +
        `${`${(r.cpuShare * 100).toFixed(1)} %`.padStart(7)} ${`${(r.systemShare * 100).toFixed(1)} %`.padStart(7)} ${r.microsPerPacket.toFixed(1).padStart(7)}  ${accept.padEnd(23)} ` +
        `${(logsDrops ? String(r.captureDrops) : 'not logged').padStart(13)} ${String(r.wanDrops).padStart(10)}\n`,
    );
  }
  process.stdout.write('(µs/pkt: the daemon\'s CPU time over the packets that reached R2; capture drops: libpcap\'s counter as logged; link drops: R2\'s interface)\n');
}

/** Every kind and rate against one reconfig-wg started with `args` (plus the lab's own). */
export async function floodRounds(rates: readonly number[], extraArgs: readonly string[] = [], command?: string): Promise<FloodFigures[]> {
  const lab = await createLab();
  // the daemon's files in a private directory of their own (a shared /tmp is refused)
  const dir = mkdtempSync(join(tmpdir(), 'rwg-flood-'));
  try {
    const roamer = lab.roamers[0]!;
    await addFloodSources(lab.attacker.ns, floodSourcesV4(155));
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--pid-file', join(dir, 'reconfig.pid'), '--state-file', join(dir, 'state.json'), ...extraArgs], true, command);
    // R1 connects once before any flood: its NAT's address is a known endpoint from then on.
    if (!(await waitFor(() => pingOnce(roamer, 0.5), 15_000, 0))) throw new Error('the tunnel did not come up before the floods');
    const rows: FloodFigures[] = [];
    for (const kind of ['bad-mac1', 'valid-mac1'] as const) {
      for (const rate of rates) rows.push(await floodRound(lab, daemon, kind, rate));
    }
    return rows;
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true }); // the session indices left on stop too
  }
}

/**
 * The project at git `ref`, exported (not checked out: no worktree is touched) into a temporary
 * directory, with this checkout's node_modules linked in and built; its reconfig-wg entry point.
 */
export async function buildBaseline(ref: string): Promise<{ cli: string; knockCli: string; commit: string; remove(): void }> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'rwg-baseline-'));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    await execa('sh', ['-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'sh', root, ref, dir]);
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    // this checkout's socket addon too, so the baseline injects as it did (same C source)
    if (existsSync(join(root, 'build'))) symlinkSync(join(root, 'build'), join(dir, 'build'));
    await execa(join(root, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')]);
    const commit = (await execa('git', ['-C', root, 'rev-parse', '--short', ref])).stdout.trim();
    return { cli: join(dir, 'dist/src/reconfig/cli.js'), knockCli: join(dir, 'dist/src/knock/cli.js'), commit, remove };
  } catch (error) {
    remove();
    throw new Error(`bench: cannot build baseline ${ref}: ${(error as Error).message}`);
  }
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

/**
 * Self time by function from a V8 .cpuprofile, largest first, as shares of the samples in
 * which the main thread was busy (not `(idle)`): where the time goes.
 */
export function summariseProfile(path: string, top = 15): { busy: number; functions: { name: string; share: number }[] } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as { nodes: ProfileNode[] };
  const byName = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (node.callFrame.functionName === '(idle)') {
      idle += hits;
      continue;
    }
    total += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^.*\/(dist|node_modules)\//, '$1/');
    const name = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim();
    byName.set(name, (byName.get(name) ?? 0) + hits);
  }
  const functions = [...byName]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, hits]) => ({ name, share: hits / Math.max(1, total) }));
  return { busy: total / Math.max(1, total + idle), functions };
}

/**
 * A CPU profile (node --cpu-prof) of reconfig-wg under one flood, summarised: the share of
 * samples in each function. `(idle)` is the event loop waiting; `(program)` is native work
 * outside JavaScript (libuv, libpcap, the kernel calls).
 */
export async function profileFlood(kind: 'bad-mac1' | 'valid-mac1', perSecond: number, seconds = 10): Promise<ReturnType<typeof summariseProfile>> {
  const lab = await createLab();
  const dir = mkdtempSync(join(tmpdir(), 'rwg-profile-'));
  try {
    await addFloodSources(lab.attacker.ns, floodSourcesV4(155));
    const daemon = await startReconfigWg(
      lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 'state.json')],
      true, undefined, ['--cpu-prof', '--cpu-prof-dir', dir],
    );
    const flood = await startFlood(lab.scope, lab.attacker.ns, {
      to: R2_V4, port: WG_PORT, perSecond, seconds, sources: floodSourcesV4(155),
      payloads: junkInitiations(Buffer.from(lab.r2.publicKey, 'base64'), 1024, kind === 'valid-mac1'),
    });
    await flood.finished();
    await daemon.stop(10_000); // SIGTERM: a clean exit writes the profile
    const file = (await import('node:fs')).readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file === undefined) throw new Error('no CPU profile was written');
    return summariseProfile(join(dir, file));
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
