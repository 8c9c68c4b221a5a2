/**
 * The roaming table: the four events of scripts/lab/scenarios.ts, measured in one run under
 * three set-ups of R2, side by side:
 *
 *   native      WireGuard alone with its port open to the world (the baseline)
 *   --no-inject reconfig-wg with R2's firewall closed, `wg set` only
 *   default     reconfig-wg with R2's firewall closed, handing packets to WireGuard
 *                (with a firewall that accepts lo, as OpenWrt's fw4 does, and one that does not)
 *
 * Each set-up gets its own lab with ROUNDS roaming routers behind their own NATs; every event is
 * played on all of them at once, so ROUNDS rounds take the time of one. Medians and p90 in ms,
 * from the event until the tunnel works again (see scenarios.ts); `>T` when it did not within T.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { events, startReconfigWg, type LogEvent } from './lab/daemons.js';
import { createLab, labWireGuardFromEnv, type LabFirewall } from './lab/lab.js';
import { runScenario, SCENARIO_TITLES, SCENARIOS, type Scenario } from './lab/scenarios.js';

interface Setup {
  readonly name: string;
  readonly firewall: LabFirewall;
  /** reconfig-wg's flags, or undefined for none running */
  readonly daemon: readonly string[] | undefined;
}

const SETUPS: readonly Setup[] = [
  { name: 'native (port open)', firewall: 'open', daemon: undefined },
  { name: '--no-inject', firewall: 'closed-lo-accepted', daemon: ['--no-inject'] },
  { name: 'default, fw accepts lo', firewall: 'closed-lo-accepted', daemon: [] },
  { name: 'default, fw drops on lo', firewall: 'closed', daemon: [] },
];

/** The longest wait per event: R1's own re-handshake after a dead path takes 15 s. */
const TIMEOUT_MS = 25_000;

interface Measured {
  readonly times: (number | undefined)[];
  /** from R1's first packet after the event to its answer (events measured with pings) */
  readonly fromFirst: number[];
  /** data packets that reached user space per remap round (default set-ups) */
  readonly slipped?: number[];
}

/** What the daemon did meanwhile: events (and their reasons), counted. */
function tally(lines: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const line of lines) {
    let e: LogEvent;
    try {
      e = JSON.parse(line) as LogEvent;
    } catch {
      continue;
    }
    if (e.event === undefined) continue;
    const key = typeof e.reason === 'string' ? `${e.event}:${e.reason}` : typeof e.how === 'string' ? `${e.event}:${e.how}` : e.event;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => `${key} ${n}`).join(', ');
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

function cell(m: Measured | undefined): string {
  if (m === undefined) return '';
  const done = m.times.filter((t): t is number => t !== undefined).sort((a, b) => a - b);
  const missed = m.times.length - done.length;
  if (done.length === 0) return `>${TIMEOUT_MS / 1000} s (${missed}/${m.times.length})`;
  const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
  const text = `${fmt(quantile(done, 0.5))} (p90 ${fmt(quantile(done, 0.9))})`;
  return missed > 0 ? `${text}, ${missed}/${m.times.length} >${TIMEOUT_MS / 1000} s` : text;
}

function median(m: Measured | undefined): number | undefined {
  if (m === undefined || m.times.some((t) => t === undefined)) return undefined;
  return quantile([...(m.times as number[])].sort((a, b) => a - b), 0.5);
}

async function measureSetup(setup: Setup, rounds: number, log: (line: string) => void): Promise<Map<Scenario, Measured>> {
  const lab = await createLab({ roamers: rounds, firewall: setup.firewall });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-bench-'));
  const results = new Map<Scenario, Measured>();
  let daemonLines: readonly string[] | undefined;
  try {
    const daemon =
      setup.daemon === undefined
        ? undefined
        : await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 'state.json'), '--log-level', 'debug', ...setup.daemon]);
    daemonLines = daemon?.lines;
    for (const scenario of SCENARIOS) {
      const mark = daemon?.lines.length ?? 0;
      const fromFirst: number[] = [];
      const times = await Promise.all(
        lab.roamers.map((roamer) =>
          // A tunnel left down by the event before (no recovery within the bound) counts as not recovered.
          runScenario(lab, roamer, scenario, { timeoutMs: TIMEOUT_MS, upTimeoutMs: 45_000, onFirstPacket: (detail) => fromFirst.push(detail.ms) }).catch(() => undefined),
        ),
      );
      let slipped: number[] | undefined;
      if (daemon !== undefined && scenario === 'remap') {
        const seen = daemon.lines.slice(mark).map((line) => {
          try {
            return JSON.parse(line) as LogEvent;
          } catch {
            return undefined;
          }
        });
        slipped = lab.roamers.map(
          (roamer) => seen.filter((e) => (e?.event === 'data.injected' || e?.event === 'data.ignored') && String(e.src).startsWith(`${roamer.natV4}:`)).length,
        );
      }
      results.set(scenario, { times, fromFirst, ...(slipped === undefined ? {} : { slipped }) });
      log(`  ${setup.name}: ${SCENARIO_TITLES[scenario]}: ${cell(results.get(scenario))}${daemon === undefined ? '' : ` [${tally(daemon.lines.slice(mark))}]`}`);
    }
    if (daemon !== undefined) {
      const latency = events(daemon, 'endpoint.updated')
        .map((e) => [e.latencyMs, e.confirmedMs])
        .filter((pair): pair is [number, number] => typeof pair[0] === 'number' && typeof pair[1] === 'number');
      if (latency.length > 0) {
        const handed = latency.map((p) => p[0]).sort((a, b) => a - b);
        const confirmed = latency.map((p) => p[1]).sort((a, b) => a - b);
        log(
          `  ${setup.name}: packet captured → handed over/set: median ${quantile(handed, 0.5).toFixed(2)} ms; → confirmed (endpoints read): median ${quantile(confirmed, 0.5).toFixed(1)} ms (n=${latency.length})`,
        );
      }
    }
  } finally {
    const keep = process.env.BENCH_KEEP_LOGS;
    if (keep !== undefined && daemonLines !== undefined) {
      writeFileSync(join(keep, `${setup.name.replace(/[^a-z0-9]+/gi, '-')}.jsonl`), `${daemonLines.join('\n')}\n`);
    }
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

/** Measures every set-up and prints the table (markdown, as the README shows it). */
export async function roamingTable(rounds: number, write: (text: string) => void): Promise<void> {
  const wireguard = labWireGuardFromEnv();
  write(`roaming: ${wireguard === 'kernel' ? `kernel WireGuard (Linux ${release()})` : 'wireguard-go'} at both ends; ${rounds} roaming routers per set-up, each event played on all at once; R1 pings every 100 ms\n`);
  const all = new Map<string, Map<Scenario, Measured>>();
  const only = process.env.BENCH_SETUPS?.split(',');
  for (const setup of SETUPS) {
    if (only !== undefined && !only.some((name) => setup.name.startsWith(name))) continue;
    all.set(setup.name, await measureSetup(setup, rounds, (line) => write(`${line}\n`)));
  }
  const [native, , lo] = SETUPS;
  const header = ['event', ...SETUPS.map((s) => s.name), 'default ÷ native (lo accepted)'];
  const rows = SCENARIOS.map((scenario) => {
    const base = median(all.get(native!.name)?.get(scenario));
    const ours = median(all.get(lo!.name)?.get(scenario));
    const ratio = base !== undefined && ours !== undefined && base > 0 ? `${(ours / base).toFixed(2)}×` : 'n/a';
    return [SCENARIO_TITLES[scenario], ...SETUPS.map((s) => cell(all.get(s.name)?.get(scenario))), ratio];
  });
  write(`\n| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n`);
  for (const row of rows) write(`| ${row.join(' | ')} |\n`);
  write(`\nFrom R1's first packet after the event to its answer (the requests that went unanswered, 100 ms apart, plus the answered one's round trip; n = answered rounds):\n\n`);
  write(`| event | ${SETUPS.map((s) => s.name).join(' | ')} |\n|---|${SETUPS.map(() => '---').join('|')}|\n`);
  for (const scenario of SCENARIOS.filter((s) => s !== 'idle')) {
    const cells = SETUPS.map((setup) => {
      const values = [...(all.get(setup.name)?.get(scenario)?.fromFirst ?? [])].sort((a, b) => a - b);
      if (values.length === 0) return '';
      const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
      return `${fmt(quantile(values, 0.5))} (p90 ${fmt(quantile(values, 0.9))}, n=${values.length})`;
    });
    write(`| ${SCENARIO_TITLES[scenario]} | ${cells.join(' | ')} |\n`);
  }
  for (const setup of SETUPS.slice(2)) {
    const slipped = all.get(setup.name)?.get('remap')?.slipped ?? [];
    if (slipped.length > 0) {
      const sorted = [...slipped].sort((a, b) => a - b);
      write(`${setup.name}: data packets from the new address that reached user space per remap: median ${quantile(sorted, 0.5)}, max ${sorted.at(-1) ?? 0}\n`);
    }
  }
}
