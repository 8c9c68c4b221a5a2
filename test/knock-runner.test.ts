/**
 * Knock → action: the cooldown, the -c restart semantics with real processes, and re-arming
 * reconfig-wg through its pid file (a stand-in script plays reconfig-wg here; the e2e test
 * uses the real one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { waitFor } from '../scripts/lab/netns.js';
import type { Logger } from '../src/common/log.js';
import { isAlive } from '../src/common/pidfile.js';
import { parseCommand } from '../src/knock/command.js';
import { Cooldown } from '../src/knock/cooldown.js';
import type { Knock } from '../src/knock/detector.js';
import { Runner, type RunnerDeps, type RunnerOptions } from '../src/knock/runner.js';
import { memoryLogger } from './helpers/memory-logger.js';


/** Alive and not a zombie: an orphan that died waits for init to reap it, which may take a while. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

class FakeClock {
  ms = 0;
  readonly now = (): number => this.ms;
}

const knockFrom = (src: string, overrides: Partial<Knock> = {}): Knock => ({ src, port: 19003, ttl: 1, proto: 'udp', family: 4, ...overrides });

function runner(logger: Logger, options: Partial<RunnerOptions>, extra: Partial<RunnerDeps> = {}): Runner {
  return new Runner({ logger, options: { command: undefined, interface: 'wg0', cooldownMs: 0, dryRun: false, graceMs: 2000, ...options }, ...extra });
}

function command(text: string): string[] {
  const parsed = parseCommand(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.value;
}

/** A scratch directory with small node scripts the tests run as commands. */
function scratch(): { dir: string; script(name: string, body: string): string; close(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'knock-runner-'));
  return {
    dir,
    script(name, body) {
      const path = join(dir, name);
      writeFileSync(path, body);
      return path;
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const RECORDER = `
import { appendFileSync } from 'node:fs';
const [out, ...args] = process.argv.slice(2);
appendFileSync(out, JSON.stringify(args) + '\\n');
`;

test('the cooldown lets one action through per period, on a fake clock', (t) => {
  const clock = new FakeClock();
  const cooldown = new Cooldown(10_000, clock.now);
  t.true(cooldown.take());
  t.false(cooldown.take());
  clock.ms = 9999;
  t.false(cooldown.take());
  t.is(cooldown.remainingMs(), 1);
  clock.ms = 10_000;
  t.true(cooldown.take());
  t.is(cooldown.remainingMs(), 10_000);
  cooldown.reset();
  t.true(cooldown.take(), 'reset ends the period at once');
});

test('a flood of knocks from many sources acts once per cooldown, and every knock is logged', (t) => {
  const clock = new FakeClock();
  const log = memoryLogger();
  const r = runner(log.logger, { command: command('notify {src}'), cooldownMs: 10_000, dryRun: true }, { now: clock.now });
  for (let i = 0; i < 10; i++) {
    clock.ms = i * 1000;
    r.knock(knockFrom(`192.0.2.${i + 10}`), Date.now());
  }
  clock.ms = 10_000;
  r.knock(knockFrom('192.0.2.99'), Date.now());
  const knocks = log.events('knock');
  t.is(knocks.length, 11);
  t.deepEqual(knocks.map((k) => k.action), ['command', ...Array<string>(9).fill('cooldown'), 'command']);
  t.like(knocks[0], { src: '192.0.2.10', port: 19003, ttl: 1, proto: 'udp', family: 4, dryRun: true, argv: ['notify', '192.0.2.10'] });
  t.like(knocks[1], { retryInS: 9 });
  t.is(r.cooledDown, 9);
  t.is(log.events('command.started').length, 0, 'a dry run starts nothing');
});

test('-c runs the command without a shell, every value one argument, hostile ones too', async (t) => {
  const s = scratch();
  try {
    const recorder = s.script('record.mjs', RECORDER);
    const out = join(s.dir, 'out');
    const log = memoryLogger();
    const r = runner(log.logger, { command: [process.execPath, recorder, out, '{src}', 'port={port}', '{proto}', '{family}', '{ttl}'] });
    const hostile = `; rm -rf / $(reboot) \`id\` 'q" \\`;
    r.knock(knockFrom(hostile, { proto: 'tcp', family: 6, port: 19000 }), Date.now());
    t.true(await waitFor(() => log.events('command.exited').length === 1, 5000));
    t.deepEqual(JSON.parse(readFileSync(out, 'utf8')), [hostile, 'port=19000', 'tcp', '6', '1']);
    const started = log.events('command.started')[0];
    t.like(started, { src: hostile });
    t.is(typeof started?.latencyMs, 'number');
    t.like(log.events('command.exited')[0], { exitCode: 0, signal: null });
    await r.stop();
  } finally {
    s.close();
  }
});

test("the command's output goes to the log, line by line, with its stream", async (t) => {
  const s = scratch();
  try {
    const talker = s.script('talk.mjs', `console.log('first'); console.log('second'); console.error('trouble');`);
    const log = memoryLogger();
    const r = runner(log.logger, { command: [process.execPath, talker] });
    r.knock(knockFrom('192.0.2.10'), Date.now());
    t.true(await waitFor(() => log.events('command.output').length === 3, 5000));
    const output = log.events('command.output').map((l) => `${String(l.stream)}:${String(l.msg)}`);
    t.deepEqual(output.filter((o) => o.startsWith('stdout')), ['stdout:first', 'stdout:second']);
    t.deepEqual(output.filter((o) => o.startsWith('stderr')), ['stderr:trouble']);
    await r.stop();
  } finally {
    s.close();
  }
});

test('a run still alive is stopped with TERM before the next one starts', async (t) => {
  const s = scratch();
  try {
    const sleeper = s.script('sleep.mjs', `console.log('up'); setTimeout(() => {}, 30_000);`);
    const log = memoryLogger();
    const r = runner(log.logger, { command: [process.execPath, sleeper] });
    r.knock(knockFrom('192.0.2.10'), Date.now());
    t.true(await waitFor(() => log.events('command.output').length === 1, 5000));
    const first = log.events('command.started')[0]?.pid as number;
    r.knock(knockFrom('192.0.2.11'), Date.now());
    t.true(await waitFor(() => log.events('command.started').length === 2, 5000));
    const order = log.lines.filter((l) => l.event?.startsWith('command.') && l.event !== 'command.output').map((l) => `${String(l.event)}:${String(l.pid)}`);
    const second = log.events('command.started')[1]?.pid as number;
    t.deepEqual(order, [`command.started:${first}`, `command.stopping:${first}`, `command.exited:${first}`, `command.started:${second}`]);
    t.like(log.events('command.exited')[0], { pid: first, signal: 'SIGTERM' });
    t.false(isAlive(first));
    await r.stop();
    t.false(isAlive(second), 'stopping the runner stops the run it started');
    t.like(log.events('command.exited')[1], { pid: second, signal: 'SIGTERM' });
  } finally {
    s.close();
  }
});

test('a run that ignores TERM is killed after the grace period', async (t) => {
  const s = scratch();
  try {
    const stubborn = s.script('stubborn.mjs', `process.on('SIGTERM', () => console.log('ignoring TERM')); console.log('up'); setTimeout(() => {}, 30_000);`);
    const log = memoryLogger();
    const r = runner(log.logger, { command: [process.execPath, stubborn], graceMs: 300 });
    r.knock(knockFrom('192.0.2.10'), Date.now());
    t.true(await waitFor(() => log.events('command.output').length === 1, 5000));
    const began = performance.now();
    await r.stop();
    t.true(performance.now() - began >= 250);
    t.like(log.events('command.exited')[0], { signal: 'SIGKILL' });
    t.true(log.events('command.output').some((l) => l.msg === 'ignoring TERM'));
  } finally {
    s.close();
  }
});

test('stopping a run also stops what it started in its process group', async (t) => {
  const s = scratch();
  try {
    const parent = s.script(
      'parent.mjs',
      `import { spawn } from 'node:child_process';
       const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
       console.log(String(child.pid)); setTimeout(() => {}, 30_000);`,
    );
    const log = memoryLogger();
    const r = runner(log.logger, { command: [process.execPath, parent] });
    r.knock(knockFrom('192.0.2.10'), Date.now());
    t.true(await waitFor(() => log.events('command.output').length === 1, 5000));
    const grandchild = Number(log.events('command.output')[0]?.msg);
    t.true(isAlive(grandchild));
    await r.stop();
    t.true(await waitFor(() => !running(grandchild), 3000));
  } finally {
    s.close();
  }
});

test('a command that cannot start is an error line, not a crash, and the next knock still acts', async (t) => {
  const log = memoryLogger();
  const r = runner(log.logger, { command: ['/nonexistent/knock-command', '{src}'] });
  r.knock(knockFrom('192.0.2.10'), Date.now());
  t.true(await waitFor(() => log.events('error').length === 1, 5000));
  const error = log.events('error')[0];
  t.like(error, { code: 'E_COMMAND' });
  t.regex(String(error?.msg), /cannot start \/nonexistent\/knock-command: .*ENOENT.*Check the program in -c/);
  r.knock(knockFrom('192.0.2.11'), Date.now());
  t.true(await waitFor(() => log.events('error').length === 2, 5000));
  t.is(log.events('command.started').length, 0);
  await r.stop();
});

/** Plays reconfig-wg: re-arms on SIGUSR1 (printing it), stops on TERM. The runner is told it is reconfig-wg's cli file. */
const FAKE_RECONFIG = `
process.on('SIGUSR1', () => console.log('rearmed'));
process.on('SIGTERM', () => process.exit(0));
console.log('listening');
setTimeout(() => {}, 30_000);
`;

async function withFakeReconfig(fn: (s: ReturnType<typeof scratch>, fake: string, pidFile: string) => Promise<void>): Promise<void> {
  const s = scratch();
  try {
    await fn(s, s.script('fake-reconfig-wg.mjs', FAKE_RECONFIG), join(s.dir, 'reconfig-wg-wg0.pid'));
  } finally {
    s.close();
  }
}

function writePidFile(path: string, pid: number): void {
  writeFileSync(path, `${pid}\n`);
}

test('without -c and no reconfig-wg running, a knock starts reconfig-wg --once, and a knock while it starts adds none', async (t) => {
  await withFakeReconfig(async (_s, fake, pidFile) => {
    const log = memoryLogger();
    const r = runner(log.logger, {}, { reconfigPidFile: pidFile, reconfigArgv: [process.execPath, fake, '--once', '-i', 'wg0'], reconfigIdentity: { name: 'reconfig-wg', cli: fake } });
    r.knock(knockFrom('192.0.2.10'), Date.now());
    t.true(await waitFor(() => log.events('command.output').some((l) => l.msg === 'listening'), 5000));
    t.like(log.events('knock')[0], { action: 'start', argv: [process.execPath, fake, '--once', '-i', 'wg0'] });
    const started = log.events('command.started')[0]?.pid as number;

    // it has not written a pid file: it is ours and still starting, so it is armed already
    r.knock(knockFrom('192.0.2.11'), Date.now());
    t.like(log.events('knock')[1], { action: 'armed', pid: started });
    t.is(log.events('command.started').length, 1);

    await r.stop();
    t.false(isAlive(started), 'what port-knock started, it stops');
  });
});

/** Someone else's reconfig-wg: started here, not by a runner. */
async function foreignReconfig(fake: string): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, [fake], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout?.once('data', resolve));
  return child as ChildProcess & { pid: number };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

test('without -c, a running reconfig-wg named by its pid file gets SIGUSR1, and is left running when port-knock stops', async (t) => {
  await withFakeReconfig(async (_s, fake, pidFile) => {
    const reconfig = await foreignReconfig(fake);
    try {
      const rearmed = new Promise((resolve) => reconfig.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('rearmed') && resolve(true)));
      writePidFile(pidFile, reconfig.pid);
      const log = memoryLogger();
      const r = runner(log.logger, {}, { reconfigPidFile: pidFile, reconfigIdentity: { name: 'reconfig-wg', cli: fake } });
      r.knock(knockFrom('192.0.2.10'), Date.now());
      t.like(log.events('knock')[0], { action: 'rearm', pid: reconfig.pid });
      t.like(log.events('rearm.sent')[0], { pid: reconfig.pid, interface: 'wg0' });
      t.true(await rearmed);
      t.is(log.events('command.started').length, 0);
      await r.stop();
      t.true(isAlive(reconfig.pid), 'an instance port-knock only signalled is not its to stop');
    } finally {
      await stopChild(reconfig);
    }
  });
});

test('a pid file naming a process that is not reconfig-wg is not trusted with a signal', async (t) => {
  await withFakeReconfig(async (_s, fake, pidFile) => {
    writePidFile(pidFile, process.pid);
    const log = memoryLogger();
    const r = runner(log.logger, {}, { reconfigPidFile: pidFile, reconfigArgv: [process.execPath, fake], reconfigIdentity: { name: 'reconfig-wg', cli: fake } });
    r.knock(knockFrom('192.0.2.10'), Date.now());
    t.like(log.events('knock')[0], { action: 'start' });
    t.true(await waitFor(() => log.events('command.started').length === 1, 5000));
    await r.stop();
  });
});

test('a knock flood from 10,000 spoofed sources in 24 s is a few dozen lines that count the rest', async (t) => {
  const clock = new FakeClock();
  const log = memoryLogger();
  const r = runner(log.logger, { command: command('notify {src}'), cooldownMs: 10_000, dryRun: true }, { now: clock.now });
  const floodSize = 10_000;
  for (let i = 0; i < floodSize; i++) {
    clock.ms = Math.floor((i * 24_000) / floodSize);
    r.knock(knockFrom(`2001:db8:66::${(i + 1).toString(16)}`), Date.now());
  }
  await r.stop();
  const knocks = log.events('knock');
  t.true(knocks.length <= 80, `${knocks.length} knock lines`);
  t.is(knocks.filter((k) => k.action === 'command').length, 3, 'every action is logged: three, one per cooldown');
  const suppressed = [...knocks, ...log.events('log.suppressed')].reduce((sum, line) => sum + (typeof line.suppressed === 'number' ? line.suppressed : 0), 0);
  t.true(suppressed > 0);
  t.is(knocks.length + suppressed, floodSize, 'every knock is logged or counted in a line that says so');
});
