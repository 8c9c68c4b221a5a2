import { chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'ava';
import { writeFileAtomic } from '../src/common/atomic.js';
import { acquirePidFile, isAlive, isProgram, readPid, signalPidFile } from '../src/common/pidfile.js';
import { unusableDir } from '../src/common/private-dir.js';
import { isProgramCmdline } from '../src/common/proc.js';
import { IDENTITY as RECONFIG_IDENTITY } from '../src/reconfig/identity.js';

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

/** A stand-in cli file: node running it is "our program" for these tests. */
const CLI_DIR = mkdtempSync(join(tmpdir(), 'rwg-common-cli-'));
test.after.always(() => rmSync(CLI_DIR, { recursive: true, force: true }));
const ID = { name: 'rwg-test-daemon', cli: join(CLI_DIR, 'cli.js') };
writeFileSync(ID.cli, 'setTimeout(() => {}, 30000);\n');

/** A live process that /proc shows as our program: node running its cli file. */
async function ourProgram(t: { teardown(fn: () => void): void }): Promise<number> {
  const child = spawn(process.execPath, [ID.cli], { stdio: 'ignore' });
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
  t.true(isProgram(other, ID), '/proc shows node running the cli file');
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

test('an atomic write never writes through a link planted at its temporary name, and leaves the target alone', (t) => {
  const dir = tempDir(t);
  const victim = join(dir, 'shadow');
  writeFileSync(victim, 'root:secret\n', { mode: 0o600 });
  const path = join(dir, 'wg0.json');
  symlinkSync(victim, join(dir, `.wg0.json.${process.pid}.tmp`));
  writeFileAtomic(path, '{}\n');
  t.is(readFileSync(victim, 'utf8'), 'root:secret\n', 'the file the link pointed at is untouched');
  t.is(readFileSync(path, 'utf8'), '{}\n');
  t.false(lstatSync(path).isSymbolicLink());
  t.deepEqual(readdirSync(dir).sort(), ['shadow', 'wg0.json']);
});

test('files are created 0600 unless told (the pid file 0640), whatever was at the name before', (t) => {
  const dir = tempDir(t);
  writeFileAtomic(join(dir, 'state.json'), '{}\n');
  t.is(statSync(join(dir, 'state.json')).mode & 0o777, 0o600);
  const pidFile = join(dir, 'x.pid');
  writeFileSync(pidFile, '999999999\n', { mode: 0o666 });
  const release = acquirePidFile(pidFile, 'x', ID);
  t.is(statSync(pidFile).mode & 0o777 & ~process.umask(), 0o640 & ~process.umask());
  release();
});

test('a directory writable by others, or owned by another user, is refused with the fix; nothing is written there', (t) => {
  const dir = tempDir(t);
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  t.throws(() => writeFileAtomic(join(shared, 'wg0.json'), '{}\n'), { message: /shared is writable by group or others \(mode 01777\)/ });
  t.throws(() => acquirePidFile(join(shared, 'x.pid'), 'x', ID), { message: /writable by group or others.*--pid-file/ });
  const planted = join(dir, 'planted');
  mkdirSync(planted, { mode: 0o755 });
  chownSync(planted, 65534, 65534);
  t.throws(() => writeFileAtomic(join(planted, 'wg0.json'), '{}\n'), { message: /planted is owned by uid 65534, not root/ });
  t.deepEqual([...readdirSync(shared), ...readdirSync(planted)], []);
  // a link to a safe directory, planted by someone else, is refused too
  const link = join(shared, 'run');
  symlinkSync(dir, link);
  lchownSync(link, 65534, 65534);
  t.regex(unusableDir(link) ?? '', /is a symbolic link owned by uid 65534/);
  t.is(unusableDir(dir), undefined, 'a private directory is fine');
});

test('a pid file that is a link, or is not ours, names no pid', (t) => {
  const dir = tempDir(t);
  const real = join(dir, 'real.pid');
  writeFileSync(real, `${process.pid}\n`);
  symlinkSync(real, join(dir, 'link.pid'));
  t.is(readPid(real), process.pid);
  t.is(readPid(join(dir, 'link.pid')), undefined);
  chownSync(real, 65534, 65534);
  t.is(readPid(real), undefined);
});

/** reconfig-wg as this installation's /proc shows it, and what merely looks like it. */
const fakeCmdline = (...argv: string[]): string => `${argv.join('\0')}\0`;

test("the identity is node running the program's own cli file, however it was started", (t) => {
  const bin = join(CLI_DIR, 'bin');
  mkdirSync(bin, { recursive: true });
  if (!existsSync(join(bin, 'rwg-test-daemon'))) symlinkSync(ID.cli, join(bin, 'rwg-test-daemon'));
  for (const cmdline of [
    fakeCmdline(process.execPath, ID.cli, '-i', 'wg0'),
    fakeCmdline('node', join(bin, 'rwg-test-daemon'), '--log-format', 'json'), // a bin link, through #!/usr/bin/env node
    fakeCmdline('/usr/bin/nodejs', '--cpu-prof', ID.cli),
  ]) {
    t.true(isProgramCmdline(cmdline, ID, '/'), JSON.stringify(cmdline));
  }
  t.true(isProgramCmdline(fakeCmdline('node', 'cli.js'), ID, CLI_DIR), 'a relative script, from the process working directory');
});

test('an editor on /etc/config/reconfig-wg, the init script, a process title or another node script is not reconfig-wg', (t) => {
  for (const cmdline of [
    fakeCmdline('vi', '/etc/config/reconfig-wg'),
    fakeCmdline('/bin/sh', '/etc/rc.common', '/etc/init.d/reconfig-wg', 'start'),
    fakeCmdline('reconfig-wg', '', '', ''), // a process title anyone can set
    fakeCmdline('node', '/usr/lib/other/reconfig/cli.js'),
    fakeCmdline('python3', RECONFIG_IDENTITY.cli),
    fakeCmdline('node'),
    '',
  ]) {
    t.false(isProgramCmdline(cmdline, RECONFIG_IDENTITY, '/'), JSON.stringify(cmdline));
  }
  t.true(isProgramCmdline(fakeCmdline('node', RECONFIG_IDENTITY.cli, '-i', 'wg0'), RECONFIG_IDENTITY, '/'));
});

/** A live process whose command line is `argv` (argv[0] given as is), running a script that waits. */
function liveWith(t: { teardown(fn: () => void): void }, dir: string, argv0: string, scriptPath: string, args: string[] = []): number {
  mkdirSync(dirname(scriptPath), { recursive: true });
  writeFileSync(scriptPath, 'sleep 30\n');
  const child = spawn('/bin/sh', [scriptPath, ...args], { argv0, stdio: 'ignore', cwd: dir });
  t.teardown(() => child.kill('SIGKILL'));
  return child.pid!;
}

test('-k and a re-arm never signal `vi /etc/config/reconfig-wg` or the init script that a stale pid file names', async (t) => {
  const dir = tempDir(t);
  const editor = liveWith(t, dir, 'vi', join(dir, 'etc', 'config', 'reconfig-wg'));
  const initScript = liveWith(t, dir, '/bin/sh', join(dir, 'etc', 'rc.common'), [join(dir, 'etc', 'init.d', 'reconfig-wg'), 'start']);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const path = join(dir, 'wg0.pid');
  for (const pid of [editor, initScript]) {
    writeFileSync(path, `${pid}\n`);
    t.throws(() => signalPidFile(path, 'SIGUSR1', 'reconfig-wg for wg0', RECONFIG_IDENTITY), { message: /which is another program/ });
    await new Promise((resolve) => setTimeout(resolve, 50));
    t.true(isAlive(pid), 'not signalled');
  }
});
