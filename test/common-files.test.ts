import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { writeFileAtomic } from '../src/common/atomic.js';
import { acquirePidFile, isAlive, isProgram, readPid, signalPidFile } from '../src/common/pidfile.js';

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

const ID = { title: 'rwg-test-daemon', entry: 'nosuch/cli.js' };

/** A live process that /proc shows as our program (it sets the title, as the commands do). */
async function ourProgram(t: { teardown(fn: () => void): void }): Promise<number> {
  const child = spawn(process.execPath, ['-e', `process.title = '${ID.title}'; setTimeout(() => {}, 30000)`], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const pid = child.pid!;
  for (let i = 0; i < 100 && !isProgram(pid, ID); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  return pid;
}

/** A live process of another program. */
function otherProgram(t: { teardown(fn: () => void): void }): number {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  return child.pid!;
}

test('a pid file is taken, refused while our program holds it, and released only by its owner', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.pid');
  const release = acquirePidFile(path, 'x', ID);
  t.is(readPid(path), process.pid);
  const other = await ourProgram(t);
  t.true(isProgram(other, ID), '/proc shows the title');
  writeFileSync(path, `${other}\n`);
  t.throws(() => acquirePidFile(path, 'x for wg0', ID), { message: new RegExp(`x for wg0 is already running as pid ${other}`) });
  release();
  t.true(existsSync(path), 'a file that is no longer ours is left alone');
});

test('a pid file naming a live process of another program is stale: start takes it over, and it is never signalled', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.pid');
  for (const pid of [1, otherProgram(t)]) {
    writeFileSync(path, `${pid}\n`);
    t.false(isProgram(pid, ID));
    t.throws(() => signalPidFile(path, 'SIGTERM', 'x for wg0', ID), { message: new RegExp(`x for wg0 is not running \\(pid file .* names pid ${pid}, which is another program`) });
    t.true(isAlive(pid), 'the other program was not signalled');
    const release = acquirePidFile(path, 'x', ID);
    t.is(readPid(path), process.pid);
    release();
  }
});

test('a stale pid file (dead process) is taken over', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.pid');
  writeFileSync(path, '999999999\n');
  const release = acquirePidFile(path, 'x', ID);
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
