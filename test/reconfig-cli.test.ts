/**
 * The reconfig-wg command as a user meets it: help, usage errors, exit codes, one instance per
 * interface, -k. Cases that need a WireGuard interface run in the lab (root).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  for (const flag of ['--interface', '--device', '--once', '--dry-run', '--kill', '--pid-file', '--state-file', '--status-file', '--persist', '--hook', '--hook-timeout', '--registry', '--registry-zone', 'status', 'check', '--log-format', '--log-level', 'SIGHUP', 'Exit status']) {
    t.true(result.stdout.includes(flag), flag);
  }
  t.is((await run(['-h'])).exitCode, 0);
});

test('--version and -V print the name and the package version, as wg --version does', async (t) => {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const result = await run([flag]);
    t.is(result.exitCode, 0, flag);
    t.is(result.stdout, `reconfig-wg v${version}`, flag);
  }
});

const usageErrors: [string, string[], RegExp][] = [
  ['an unknown flag', ['--frobnicate'], /^reconfig-wg: unknown flag --frobnicate\. See --help\.$/],
  ['an unknown short flag', ['-p', '19000'], /^reconfig-wg: unknown flag -p\. See --help\.$/],
  ['a long flag with one dash', ['-interface', 'wg0'], /unknown flag -interface; long flags take two dashes: --interface/],
  ['-i without its value', ['-i'], /^reconfig-wg: -i \(--interface\) needs a value: a WireGuard interface name, e\.g\. wg0\. See --help\.$/],
  ['-i followed by another flag', ['-i', '--once'], /-i \(--interface\) needs a value.*--once is a flag; write --interface=--once/],
  ['an empty -i', ['--interface='], /--interface needs a value/],
  ['--once given a value', ['--once=yes'], /^reconfig-wg: --once takes no value; write --once alone\. See --help\.$/],
  ['-k given a value', ['-kx'], /-k takes no value/],
  ['an unknown log level', ['--log-level', 'nonsense'], /^reconfig-wg: --log-level nonsense is not one of trace, debug, info, warn, error, fatal or silent\. See --help\.$/],
  ['--log-level without its value', ['--log-level'], /--log-level needs a value: trace, debug/],
  ['an unknown log format', ['--log-format', 'xml'], /^reconfig-wg: --log-format xml is not one of pretty, json, journal or procd\. See --help\.$/],
  ['--log-format without its value', ['--log-format'], /--log-format needs a value: pretty, json, journal or procd/],
  ['--state-file without its value', ['--state-file'], /--state-file needs a value: a path/],
  ['a stray argument', ['wg0'], /unexpected argument 'wg0'.*given with -i/],
  ['a --registry that is no address', ['--registry', 'wg0'], /^reconfig-wg: --registry takes an address of the WireGuard interface, ADDR or ADDR:PORT \(IPv6 as \[ADDR\]:PORT\), not 'wg0'\. See --help\.$/],
  ['a --registry port out of range', ['--registry', '203.0.113.1:70000'], /--registry: the port must be a number from 1 to 65535, not '70000'/],
  ['a --registry IPv6 address without brackets around it before a port', ['--registry', '[203.0.113.1]:5182'], /in brackets is not an IPv6 address/],
  ['a link-local --registry', ['--registry', '[fe80::1]:5182'], /fe80::1 is link-local/],
  ['--registry-zone without --registry', ['--registry-zone', 'mesh.internal'], /--registry-zone needs --registry/],
  ['a --registry-zone that is no DNS name', ['--registry', '203.0.113.1', '--registry-zone', 'a..b'], /--registry-zone 'a\.\.b' is not a DNS name/],
];

for (const [what, args, message] of usageErrors) {
  test(`${what} is a usage error: exit 2, one line naming the program and the flag, See --help`, async (t) => {
    const result = await run(args);
    t.is(result.exitCode, 2, result.stderr);
    t.regex(result.stderr.trim(), message);
    t.is(result.stderr.trim().split('\n').length, 1, 'one line');
    t.regex(result.stderr, /^reconfig-wg: .*See --help\.$/);
    t.is(result.stdout, '');
  });
}

test('on a terminal a failure is printed once (no pretty log line repeating it), with exit 2', async (t) => {
  const hasScript = (await execa('script', ['--version'], { reject: false })).exitCode === 0;
  if (!hasScript) return t.pass('script(1) is not installed: no terminal to test with');
  const dir = mkdtempSync(join(tmpdir(), 'rwg-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const command = [process.execPath, RECONFIG_CLI, '-i', 'nosuch0', '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 's.json')].join(' ');
  // script(1) runs the command on a pseudo-terminal, as a person would
  const result = await execa('script', ['-qec', command, '/dev/null'], { reject: false, timeout: 20_000 });
  t.is(result.exitCode, 2, result.stdout);
  const mentions = result.stdout.split('\n').filter((line) => line.includes('nosuch0'));
  t.is(mentions.length, 1, result.stdout);
  t.regex(mentions[0]!, /^reconfig-wg: /);
});

test('-k with a pid file naming another program refuses to signal it, says so and exits 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-cli-'));
  const other = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const pidFile = join(dir, 'pid');
    writeFileSync(pidFile, `${other.pid!}\n`);
    const result = await run(['-k', '-i', 'wg0', '--pid-file', pidFile]);
    t.is(result.exitCode, 1);
    t.regex(result.stderr, new RegExp(`^reconfig-wg: reconfig-wg for wg0 is not running \\(pid file .* names pid ${other.pid!}, which is another program`));
    t.is(other.signalCode, null, 'the other program was not signalled');
  } finally {
    other.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
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
    // a stale pid file naming a live process of another program does not stop a start
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    t.teardown(() => other.kill('SIGKILL'));
    writeFileSync(pidFile, `${other.pid!}\n`);
    const first = await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, ...files]);
    t.is(other.signalCode, null);
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
