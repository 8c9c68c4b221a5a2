/**
 * `check`'s files item judges the runtime and state directories and the state file by the
 * daemon's own rules: a directory others may write, or a planted state file, is a failure.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { checkFiles } from '../src/reconfig/check-files.js';

// Under a private directory of our own: /tmp itself is writable by all (sticky), which the
// rules allow above a directory, so the verdicts below come from what the test arranges.
function setup(): { root: string; runtime: string; state: string } {
  const root = mkdtempSync(join(tmpdir(), 'rwg-check-files-'));
  chmodSync(root, 0o700);
  return { root, runtime: join(root, 'run'), state: join(root, 'lib') };
}

test('private directories, missing ones inside a private parent, and our own state file are fine', (t) => {
  const { root, runtime, state } = setup();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(state, { mode: 0o700 });
  writeFileSync(join(state, 'wg0.json'), '{}', { mode: 0o600 });
  const verdict = checkFiles('wg0', { runtime, state });
  t.true(verdict.ok, verdict.detail);
});

test('a directory others may write, or a state file that is a link, fails with the reason', (t) => {
  const { root, runtime, state } = setup();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(runtime, { mode: 0o700 });
  chmodSync(runtime, 0o777);
  mkdirSync(state, { mode: 0o700 });
  writeFileSync(join(root, 'elsewhere.json'), '{}', { mode: 0o600 });
  symlinkSync(join(root, 'elsewhere.json'), join(state, 'wg0.json'));
  const verdict = checkFiles('wg0', { runtime, state });
  t.false(verdict.ok);
  t.regex(verdict.detail, /run is writable by group or others/);
  t.regex(verdict.detail, /wg0\.json would be refused: it is a symbolic link/);
  t.truthy(verdict.fix);
  t.true(checkFiles('wg1', { runtime: state, state }).ok, 'another interface has no state file yet');
});
