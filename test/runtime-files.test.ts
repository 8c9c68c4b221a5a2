/**
 * Where the daemons keep their files by default, checked on the file system the shipped units
 * give them: /run read-only except their RuntimeDirectory, a private /tmp (ProtectSystem=strict,
 * PrivateTmp=yes). Each check runs in a mount namespace of its own (unshare -m) with fresh
 * tmpfs mounts on /run and /tmp, so nothing outside it is touched.
 */
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';

const dist = (path: string): string => fileURLToPath(new URL(`../src/${path}`, import.meta.url));

/** The checkout itself, which may live under /tmp: kept visible when the namespace gets a private /tmp. */
const PROJECT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const PRIVATE_TMP = 'mount -t tmpfs -o mode=1777 tmpfs /tmp';
const PRIVATE_TMP_KEEPING_PROJECT = [
  'mount --bind "$PROJECT" /mnt',
  PRIVATE_TMP,
  'case "$PROJECT" in /tmp/*) mkdir -p "$PROJECT" && mount --bind /mnt "$PROJECT";; esac',
].join('\n');

/** Runs `script` (an ES module body) in a new mount namespace after `setup` (sh), as the unit would. */
async function inNamespace(setup: string, script: string): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
  const shell = setup.replaceAll(PRIVATE_TMP, PRIVATE_TMP_KEEPING_PROJECT);
  const result = await execa('unshare', ['-m', 'sh', '-euc', `${shell}\nexec "$0" --input-type=module -e "$1"`, process.execPath, script], {
    reject: false,
    timeout: 20_000,
    env: { PROJECT },
  });
  return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}

/** systemd's view for reconfig-wg@: /run read-only, /run/reconfig-wg and /run/port-knock its own, /tmp private. */
const UNIT_FILE_SYSTEM = [
  'mount -t tmpfs -o mode=0755 tmpfs /run',
  'mkdir -m 0755 /run/reconfig-wg /run/port-knock',
  'mount --bind /run/reconfig-wg /run/reconfig-wg',
  'mount --bind /run/port-knock /run/port-knock',
  'mount -o remount,bind,ro /run',
  'mount -t tmpfs -o mode=1777 tmpfs /tmp',
].join('\n');

const PATHS = `
const options = await import(${JSON.stringify(dist('reconfig/options.js'))});
const knock = await import(${JSON.stringify(dist('knock/options.js'))});
const pid = options.defaultPidFile('reconfig-wg', 'wg0');
console.log(JSON.stringify({
  pid, status: options.defaultStatusFile('wg0'), state: options.defaultStateFile('wg0'), sessions: options.sessionsFileFor(pid),
  knock: knock.knockPidFile({ basePort: 19000, pidFile: undefined }),
}));
`;

test("under the unit's file system every runtime file is in its RuntimeDirectory, the state in /var/lib: never /tmp", async (t) => {
  const result = await inNamespace(UNIT_FILE_SYSTEM, PATHS);
  t.is(result.exitCode, 0, result.stderr);
  t.deepEqual(JSON.parse(result.stdout), {
    pid: '/run/reconfig-wg/wg0.pid',
    status: '/run/reconfig-wg/wg0.json',
    state: '/var/lib/reconfig-wg/wg0.json',
    sessions: '/run/reconfig-wg/wg0.sessions.json',
    knock: '/run/port-knock/19000.pid',
  });
});

const PREPARE = `
const options = await import(${JSON.stringify(dist('reconfig/options.js'))});
const given = { pidFile: undefined, statusFile: undefined, stateFile: process.env.STATE };
try {
  options.prepareInstanceFiles(options.instanceFiles(given, 'reconfig-wg', 'wg0'), given);
  console.log('ok');
} catch (error) {
  console.log(JSON.stringify({ code: error.code, exitCode: error.exitCode, message: error.message }));
}
`;

test('without a runtime directory of its own (and /run read-only) the daemon refuses to start, exit 2, and says what to do', async (t) => {
  const setup = ['mount -t tmpfs -o mode=0755 tmpfs /run', 'mount -o remount,ro /run', 'mount -t tmpfs -o mode=1777 tmpfs /tmp', 'mkdir -m 0700 /tmp/state', 'export STATE=/tmp/state/wg0.json'].join('\n');
  const result = await inNamespace(setup, PREPARE);
  t.is(result.exitCode, 0, result.stderr);
  const error = JSON.parse(result.stdout) as { code: string; exitCode: number; message: string };
  t.is(error.code, 'E_UNSAFE_DIR');
  t.is(error.exitCode, 2);
  t.regex(error.message, /^Cannot keep files in \/run\/reconfig-wg: \/run is not writable \(EROFS\).*RuntimeDirectory=.*or pass --pid-file/);
});

test('with its RuntimeDirectory the daemon starts; one someone else owns is refused', async (t) => {
  const ok = await inNamespace(`${UNIT_FILE_SYSTEM}\nmkdir -m 0700 /tmp/state\nexport STATE=/tmp/state/wg0.json`, PREPARE);
  t.is(ok.stdout, 'ok', ok.stderr);
  const planted = await inNamespace(`${UNIT_FILE_SYSTEM}\nchown 65534:65534 /run/reconfig-wg\nmkdir -m 0700 /tmp/state\nexport STATE=/tmp/state/wg0.json`, PREPARE);
  t.like(JSON.parse(planted.stdout), { code: 'E_UNSAFE_DIR', exitCode: 2 });
  t.regex(planted.stdout, /\/run\/reconfig-wg is owned by uid 65534, not root/);
});
