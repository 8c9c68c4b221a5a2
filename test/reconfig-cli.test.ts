/**
 * The reconfig-wg command as a user meets it: help, usage errors, exit codes, one instance per
 * interface, -k. Cases that need a WireGuard interface run in the lab (root).
 */
import { mkdtempSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { createLab } from '../scripts/lab/lab.js';
import { RECONFIG_CLI, startReconfigWg, waitForEvent } from '../scripts/lab/daemons.js';
import { waitFor } from '../scripts/lab/netns.js';

const isRoot = process.getuid?.() === 0;
const asRoot = isRoot ? test.serial : test.serial.skip;

const run = (args: string[]) => execa(process.execPath, [RECONFIG_CLI, ...args], { reject: false, timeout: 20_000 });
const runIn = (ns: string, args: string[]) =>
  execa('ip', ['netns', 'exec', ns, process.execPath, RECONFIG_CLI, ...args], { reject: false, timeout: 20_000 });

test('--help teaches the flags and exits 0', async (t) => {
  const result = await run(['--help']);
  t.is(result.exitCode, 0);
  for (const flag of ['--interface', '--device', '--once', '--dry-run', '--kill', '--pid-file', '--state-file', '--status-file', '--persist', '--hook', '--hook-timeout', 'status', 'check', '--log-format', '--log-level', 'SIGHUP', 'Exit status']) {
    t.true(result.stdout.includes(flag), flag);
  }
  t.is((await run(['-h'])).exitCode, 0);
});

test('--version prints the package version', async (t) => {
  const result = await run(['--version']);
  t.is(result.exitCode, 0);
  t.regex(result.stdout, /^\d+\.\d+\.\d+/);
});

test('an unknown flag is a usage error with exit 2', async (t) => {
  const result = await run(['--frobnicate']);
  t.is(result.exitCode, 2);
  t.regex(result.stderr, /frobnicate/);
  t.notRegex(result.stderr, /\n\s+at /, 'no stack trace');
});

test('a bad interface name is refused with exit 2 and says what a valid one is', async (t) => {
  const result = await run(['-i', 'this-name-is-far-too-long']);
  t.is(result.exitCode, 2);
  t.regex(result.stderr, /not a valid interface name/);
});

test('without the wg tool it says which package to install, with exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = ['--pid-file', join(dir, 'pid'), '--state-file', join(dir, 'state.json')];
  const result = await execa(process.execPath, [RECONFIG_CLI, '-i', 'wg0', ...files], { reject: false, env: { PATH: '/nonexistent' } });
  t.is(result.exitCode, 2);
  t.regex(result.stderr, /The wg tool was not found\. Install it: apt-get install wireguard-tools/);
});

test('a stray argument is refused with exit 2', async (t) => {
  const result = await run(['wg0']);
  t.is(result.exitCode, 2);
  t.regex(result.stderr, /unexpected argument 'wg0'/);
});

asRoot('a missing interface, a missing device and a broken state file are clear errors with exit 2', async (t) => {
  const lab = await createLab({ roamers: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-cli-'));
  try {
    const files = ['--pid-file', join(dir, 'pid'), '--state-file', join(dir, 'state.json')];
    const missing = await runIn(lab.r2.ns, ['-i', 'nosuch0', ...files]);
    t.is(missing.exitCode, 2);
    t.regex(missing.stderr, /Unable to access WireGuard interface nosuch0.*wg show interfaces/);

    const noDevice = await runIn(lab.r2.ns, ['-i', lab.r2.wg, '-d', 'nosuchdev0', ...files]);
    t.is(noDevice.exitCode, 2);
    t.regex(noDevice.stderr, /nosuchdev0/);
    t.false(existsSync(join(dir, 'pid')), 'a failed start leaves no pid file');

    writeFileSync(join(dir, 'state.json'), '{ broken');
    const broken = await runIn(lab.r2.ns, ['-i', lab.r2.wg, ...files]);
    t.is(broken.exitCode, 2);
    t.regex(broken.stderr, /state\.json is not valid JSON\. Move it aside/);
    for (const r of [missing, noDevice, broken]) t.notRegex(r.stderr, /\n\s+at /);
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

asRoot('one instance per interface: a second says so and exits 2; -k stops the first, which removes its pid file', async (t) => {
  const lab = await createLab({ roamers: 1, connect: false });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-cli-'));
  try {
    const pidFile = join(dir, 'pid');
    const files = ['--pid-file', pidFile, '--state-file', join(dir, 'state.json')];
    const first = await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, ...files]);
    const listening = await waitForEvent(first, 'listening', 1000);
    t.like(listening, { interface: lab.r2.wg, device: 'any', port: 51820, peers: 1 });
    t.true(existsSync(pidFile));

    const second = await runIn(lab.r2.ns, ['-i', lab.r2.wg, ...files]);
    t.is(second.exitCode, 2);
    t.regex(second.stderr, new RegExp(`already running as pid ${String(first.pid)}`));

    const kill = await runIn(lab.r2.ns, ['-i', lab.r2.wg, '-k', '--pid-file', pidFile]);
    t.is(kill.exitCode, 0, kill.stderr);
    t.is(await first.waitForExit(5000), 0);
    t.false(existsSync(pidFile));
    t.truthy(await waitForEvent(first, 'stopped', 1000));

    const again = await runIn(lab.r2.ns, ['-i', lab.r2.wg, '-k', '--pid-file', pidFile]);
    t.is(again.exitCode, 1);
    t.regex(again.stderr, /not running/);
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

asRoot('SIGHUP re-reads the configuration and keeps running; a peer added meanwhile is counted', async (t) => {
  const lab = await createLab({ roamers: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-cli-'));
  try {
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 's.json')]);
    t.like(await waitForEvent(daemon, 'listening', 1000), { interface: lab.r2.wg, peers: 0 });
    process.kill(daemon.pid!, 'SIGHUP');
    t.truthy(await waitForEvent(daemon, 'reload', 5000));
    t.true(await waitFor(() => !daemon.exited, 500));
    process.kill(daemon.pid!, 'SIGTERM');
    t.is(await daemon.waitForExit(5000), 0);
    t.like(await waitForEvent(daemon, 'stopped', 1000), { interface: lab.r2.wg });
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
