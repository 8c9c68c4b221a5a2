/**
 * The daemons' memory footprint, for `npm run bench -- --footprint` (root): both daemons run
 * for real in a lab namespace, once per set of node flags, and their memory is read from
 * /proc/PID/smaps_rollup after they have settled and after a round of work. The CPU side of
 * each flag set is the verification rate of genuine initiations, measured in a child node
 * with the same flags.
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
import { KNOCK_CLI, RECONFIG_CLI, waitForEvent } from './lab/daemons.js';
import { connectRoamer, createLab, natRemap, pingUntilAnswered, type Lab } from './lab/lab.js';
import type { LabProcess } from './lab/netns.js';

export interface Memory {
  readonly rssKiB: number;
  readonly pssKiB: number;
  readonly privateKiB: number;
  readonly sharedKiB: number;
}

/** Rss, Pss, Private_* and Shared_* of a process, in KiB, from /proc/PID/smaps_rollup. */
export function readMemory(pid: number): Memory {
  const fields = new Map<string, number>();
  for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
    const match = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (match) fields.set(match[1]!, Number(match[2]));
  }
  const get = (name: string): number => fields.get(name) ?? 0;
  return {
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

export async function footprint(benchScript: string): Promise<void> {
  process.stdout.write('\n── footprint: both jobs running in the lab, memory from /proc/PID/smaps_rollup ──\n');
  process.stdout.write(`${'node flags'.padEnd(44)} ${'reconfig-wg PSS'.padStart(15)} ${'port-knock PSS'.padStart(14)} ${'both PSS'.padStart(9)} ${'both alone'.padStart(10)} ${'both RSS'.padStart(9)} ${'after work: PSS, alone'.padStart(24)} ${'verify/s'.padStart(9)}\n`);
  const lab = await createLab({ roamers: 1, connect: false });
  // the daemons' files in a private directory of their own (a shared /tmp is refused)
  const dir = mkdtempSync(join(tmpdir(), 'rwg-footprint-'));
  const files = join(dir, 'reconfig');
  try {
    const roamer = lab.roamers[0]!;
    const rates = new Map<string, number>();
    const rows = [
      ...FLAG_SETS.map((set) => ({ ...set, oneProcess: false })),
      ...FLAG_SETS.filter((set) => set.name === 'node defaults' || set.name === SERVICE_FLAGS || set.env !== undefined).map((set) => ({ ...set, name: `one process, ${set.name}`, oneProcess: true })),
    ];
    for (const { name, flags, env, oneProcess } of rows) {
      const daemonArgs = ['-i', lab.r2.wg, '--pid-file', `${files}.pid`, '--state-file', `${files}.json`];
      const reconfig = await startDaemon(lab, flags, RECONFIG_CLI, oneProcess ? [...daemonArgs, '--knock-port', '19000'] : daemonArgs, env);
      const knock = oneProcess ? undefined : await startDaemon(lab, flags, KNOCK_CLI, ['-i', lab.r2.wg, '--pid-file', `${files}-knock.pid`, '--reconfig-pid-file', `${files}.pid`], env);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const none: Memory = { rssKiB: 0, pssKiB: 0, privateKiB: 0, sharedKiB: 0 };
      const a = readMemory(reconfig.pid!);
      const b = knock === undefined ? none : readMemory(knock.pid!);
      // a round of work: R1 connects (an initiation verified, an endpoint set), then remaps
      await connectRoamer(lab, roamer, false);
      await pingUntilAnswered(roamer, 10_000, 0.1);
      await natRemap(roamer);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const a2 = readMemory(reconfig.pid!);
      const b2 = knock === undefined ? none : readMemory(knock.pid!);
      await reconfig.stop();
      await knock?.stop();
      const key = flags.join(' ');
      const rate = rates.get(key) ?? (await verifyRate(flags, benchScript));
      rates.set(key, rate);
      const alone = a.privateKiB + b.privateKiB + Math.max(a.sharedKiB, b.sharedKiB);
      process.stdout.write(
        `${name.padEnd(44)} ${`${mib(a.pssKiB)} MiB`.padStart(15)} ${(knock === undefined ? '(same process)' : `${mib(b.pssKiB)} MiB`).padStart(14)} ${`${mib(a.pssKiB + b.pssKiB)} MiB`.padStart(9)} ${`${mib(alone)} MiB`.padStart(10)} ${`${mib(a.rssKiB + b.rssKiB)} MiB`.padStart(9)} ${`${mib(a2.pssKiB + b2.pssKiB)} MiB, ${mib(a2.privateKiB + b2.privateKiB + Math.max(a2.sharedKiB, b2.sharedKiB))} MiB`.padStart(24)} ${(Number.isNaN(rate) ? '?' : rate.toLocaleString('en-US')).padStart(9)}\n`,
      );
      await execa('ip', ['netns', 'exec', roamer.ns, 'wg', 'set', roamer.wg, 'peer', lab.r2.publicKey, 'remove'], { reject: false });
    }
    process.stdout.write('PSS: as measured here (other node processes share node\'s pages); alone: private pages of both + shared pages once, as on a router where nothing else runs node; after work: the same after a handshake was verified and an endpoint set\n');
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
