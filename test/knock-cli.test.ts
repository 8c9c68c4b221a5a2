/**
 * The port-knock command as a user meets it: help, usage errors, exit codes, one instance per
 * port range, -k. Cases that need a capture device run in the lab (root).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { KNOCK_CLI, startPortKnock, waitForEvent } from '../scripts/lab/daemons.js';
import { createLab } from '../scripts/lab/lab.js';

const isRoot = process.getuid?.() === 0;
const asRoot = isRoot ? test.serial : test.serial.skip;

const run = (args: string[]) => execa(process.execPath, [KNOCK_CLI, ...args], { reject: false, timeout: 20_000 });
const runIn = (ns: string, args: string[]) =>
  execa('ip', ['netns', 'exec', ns, process.execPath, KNOCK_CLI, ...args], { reject: false, timeout: 20_000 });

test('--help teaches every flag, the placeholders and the exit codes, and exits 0', async (t) => {
  const result = await run(['--help']);
  t.is(result.exitCode, 0);
  for (const text of ['--port', '-p,', '--range', '--command', '-c,', '--interface', '--device', '--cooldown', '--dry-run', '--kill', '--pid-file', '--reconfig-pid-file', '--log-format', '--log-level', '--help', '--version', '{src}', '{port}', '{proto}', '{family}', '{ttl}', 'SIGUSR1', 'Exit status', 'traceroute -T']) {
    t.true(result.stdout.includes(text), text);
  }
  t.is((await run(['-h'])).exitCode, 0);
});

test('--version and -V print the name and the package version, as wg --version does', async (t) => {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const result = await run([flag]);
    t.is(result.exitCode, 0, flag);
    t.is(result.stdout, `port-knock v${version}`, flag);
  }
});

const usageErrors: [string, string[], RegExp][] = [
  ['a port of 0', ['-p', '0'], /-p 0 is not a port; give a whole number from 1 to 65535/],
  ['a port past 65535', ['-p', '65536'], /-p 65536 is not a port/],
  ['a port that is not a number', ['-p', '19k'], /-p 19k is not a port/],
  ['a negative port', ['--port=-5'], /-p -5 is not a port/],
  ['a range of 0', ['--range', '0'], /--range 0 is not a number of ports/],
  ['a range that is not a number', ['--range', 'many'], /--range many is not a number of ports/],
  ['a range past port 65535', ['-p', '65500', '--range', '100'], /would end at port 65599; .*--range 36 at most/],
  ['a negative cooldown', ['--cooldown=-1'], /--cooldown -1 is not a duration/],
  ['a cooldown that is not a number', ['--cooldown', 'soon'], /--cooldown soon is not a duration/],
  ['an unbalanced quote in -c', ['-c', "logger 'knock"], /-c has an unbalanced ' at character 8/],
  ['shell syntax in -c', ['-c', 'wg-quick down wg0; wg-quick up wg0'], /-c has an unquoted ';' .*without a shell/],
  ['an empty -c', ['-c', ''], /-c \(--command\) needs a value/],
  ['a blank -c', ['-c', '  '], /-c is empty/],
  ['-i together with -c', ['-c', 'true', '-i', 'wg0'], /-i and -c do not go together/],
  ['--reconfig-pid-file together with -c', ['-c', 'true', '--reconfig-pid-file', '/tmp/x.pid'], /--reconfig-pid-file and -c do not go together/],
  ['a bad interface name', ['-i', 'this-name-is-far-too-long'], /not a valid interface name/],
  ['an empty device', ['-d', ''], /-d \(--device\) needs a value: a capture device/],
  ['an unknown flag', ['--frobnicate'], /^port-knock: unknown flag --frobnicate\. See --help\.$/],
  ['a misspelt flag', ['--cooldwn', '3'], /^port-knock: unknown flag --cooldwn; did you mean --cooldown\? See --help\.$/],
  ['a long flag with one dash', ['-port', '19000'], /unknown flag -port; long flags take two dashes: --port/],
  ['-p without its value', ['-p'], /^port-knock: -p \(--port\) needs a value: the first port of the range, e\.g\. 19000\. See --help\.$/],
  ['-p followed by another flag', ['-p', '--dry-run'], /-p \(--port\) needs a value.*--dry-run is a flag/],
  ['--cooldown without its value', ['--cooldown'], /--cooldown needs a value: seconds/],
  ['a value given to a switch', ['--dry-run=yes'], /--dry-run takes no value; write --dry-run alone/],
  ['an unknown log level', ['--log-level', 'nonsense'], /^port-knock: --log-level nonsense is not one of trace, debug, info, warn, error, fatal or silent\. See --help\.$/],
  ['an unknown log format', ['--log-format', 'xml'], /--log-format xml is not one of pretty, json, journal or procd/],
  ['--log-format without its value', ['--log-format'], /--log-format needs a value: pretty, json, journal or procd/],
  ['a stray argument', ['wg0'], /unexpected argument 'wg0'/],
];

for (const [what, args, message] of usageErrors) {
  test(`${what} is a usage error: exit 2, one clear line, no stack trace`, async (t) => {
    const result = await run(args);
    t.is(result.exitCode, 2, result.stderr);
    t.regex(result.stderr.trim(), message);
    t.is(result.stderr.trim().split('\n').length, 1, 'one line');
    t.regex(result.stderr, /See --help\.$/);
    t.notRegex(result.stderr, /\n\s+at /, 'no stack trace');
    t.is(result.stdout, '');
  });
}

test('-k when nothing runs says so and exits 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'knock-cli-'));
  try {
    const result = await run(['-k', '--pid-file', join(dir, 'pid')]);
    t.is(result.exitCode, 1);
    t.regex(result.stderr, /port-knock for port 19000 is not running/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('-k with a pid file naming another program refuses to signal it, says so and exits 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'knock-cli-'));
  const other = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const pidFile = join(dir, 'pid');
    writeFileSync(pidFile, `${other.pid!}\n`);
    const result = await run(['-k', '--pid-file', pidFile]);
    t.is(result.exitCode, 1);
    t.regex(result.stderr, new RegExp(`names pid ${other.pid!}, which is another program`));
    t.is(other.exitCode, null);
    t.is(other.signalCode, null, 'the other program was not signalled');
  } finally {
    other.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

asRoot('-i naming an interface that is not there is refused at start with exit 2, before any knock', async (t) => {
  const lab = await createLab({ roamers: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'knock-cli-'));
  try {
    const pidFile = join(dir, 'pid');
    const result = await runIn(lab.r2.ns, ['-i', 'nosuch0', '--pid-file', pidFile]);
    t.is(result.exitCode, 2);
    t.regex(result.stderr, /^port-knock: Unable to access WireGuard interface nosuch0.*wg show interfaces/);
    t.false(existsSync(pidFile));
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

asRoot('a missing capture device is a clear error with exit 2 and leaves no pid file', async (t) => {
  const lab = await createLab({ roamers: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'knock-cli-'));
  try {
    const pidFile = join(dir, 'pid');
    const result = await runIn(lab.r2.ns, ['-c', 'true', '-d', 'nosuchdev0', '--pid-file', pidFile]);
    t.is(result.exitCode, 2);
    t.regex(result.stderr, /nosuchdev0/);
    t.notRegex(result.stderr, /\n\s+at /);
    t.false(existsSync(pidFile));
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

asRoot('one instance per port range: a second says so and exits 2; -k stops the first, which removes its pid file', async (t) => {
  const lab = await createLab({ roamers: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'knock-cli-'));
  try {
    const pidFile = join(dir, 'pid');
    const first = await startPortKnock(lab.scope, lab.r2.ns, ['-p', '19000', '-c', 'true', '--pid-file', pidFile]);
    t.like(await waitForEvent(first, 'listening', 1000), { device: 'any', basePort: 19000, range: 100 });
    t.like(await waitForEvent(first, 'started', 1000), { action: 'command', argv: ['true'], cooldownS: 10, dryRun: false });
    t.true(existsSync(pidFile));

    const second = await runIn(lab.r2.ns, ['-c', 'true', '--pid-file', pidFile]);
    t.is(second.exitCode, 2);
    t.regex(second.stderr, new RegExp(`already running as pid ${String(first.pid)}`));

    const kill = await runIn(lab.r2.ns, ['-k', '--pid-file', pidFile]);
    t.is(kill.exitCode, 0, kill.stderr);
    t.is(await first.waitForExit(5000), 0);
    t.false(existsSync(pidFile));
    t.truthy(await waitForEvent(first, 'stopped', 1000));
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

asRoot('without -c and without -i it needs to know which interface to re-arm: several are an error that says to pass -i', async (t) => {
  // A lab with a roamer has two wireguard-go interfaces, and wireguard-go's sockets are seen
  // from every namespace: `wg show interfaces` lists at least two, whatever else runs.
  const lab = await createLab({ roamers: 1, connect: false });
  const dir = mkdtempSync(join(tmpdir(), 'knock-cli-'));
  try {
    const result = await execa('ip', ['netns', 'exec', lab.r2.ns, process.execPath, KNOCK_CLI, '--pid-file', join(dir, 'pid')], { reject: false, timeout: 20_000 });
    t.is(result.exitCode, 2);
    t.regex(result.stderr, new RegExp(`Several WireGuard interfaces are up \\(.*${lab.r2.wg}.*\\)\\. Choose one with -i`));
    t.notRegex(result.stderr, /\n\s+at /);
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
