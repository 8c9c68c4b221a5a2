/**
 * The new flags and subcommands as a user meets them: bad values are usage errors (exit 2)
 * that name the flag and the fix, before anything else happens; `status` without a daemon.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
