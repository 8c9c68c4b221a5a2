/**
 * port-knock end to end, in the netns lab: real traceroute from the roaming router behind its
 * NAT, the real port-knock command inside R2's namespace, and for the design's loop real
 * wireguard-go, reconfig-wg and R2's firewall. Needs root.
 *
 * The -c command is a small script that appends the time it started and its arguments to a
 * file, so every run is counted from outside port-knock.
 */
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { events, sendUdp, startPortKnock, startReconfigWg, waitForEvent, type LogEvent } from '../scripts/lab/daemons.js';
import { ATTACKER_V4, ATTACKER_V6, connectRoamer, endpointOf, withLab, natRemap, pingOnce, pingUntilAnswered, R2_V4, R2_V6 } from '../scripts/lab/lab.js';
import { addFloodSources, floodSourcesV4, floodSourcesV6, startFlood } from '../scripts/lab/flood.js';
import { nsRun, waitFor, type LabProcess } from '../scripts/lab/netns.js';
import { defaultPidFile, defaultStateFile, sessionsFileFor } from '../src/reconfig/options.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.serial.skip;

interface Run {
  readonly startedAt: number;
  readonly args: string[];
}

interface Recorder {
  /** the -c value: the script with every placeholder */
  readonly command: string;
  runs(): Run[];
}

function recorder(dir: string): Recorder {
  const out = join(dir, 'runs');
  const script = join(dir, 'record.sh');
  writeFileSync(out, '');
  writeFileSync(script, `#!/bin/sh\n{ printf '%s' "$(date +%s%3N)"; for a in "$@"; do printf '\\t%s' "$a"; done; printf '\\n'; } >> '${out}'\n`);
  chmodSync(script, 0o755);
  return {
    command: `'${script}' {src} {port} {proto} {family} {ttl}`,
    runs: () =>
      readFileSync(out, 'utf8')
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => {
          const [time = '0', ...args] = line.split('\t');
          return { startedAt: Number(time), args };
        }),
  };
}

/** One bounded traceroute: numeric, 3 queries per hop, 1 s wait, at most 3 hops. */
function traceroute(ns: string, args: readonly string[]): Promise<string> {
  return nsRun(ns, 'traceroute', ['-n', '-q', '3', '-w', '1', '-m', '3', ...args]);
}

/** Waits until no new run has appeared for `quietMs`: a late duplicate would have shown by then. */
async function settledRuns(rec: Recorder, quietMs = 1500): Promise<Run[]> {
  let count = rec.runs().length;
  let since = Date.now();
  await waitFor(() => {
    const now = rec.runs().length;
    if (now !== count) {
      count = now;
      since = Date.now();
    }
    return Date.now() - since >= quietMs;
  }, 10_000, 100);
  return rec.runs();
}

function logLatency(t: ExecutionContext, what: string, knock: LogEvent | undefined, run: Run | undefined, started: LogEvent | undefined): void {
  const fromScript = run !== undefined && typeof knock?.capturedAt === 'number' ? run.startedAt - knock.capturedAt : undefined;
  t.log(`${what}: knock probe captured on R2 → command started: ${String(started?.latencyMs)} ms (port-knock's spawn), ${String(fromScript)} ms (the script's own clock, incl. sh and date)`);
}

const kinds = [
  { name: 'a UDP traceroute', args: ['-p', '19000', R2_V4], src: 'natV4', proto: 'udp', family: '4' },
  { name: 'an IPv6 traceroute', args: ['-6', '-p', '19000', R2_V6], src: 'natV6', proto: 'udp', family: '6' },
  { name: 'a TCP SYN traceroute', args: ['-T', '-p', '19000', R2_V4], src: 'natV4', proto: 'tcp', family: '4' },
] as const;

for (const kind of kinds) {
  e2e(`${kind.name} from behind the NAT is one knock: the command runs once, with the NAT's public address`, async (t) => {
    await withLab({ connect: false }, async (lab, dir) => {
      const roamer = lab.roamers[0]!;
      const rec = recorder(dir);
      const daemon = await startPortKnock(lab.scope, lab.r2.ns, ['-c', rec.command, '--pid-file', join(dir, 'knock.pid')]);
      await traceroute(roamer.ns, kind.args);
      t.true(await waitFor(() => rec.runs().length > 0, 5000), daemon.lines.join('\n'));
      const runs = await settledRuns(rec);
      t.is(runs.length, 1, 'one traceroute, one run');
      const [src, port, proto, family, ttl] = runs[0]!.args;
      t.is(src, roamer[kind.src]);
      t.true(Number(port) >= 19000 && Number(port) < 19100, `port ${String(port)}`);
      t.deepEqual([proto, family, ttl], [kind.proto, kind.family, '1']);
      const knocks = events(daemon, 'knock');
      t.is(knocks.length, 1);
      t.like(knocks[0], { src: roamer[kind.src], proto: kind.proto, family: Number(kind.family), ttl: 1, action: 'command' });
      const exited = await waitForEvent(daemon, 'command.exited', 5000);
      t.like(exited, { exitCode: 0 });
      logLatency(t, kind.name, knocks[0], runs[0], events(daemon, 'command.started')[0]);
    });
  });
}

e2e('UDP with a normal TTL to the range, and last-hop probes outside the range, knock nothing', async (t) => {
  await withLab({ connect: false }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const rec = recorder(dir);
    const daemon = await startPortKnock(lab.scope, lab.r2.ns, ['-c', rec.command, '--pid-file', join(dir, 'knock.pid'), '--log-level', 'debug']);
    await sendUdp(lab.attacker.ns, R2_V4, 19000, [Buffer.from('not a probe')]);
    await sendUdp(lab.attacker.ns, R2_V6, 19050, [Buffer.from('not a probe')]);
    await traceroute(roamer.ns, ['-p', '19100', R2_V4]); // last hop on 19103-19105: above the range
    await traceroute(roamer.ns, ['-p', '18900', R2_V4]); // last hop on 18903-18905: below it
    await traceroute(roamer.ns, ['-6', '-p', '20000', R2_V6]);
    await traceroute(roamer.ns, ['-T', '-p', '18999', R2_V4]);
    t.deepEqual(await settledRuns(rec, 2000), []);
    t.deepEqual(events(daemon, 'knock'), []);

    // the same daemon was listening all along: an in-range traceroute now knocks
    await traceroute(roamer.ns, ['-p', '19000', R2_V4]);
    t.true(await waitFor(() => rec.runs().length === 1, 5000));
    t.is(events(daemon, 'knock').length, 1);
  });
});

e2e('ten traceroutes in a row, from four sources, act at most once per cooldown; every knock is logged', async (t) => {
  await withLab({ connect: false }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const rec = recorder(dir);
    const cooldownS = 3;
    const daemon = await startPortKnock(lab.scope, lab.r2.ns, ['-c', rec.command, '--cooldown', String(cooldownS), '--pid-file', join(dir, 'knock.pid')]);
    const sources = [
      { ns: roamer.ns, args: ['-p', '19000', R2_V4] },
      { ns: lab.attacker.ns, args: ['-T', '-p', '19000', R2_V4] },
      { ns: roamer.ns, args: ['-6', '-p', '19000', R2_V6] },
      { ns: lab.attacker.ns, args: ['-6', '-p', '19000', R2_V6] },
    ];
    const began = Date.now();
    for (let i = 0; i < 10; i++) {
      const source = sources[i % sources.length]!;
      await traceroute(source.ns, source.args);
    }
    const elapsedMs = Date.now() - began;
    const runs = await settledRuns(rec);
    t.true(runs.length >= 1);
    t.true(runs.length <= Math.floor(elapsedMs / (cooldownS * 1000)) + 1, `${runs.length} runs in ${elapsedMs} ms`);
    for (let i = 1; i < runs.length; i++) {
      t.true(runs[i]!.startedAt - runs[i - 1]!.startedAt >= cooldownS * 1000 - 50, 'runs are a cooldown apart');
    }
    const knocks = events(daemon, 'knock');
    const knockedFrom = [...new Set(knocks.map((k) => String(k.src)))].sort();
    t.deepEqual(knockedFrom, [roamer.natV4, roamer.natV6, ATTACKER_V4, ATTACKER_V6].sort(), 'each source knocked');
    t.is(knocks.filter((k) => k.action === 'command').length, runs.length);
    t.is(knocks.filter((k) => k.action === 'cooldown').length, knocks.length - runs.length);
    t.true(knocks.length <= 10, 'the probes of one traceroute are one knock');
    t.log(`10 traceroutes in ${elapsedMs} ms: ${knocks.length} knocks, ${runs.length} run(s) with --cooldown ${cooldownS}`);
  });
});

e2e('a knock flood from 1,179 spoofed sources is a bounded number of log lines; every knock is logged or counted', async (t) => {
  await withLab({ connect: false }, async (lab, dir) => {
    const rec = recorder(dir);
    const v4 = floodSourcesV4(155);
    const v6 = floodSourcesV6(1024);
    await addFloodSources(lab.attacker.ns, [...v4, ...v6]);
    // debug level: every ignored probe (the same source again) would be a line of its own too
    const daemon = await startPortKnock(lab.scope, lab.r2.ns, ['-c', rec.command, '--cooldown', '3', '--pid-file', join(dir, 'knock.pid'), '--log-level', 'debug']);
    let lines = 0;
    daemon.follow(() => lines++);
    // last-hop probes (TTL 1: attacker and R2 share a link), bounded: 8,000 in 4 s
    const probe = [Buffer.from('traceroute probe')];
    const floods = await Promise.all([
      startFlood(lab.scope, lab.attacker.ns, { to: R2_V4, port: 19010, perSecond: 500, seconds: 4, sources: v4, payloads: probe, ttl: 1 }),
      startFlood(lab.scope, lab.attacker.ns, { to: R2_V6, port: 19020, perSecond: 1500, seconds: 4, sources: v6, payloads: probe, ttl: 1 }),
    ]);
    const sent = (await Promise.all(floods.map((flood) => flood.finished()))).reduce((sum, figures) => sum + figures.sent, 0);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await daemon.stop();
    const stopped = events(daemon, 'stopped')[0];
    const counters = (stopped?.counters ?? {}) as Record<string, number>;
    t.true((counters.knocks ?? 0) >= 1000, `${counters.knocks} knocks from ${sent} probes: the flood reached the detector`);
    t.true(lines <= 150, `${lines} log lines for ${counters.probes} probes and ${counters.knocks} knocks`);
    const knocks = events(daemon, 'knock');
    const counted = (key: RegExp, written: LogEvent[]): number =>
      [...written, ...events(daemon, 'log.suppressed').filter((s) => key.test(String(s.key)))].reduce((sum, line) => sum + (typeof line.suppressed === 'number' ? line.suppressed : 0), 0);
    t.is(knocks.length + counted(/^knock\./, knocks), counters.knocks ?? -1, 'each knock is a line, or counted in one');
    t.true(events(daemon, 'log.suppressed').length > 0 || knocks.some((k) => typeof k.suppressed === 'number'), 'what was held back is said');
    const runs = await settledRuns(rec);
    t.true(runs.length >= 1 && runs.length <= 3, `${runs.length} runs in about 5 s with --cooldown 3`);
    t.log(`${sent} probes, ${counters.knocks} knocks: ${lines} log lines (${knocks.length} knock lines), ${runs.length} run(s)`);
  });
});

e2e('the capture survives its device going down and coming back, and a new address on it', async (t) => {
  await withLab({ connect: false }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const rec = recorder(dir);
    const daemon = await startPortKnock(lab.scope, lab.r2.ns, ['-d', 'wan', '-c', rec.command, '--pid-file', join(dir, 'knock.pid')]);
    await nsRun(lab.r2.ns, 'ip', ['link', 'set', 'wan', 'down']);
    t.truthy(await waitForEvent(daemon, 'error', 10_000), 'the failure is logged');
    await new Promise((resolve) => setTimeout(resolve, 2500)); // long enough for reopen attempts while down
    await nsRun(lab.r2.ns, 'ip', ['link', 'set', 'wan', 'up']);
    t.true(await waitFor(() => events(daemon, 'listening').some((e) => e.reopened === true), 20_000), daemon.lines.join('\n'));
    // the kernel filter names no address, so a new one needs nothing from port-knock
    await nsRun(lab.r2.ns, 'ip', ['addr', 'add', '192.0.2.2/24', 'dev', 'wan']);
    t.true(await waitFor(async () => (await traceroute(roamer.ns, ['-p', '19000', '192.0.2.2']).catch(() => '')).includes('192.0.2.2 '), 10_000, 500));
    t.true(await waitFor(() => rec.runs().length === 1, 5000), daemon.lines.join('\n'));
    t.is(rec.runs()[0]?.args[0], roamer.natV4);
    t.false(daemon.exited);
    const retries = events(daemon, 'error').map((e) => Number(e.retryMs));
    t.true(retries.length >= 2 && retries.every((ms, i) => i === 0 || ms > retries[i - 1]!), `backoff ${retries.join(', ')} ms`);
  });
});

e2e('a knock tells a running reconfig-wg to re-arm, through the pid file it runs with, and leaves it running', async (t) => {
  await withLab({ connect: false }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    // reconfig-wg with its own pid file: port-knock is told where with --reconfig-pid-file.
    // (The design loop below covers the default pid file.)
    const pidFile = join(dir, 'reconfig.pid');
    const reconfig = await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--pid-file', pidFile, '--state-file', join(dir, 'state.json')]);
    const knock = await startPortKnock(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--reconfig-pid-file', pidFile, '--pid-file', join(dir, 'knock.pid')]);
    await traceroute(roamer.ns, ['-T', '-p', '19042', R2_V4]);
    t.like(await waitForEvent(knock, 'knock', 5000), { src: roamer.natV4, action: 'rearm', pid: reconfig.pid });
    t.truthy(await waitForEvent(reconfig, 'rearm', 5000), 'reconfig-wg got SIGUSR1');
    t.is(events(knock, 'command.started').length, 0);
    await knock.stop();
    t.false(reconfig.exited, 'port-knock stops only what it started');
  });
});

e2e('the design loop: reconfig-wg --once brings the tunnel up and exits, the NAT remaps, a traceroute knock re-arms it, the tunnel is back', async (t) => {
  t.timeout(110_000);
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    try {
      const knock = await startPortKnock(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--pid-file', join(dir, 'knock.pid')]);
      t.like(await waitForEvent(knock, 'started', 1000), { action: 'rearm', interface: lab.r2.wg });

      const once = await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--once']);
      t.not(await pingUntilAnswered(roamer, 15_000), undefined, 'the tunnel comes up');
      t.is(await once.waitForExit(5000), 0, 'reconfig-wg --once exits after its change');
      const before = await endpointOf(lab, roamer);

      await natRemap(roamer);
      t.false(await pingOnce(roamer, 2), 'after the remap the tunnel is down');

      await traceroute(roamer.ns, ['-p', '19000', R2_V4]);
      const knocked = await waitForEvent(knock, 'knock', 5000);
      t.like(knocked, { src: roamer.natV4, action: 'start' });
      const started = await waitForEvent(knock, 'command.started', 5000);
      t.true(String((started?.argv as string[] | undefined)?.join(' ')).includes(`--once -i ${lab.r2.wg}`));

      const recovered = await pingUntilAnswered(roamer, 60_000);
      t.not(recovered, undefined, 'the tunnel is back');
      const after = await endpointOf(lab, roamer);
      t.not(after, before);
      t.true(after?.startsWith(`${roamer.natV4}:`));
      t.like(await waitForEvent(knock, 'command.exited', 10_000), { pid: started?.pid, exitCode: 0 });
      t.true(outputOf(knock).some((line) => line.event === 'endpoint.updated' && line.to === after), 'the re-armed reconfig-wg made the change');
      t.log(`knock probe captured on R2 → reconfig-wg --once started: ${String(started?.latencyMs)} ms; tunnel back ${recovered?.toFixed(0)} ms after the ping loop began`);
    } finally {
      rmSync(defaultStateFile(lab.r2.wg), { force: true });
      rmSync(sessionsFileFor(defaultPidFile('reconfig-wg', lab.r2.wg)), { force: true });
    }
  });
});

/** The JSON lines of the commands port-knock ran, as it logged them. */
function outputOf(proc: LabProcess): LogEvent[] {
  // a command's JSON line is passed on with its fields under `child` and its own message
  return events(proc, 'command.output').flatMap((e) =>
    typeof e.child === 'object' && e.child !== null ? [{ ...(e.child as LogEvent), msg: e.msg, level: e.level }] : [],
  );
}

e2e('one process for both jobs: reconfig-wg --knock-port follows the roamer, its own knock listener re-arms it, SIGTERM stops both', async (t) => {
  await withLab({ connect: false }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const pidFile = join(dir, 'reconfig.pid');
    const both = await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--knock-port', '19000', '--pid-file', pidFile, '--state-file', join(dir, 'state.json'), '--knock-cooldown', '0']);
    t.like(await waitForEvent(both, 'started', 5000, (e) => e.job === 'port-knock'), { action: 'rearm', interface: lab.r2.wg });
    await connectRoamer(lab, roamer, false);
    t.not(await pingUntilAnswered(roamer, 15_000), undefined, 'the tunnel comes up through the closed firewall');
    t.truthy(await waitForEvent(both, 'endpoint.updated', 2000));

    await traceroute(roamer.ns, ['-p', '19000', R2_V4]);
    t.like(await waitForEvent(both, 'knock', 5000), { src: roamer.natV4, action: 'rearm', pid: both.pid, job: 'port-knock' });
    t.truthy(await waitForEvent(both, 'rearm', 5000, (e) => e.job === undefined), 'the daemon got SIGUSR1 from its own knock listener');
    t.is(events(both, 'command.started').length, 0, 'no second process');

    process.kill(both.pid!, 'SIGTERM');
    t.is(await both.waitForExit(5000), 0);
    t.is(events(both, 'stopped').length, 2, 'both jobs stopped');
  });
});
