/**
 * The new flags and subcommands as a user meets them: bad values are usage errors (exit 2)
 * that name the flag and the fix, before anything else happens; `status` without a daemon.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { RECONFIG_CLI } from '../scripts/lab/daemons.js';

const run = (args: string[]) => execa(process.execPath, [RECONFIG_CLI, ...args], { reject: false, timeout: 20_000 });

test('--persist takes uci, wg-quick[=PATH] or none; anything else is exit 2 with the choices', async (t) => {
  const result = await run(['-i', 'wg0', '--persist', 'floppy']);
  t.is(result.exitCode, 2);
  t.regex(result.stderr, /--persist must be uci, wg-quick\[=PATH\] or none, not 'floppy'/);
  const empty = await run(['-i', 'wg0', '--persist', 'wg-quick=']);
  t.is(empty.exitCode, 2);
  t.regex(empty.stderr, /the path after = is empty/);
});

test('--hook with shell syntax is refused with exit 2, saying to use a script', async (t) => {
  const result = await run(['-i', 'wg0', '--hook', 'echo {to} > /tmp/x']);
  t.is(result.exitCode, 2);
  t.regex(result.stderr, /--hook has an unquoted '>' at character 11: the command runs without a shell/);
  t.notRegex(result.stderr, /\n\s+at /, 'no stack trace');
});

test('--hook-timeout must be a number of seconds above 0', async (t) => {
  for (const value of ['0', 'soon', '99999', '1e3']) {
    const result = await run(['-i', 'wg0', '--hook', 'true', '--hook-timeout', value]);
    t.is(result.exitCode, 2, value);
    t.regex(result.stderr, /--hook-timeout must be a number of seconds above 0 and at most 3600/, value);
  }
});

test('status without a daemon says so with exit 1; a broken status file is named; bad usage is exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-status-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = await run(['status', '--status-file', join(dir, 'none.json')]);
  t.is(missing.exitCode, 1);
  t.regex(missing.stderr, /none\.json does not exist\. Is reconfig-wg running for this interface\?/);
  writeFileSync(join(dir, 'bad.json'), '{"version": 1');
  const broken = await run(['status', '--status-file', join(dir, 'bad.json')]);
  t.is(broken.exitCode, 1);
  t.regex(broken.stderr, /bad\.json is not valid JSON/);
  t.is((await run(['status', 'extra'])).exitCode, 2);
  t.is((await run(['status', '--frobnicate'])).exitCode, 2);
  t.is((await run(['status', '-i', 'far-too-long-interface-name'])).exitCode, 2);
  const help = await run(['status', '--help']);
  t.is(help.exitCode, 0);
  t.regex(help.stdout, /reconfig-wg status \[-i IFACE\] \[--json\]/);
});

test('check --help lists what it checks and the exit codes', async (t) => {
  const help = await run(['check', '--help']);
  t.is(help.exitCode, 0);
  for (const word of ['capture', 'firewall', 'conntrack pinhole', '--persist', 'Exit status']) t.true(help.stdout.includes(word), word);
});

/** A status file as a daemon writes it, with `overrides`. */
function statusText(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    version: 1, interface: 'wg0', pid: 1, listenPort: 51820, startedAt: '2026-11-23T10:00:00.000Z', updatedAt: '2026-11-23T10:04:00.013Z',
    persist: 'none', capture: { received: 9, dropped: 0 }, ignored: {}, peers: [], ...overrides,
  });
}

function statusDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-status-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const ESC = '\u001b';

test('status refuses a file planted by another user, terminal escapes and all, and prints nothing of it', async (t) => {
  const dir = statusDir(t);
  const path = join(dir, 'wg0.json');
  writeFileSync(path, statusText({ persist: `${ESC}]0;owned${ESC}\\${ESC}[2J` }));
  chownSync(path, 65534, 65534);
  const result = await run(['status', '--status-file', path]);
  t.is(result.exitCode, 1);
  t.regex(result.stderr, /wg0\.json is not read: it belongs to uid 65534, not to this process.s user \(0\)/);
  t.is(result.stdout, '');
  t.false(result.stderr.includes(ESC));
});

test('status prints no control characters: a field carrying one makes the file unreadable, with the field named', async (t) => {
  const dir = statusDir(t);
  const path = join(dir, 'wg0.json');
  for (const [overrides, reason] of [
    [{ persist: `none${ESC}[31m` }, /has a persist target that is not printable text/],
    [{ interface: `wg0${ESC}[2J` }, /has a bad interface name/],
    [{ ignored: { [`x${ESC}[2J`]: 1 } }, /has a bad ignored counters reason/],
    [{ pid: -1 }, /has a pid that is not a positive whole number/],
    [{ pid: 1.5 }, /has a pid that is not a positive whole number/],
    [{ peers: [{ publicKey: `${ESC}[2J`, endpoint: null, lastChange: null, counts: {} }] }, /has a bad peer key/],
  ] as const) {
    writeFileSync(path, statusText(overrides));
    const result = await run(['status', '--status-file', path]);
    t.is(result.exitCode, 1, JSON.stringify(overrides));
    t.regex(result.stderr, reason);
    t.false(result.stdout.includes(ESC) || result.stderr.includes(ESC));
  }
});

test('status shows a pid that is not reconfig-wg (pid 1 here) as not running', async (t) => {
  const dir = statusDir(t);
  const path = join(dir, 'wg0.json');
  writeFileSync(path, statusText({ pid: 1 }));
  const result = await run(['status', '--status-file', path]);
  t.is(result.exitCode, 1);
  t.regex(result.stdout, /^reconfig-wg on wg0: not running \(pid 1 is gone/);
  const json = await run(['status', '--status-file', path, '--json']);
  t.like(JSON.parse(json.stdout), { running: false, pid: 1 });
});

test('status refuses a file in a directory others can write, and a link', async (t) => {
  const dir = statusDir(t);
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o777);
  writeFileSync(join(shared, 'wg0.json'), statusText());
  const result = await run(['status', '--status-file', join(shared, 'wg0.json')]);
  t.is(result.exitCode, 1);
  t.regex(result.stderr, /shared is writable by group or others \(mode 0777\)/);
  writeFileSync(join(dir, 'real.json'), statusText());
  symlinkSync(join(dir, 'real.json'), join(dir, 'wg0.json'));
  const link = await run(['status', '--status-file', join(dir, 'wg0.json')]);
  t.is(link.exitCode, 1);
  t.regex(link.stderr, /wg0\.json is not read: it is a symbolic link/);
});
