import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { writeFileAtomic } from '../src/common/atomic.js';
import { acquirePidFile, readPid } from '../src/common/pidfile.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-common-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('an atomic write replaces the file whole and leaves no temporary file behind', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'sub', 'state.json');
  writeFileAtomic(path, 'first\n');
  writeFileAtomic(path, 'second\n', 0o600);
  t.is(readFileSync(path, 'utf8'), 'second\n');
  t.deepEqual(readdirSync(join(dir, 'sub')), ['state.json']);
});

test('a pid file is taken, refused while its process lives, and released only by its owner', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.pid');
  const release = acquirePidFile(path, 'x');
  t.is(readPid(path), process.pid);
  // pid 1 is always alive: a file naming it means another instance runs.
  writeFileSync(path, '1\n');
  t.throws(() => acquirePidFile(path, 'x for wg0'), { message: /x for wg0 is already running as pid 1/ });
  release();
  t.true(existsSync(path), 'a file that is no longer ours is left alone');
});

test('a stale pid file (dead process) is taken over', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.pid');
  writeFileSync(path, '999999999\n');
  const release = acquirePidFile(path, 'x');
  t.is(readPid(path), process.pid);
  release();
  t.false(existsSync(path));
});

test('a pid file with garbage in it reads as no pid', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.pid');
  for (const text of ['', 'abc', '12abc', '-5', '0']) {
    writeFileSync(path, text);
    t.is(readPid(path), undefined, JSON.stringify(text));
  }
});
