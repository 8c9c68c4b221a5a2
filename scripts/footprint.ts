/**
 * The daemons' memory footprint (root): both daemons run for real in a lab namespace and their
 * memory is read from /proc/PID/smaps_rollup after they have settled and after a round of work.
 * - `npm run bench -- --footprint [--baseline REF]`: with the service files' node flags, both
 *   jobs as two processes and as one (`--knock-port`), for the code of git REF (default: where
 *   this branch left main, `git merge-base HEAD main`; exported and built aside) and for this
 *   tree, in one run: before and after.
 * - `npm run bench -- --footprint-flags` (and `--lab`): this tree once per set of node flags,
 *   with the verification rate of genuine initiations under the same flags.
 *
 * PSS shares each page among the processes that map it. On a build machine other node
 * processes share node's own pages and lower our PSS; on a router these two are the only
 * ones, so "alone" is also shown: both processes' private pages plus the larger one's
 * shared pages, counted once.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildBaseline } from './bench-flood.js';
import { KNOCK_CLI, RECONFIG_CLI, waitForEvent } from './lab/daemons.js';
import { connectRoamer, createLab, natRemap, pingUntilAnswered, type Lab } from './lab/lab.js';
import type { LabProcess } from './lab/netns.js';

export interface Memory {
  readonly rssKiB: number;
  readonly pssKiB: number;
  readonly privateKiB: number;
  readonly sharedKiB: number;
  /** private pages not backed by a file (the V8 heap, malloc, the capture rings): what the code itself costs, whatever else runs node */
  readonly anonKiB: number;
}

/** Rss, Pss, Private_* and Shared_* of a process, in KiB, from /proc/PID/smaps_rollup. */
export function readMemory(pid: number): Memory {
  const fields = new Map<string, number>();
  for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
    const match = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (match) fields.set(match[1]!, Number(match[2]));
  }
  const get = (name: string): number => fields.get(name) ?? 0;
  let anonKiB = 0;
  let fileBacked = true;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping) {
      const name = mapping[1] ?? '';
      fileBacked = name.startsWith('/');
      continue;
    }
    const page = /^Private_(?:Clean|Dirty):\s+(\d+) kB$/.exec(line);
    if (page && !fileBacked) anonKiB += Number(page[1]);
  }
  return {
    anonKiB,
    rssKiB: get('Rss'),
    pssKiB: get('Pss'),
    privateKiB: get('Private_Clean') + get('Private_Dirty'),
    sharedKiB: get('Shared_Clean') + get('Shared_Dirty'),
  };
}

/** Node flags tried for the service files, named for the table. */
export const FLAG_SETS: readonly { readonly name: string; readonly flags: readonly string[]; readonly env?: Record<string, string> }[] = [
  { name: 'node defaults', flags: [] },
  { name: 'small heap', flags: ['--max-semi-space-size=1', '--max-old-space-size=32'] },
  { name: 'small heap, --lite-mode', flags: ['--max-semi-space-size=1', '--max-old-space-size=32', '--lite-mode'] },
  { name: 'small heap, --jitless', flags: ['--max-semi-space-size=1', '--max-old-space-size=32', '--jitless'] },
  { name: 'small heap, --v8-pool-size=1', flags: ['--max-semi-space-size=1', '--max-old-space-size=32', '--v8-pool-size=1'] },
];

const mib = (kib: number): string => (kib / 1024).toFixed(1);

/** The flag set the service files use (init.d/systemd, init.d/openwrt). */
export const SERVICE_FLAGS = 'small heap, --v8-pool-size=1';

interface Measured {
  /** settled, then after a round of work */
  readonly settled: { readonly a: Memory; readonly b: Memory };
  readonly worked: { readonly a: Memory; readonly b: Memory };
}

const NONE: Memory = { rssKiB: 0, pssKiB: 0, privateKiB: 0, sharedKiB: 0, anonKiB: 0 };

/** Private pages of both, shared pages once: the figure for a router where nothing else runs node. */
const alone = (a: Memory, b: Memory): number => a.privateKiB + b.privateKiB + Math.max(a.sharedKiB, b.sharedKiB);

/**
 * Both jobs with `flags`, as two processes or one (`--knock-port`), from the given entry
 * points: measured when settled and after a round of work (R1 connects, then its NAT remaps).
 */
async function measure(lab: Lab, files: string, flags: readonly string[], oneProcess: boolean, clis: { readonly reconfig: string; readonly knock: string }, env: Record<string, string> = {}): Promise<Measured> {
  const roamer = lab.roamers[0]!;
  const daemonArgs = ['-i', lab.r2.wg, '--pid-file', `${files}.pid`, '--state-file', `${files}.json`];
  const reconfig = await startDaemon(lab, flags, clis.reconfig, oneProcess ? [...daemonArgs, '--knock-port', '19000'] : daemonArgs, env);
  const knock = oneProcess ? undefined : await startDaemon(lab, flags, clis.knock, ['-i', lab.r2.wg, '--pid-file', `${files}-knock.pid`, '--reconfig-pid-file', `${files}.pid`], env);
  try {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const settled = { a: readMemory(reconfig.pid!), b: knock === undefined ? NONE : readMemory(knock.pid!) };
    await connectRoamer(lab, roamer, false);
    await pingUntilAnswered(roamer, 10_000, 0.1);
    await natRemap(roamer);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const worked = { a: readMemory(reconfig.pid!), b: knock === undefined ? NONE : readMemory(knock.pid!) };
    return { settled, worked };
  } finally {
    await reconfig.stop();
    await knock?.stop();
    await execa('ip', ['netns', 'exec', roamer.ns, 'wg', 'set', roamer.wg, 'peer', lab.r2.publicKey, 'remove'], { reject: false });
  }
}

async function startDaemon(lab: Lab, flags: readonly string[], cli: string, args: readonly string[], env: Record<string, string> = {}): Promise<LabProcess> {
  const proc = lab.scope.start(lab.r2.ns, process.execPath, [...flags, cli, '--log-format', 'json', ...args], env);
  if ((await waitForEvent(proc, 'listening', 20_000)) === undefined) throw new Error(`${cli} did not start:\n${proc.lines.join('\n')}`);
  return proc;
}

/** Genuine initiations verified per second by a child node with `flags`. */
async function verifyRate(flags: readonly string[], benchScript: string): Promise<number> {
  const result = await execa(process.execPath, [...flags, benchScript, '--verify-only'], { reject: false, timeout: 120_000 });
  const match = /verify: genuine initiation.*?([\d,]+) ops\/s/.exec(String(result.stdout));
  return match ? Number(match[1]!.replace(/,/g, '')) : Number.NaN;
}

/** This tree once per set of node flags, with the verification rate under the same flags. */
export async function footprintFlags(benchScript: string): Promise<void> {
  process.stdout.write('\n── footprint: both jobs running in the lab, memory from /proc/PID/smaps_rollup ──\n');
  process.stdout.write(`${'node flags'.padEnd(44)} ${'reconfig-wg PSS'.padStart(15)} ${'port-knock PSS'.padStart(14)} ${'both PSS'.padStart(9)} ${'both alone'.padStart(10)} ${'both RSS'.padStart(9)} ${'after work: PSS, alone'.padStart(24)} ${'verify/s'.padStart(9)}\n`);
  const lab = await createLab({ roamers: 1, connect: false });
  // a directory of our own (0700): a daemon may refuse a pid file in a directory others can write
  const dir = mkdtempSync(join(tmpdir(), 'rwg-footprint-'));
  const files = join(dir, 'rwg');
  try {
    const rates = new Map<string, number>();
    const rows = [
      ...FLAG_SETS.map((set) => ({ ...set, oneProcess: false })),
      ...FLAG_SETS.filter((set) => set.name === 'node defaults' || set.name === SERVICE_FLAGS || set.env !== undefined).map((set) => ({ ...set, name: `one process, ${set.name}`, oneProcess: true })),
    ];
    for (const { name, flags, env, oneProcess } of rows) {
      const { settled, worked } = await measure(lab, files, flags, oneProcess, { reconfig: RECONFIG_CLI, knock: KNOCK_CLI }, env);
      const { a, b } = settled;
      const key = flags.join(' ');
      const rate = rates.get(key) ?? (await verifyRate(flags, benchScript));
      rates.set(key, rate);
      process.stdout.write(
        `${name.padEnd(44)} ${`${mib(a.pssKiB)} MiB`.padStart(15)} ${(oneProcess ? '(same process)' : `${mib(b.pssKiB)} MiB`).padStart(14)} ${`${mib(a.pssKiB + b.pssKiB)} MiB`.padStart(9)} ${`${mib(alone(a, b))} MiB`.padStart(10)} ${`${mib(a.rssKiB + b.rssKiB)} MiB`.padStart(9)} ${`${mib(worked.a.pssKiB + worked.b.pssKiB)} MiB, ${mib(alone(worked.a, worked.b))} MiB`.padStart(24)} ${(Number.isNaN(rate) ? '?' : rate.toLocaleString('en-US')).padStart(9)}\n`,
      );
    }
    process.stdout.write('PSS: as measured here (other node processes share node\'s pages); alone: private pages of both + shared pages once, as on a router where nothing else runs node; after work: the same after a handshake was verified and an endpoint set\n');
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Before and after, in one run: the code of git `ref` (built aside) and this tree, both jobs
 * as two processes and as one, with the service files' node flags.
 */
export async function footprint(ref: string): Promise<void> {
  const flags = FLAG_SETS.find((set) => set.name === SERVICE_FLAGS)!.flags;
  const baseline = await buildBaseline(ref);
  process.stdout.write(`\n── footprint: both jobs in the lab with the service files' node flags (${flags.join(' ')}), memory from /proc/PID/smaps_rollup ──\n`);
  process.stdout.write(`${'code'.padEnd(26)} ${'both jobs as'.padEnd(14)} ${'alone'.padStart(9)} ${'alone after work'.padStart(16)} ${'heap+malloc'.padStart(11)} ${'reconfig-wg private'.padStart(19)} ${'port-knock private'.padStart(18)} ${'PSS here'.padStart(9)} ${'RSS'.padStart(9)}\n`);
  const lab = await createLab({ roamers: 1, connect: false });
  // a directory of our own (0700): a daemon may refuse a pid file in a directory others can write
  const dir = mkdtempSync(join(tmpdir(), 'rwg-footprint-'));
  const files = join(dir, 'rwg');
  try {
    const codes = [
      { name: `before: ${/^[0-9a-f]{40}$/.test(ref) ? baseline.commit : `${ref} (${baseline.commit})`}`, clis: { reconfig: baseline.cli, knock: baseline.knockCli } },
      { name: 'after: this tree', clis: { reconfig: RECONFIG_CLI, knock: KNOCK_CLI } },
    ];
    for (const code of codes) {
      for (const oneProcess of [false, true]) {
        const { settled, worked } = await measure(lab, files, flags, oneProcess, code.clis);
        const { a, b } = settled;
        process.stdout.write(
          `${code.name.padEnd(26)} ${(oneProcess ? 'one process' : 'two processes').padEnd(14)} ${`${mib(alone(a, b))} MiB`.padStart(9)} ${`${mib(alone(worked.a, worked.b))} MiB`.padStart(16)} ${`${mib(a.anonKiB + b.anonKiB)} MiB`.padStart(11)} ${`${mib(a.privateKiB)} MiB`.padStart(19)} ${(oneProcess ? '(same process)' : `${mib(b.privateKiB)} MiB`).padStart(18)} ${`${mib(a.pssKiB + b.pssKiB)} MiB`.padStart(9)} ${`${mib(a.rssKiB + b.rssKiB)} MiB`.padStart(9)}\n`,
        );
      }
    }
    process.stdout.write('alone: private pages of both + shared pages once, as on a router where nothing else runs node; after work: after a handshake was verified and an endpoint set; heap+malloc: private pages not backed by a file, in both (what the code costs, whatever else runs here); PSS here is lower where other node processes share node\'s pages\n');
  } finally {
    await lab.close();
    baseline.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}
