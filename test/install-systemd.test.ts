/**
 * The systemd side of an installation: scripts/install.sh puts the units in place with
 * ExecStart pointing at the installed commands, `systemd-analyze verify` accepts them,
 * `systemd-analyze security` rates both 5.0 or lower, and --uninstall takes away what it
 * installed (and keeps what the administrator changed).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';
import { KNOCK_CLI, RECONFIG_CLI } from '../scripts/lab/daemons.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const INSTALL = join(root, 'scripts', 'install.sh');
const UNITS = ['reconfig-wg@.service', 'port-knock@.service'] as const;
const MAX_EXPOSURE = 5.0;

const analyze = await execa('systemd-analyze', ['--version'], { reject: false });
const hasAnalyze = analyze.exitCode === 0;
const withAnalyze = hasAnalyze ? test : test.skip;
if (!hasAnalyze) console.warn('systemd-analyze cannot run here (install the systemd package): the verify and security checks are skipped');

/** A bin directory the way npm makes one: links to the commands' entry points. */
function binDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-bin-'));
  symlinkSync(RECONFIG_CLI, join(dir, 'reconfig-wg'));
  symlinkSync(KNOCK_CLI, join(dir, 'port-knock'));
  return dir;
}

function staged(t: { teardown(fn: () => void): void }): { bin: string; stage: string; unit: (name: string) => string } {
  const bin = binDir();
  const stage = mkdtempSync(join(tmpdir(), 'rwg-root-'));
  t.teardown(() => {
    rmSync(bin, { recursive: true, force: true });
    rmSync(stage, { recursive: true, force: true });
  });
  return { bin, stage, unit: (name) => join(stage, 'etc', 'systemd', 'system', name) };
}

test('install.sh installs both units with ExecStart at the installed commands, and the /etc/default files', async (t) => {
  const { bin, stage, unit } = staged(t);
  const result = await execa(INSTALL, ['--root', stage, '--bin-dir', bin], { reject: false });
  t.is(result.exitCode, 0, result.stderr);
  for (const name of UNITS) {
    const command = name.replace('@.service', '');
    const text = readFileSync(unit(name), 'utf8');
    const execStart = /^ExecStart=(\S+) (.*)$/m.exec(text);
    t.is(execStart?.[1], join(bin, command), `${name} starts ${command} from the bin directory`);
    t.true(result.stdout.includes(`installed ${unit(name)}`), `it says it installed ${name}`);
    t.true(existsSync(join(stage, 'etc', 'default', command)), `/etc/default/${command}`);
    // the command the unit starts is a working one
    const version = await execa(execStart![1]!, ['--version'], { reject: false });
    t.is(version.exitCode, 0, version.stderr);
    t.regex(text, /^RestartPreventExitStatus=2$/m);
    t.regex(text, new RegExp(`^EnvironmentFile=-/etc/default/${command}$`, 'm'));
  }
  // the man pages and the bash completion, where man and bash-completion look under /usr/local
  for (const page of ['reconfig-wg.8', 'port-knock.8']) {
    t.is(readFileSync(join(stage, 'usr', 'local', 'share', 'man', 'man8', page), 'utf8'), readFileSync(join(root, 'man', page), 'utf8'), page);
  }
  for (const command of ['reconfig-wg', 'port-knock']) {
    t.is(readFileSync(join(stage, 'usr', 'local', 'share', 'bash-completion', 'completions', command), 'utf8'), readFileSync(join(root, 'completions', 'reconfig-wg'), 'utf8'), `completion for ${command}`);
  }
  const rendered = await execa('man', ['reconfig-wg'], { env: { MANPATH: join(stage, 'usr', 'local', 'share', 'man'), MANWIDTH: '80', MANPAGER: 'cat' }, reject: false });
  t.regex(rendered.stdout, /^RECONFIG-WG\(8\)/m, `man reconfig-wg finds the installed page: ${rendered.stderr}`);
  const knock = readFileSync(unit('port-knock@.service'), 'utf8');
  t.regex(knock, /^After=.*reconfig-wg@%i\.service/m);
  t.regex(knock, /^Wants=.*reconfig-wg@%i\.service/m);
  // port-knock finds the service's reconfig-wg where that one keeps its pid file
  const pidFile = /--pid-file (\S+)/.exec(readFileSync(unit('reconfig-wg@.service'), 'utf8'))?.[1];
  t.truthy(pidFile);
  t.true(knock.includes(`--reconfig-pid-file ${pidFile!}`));
});

test('install.sh without the commands, or with a bad argument, says what to do and exits 2', async (t) => {
  const { stage } = staged(t);
  const empty = mkdtempSync(join(tmpdir(), 'rwg-empty-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  const missing = await execa(INSTALL, ['--root', stage, '--bin-dir', empty], { reject: false });
  t.is(missing.exitCode, 2);
  t.regex(missing.stderr, /reconfig-wg is not an executable; pass --bin-dir/);
  const bad = await execa(INSTALL, ['--frobnicate'], { reject: false });
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /unknown argument '--frobnicate'\. See --help\./);
});

test('install.sh --uninstall removes what it installed and keeps a changed /etc/default file', async (t) => {
  const { bin, stage, unit } = staged(t);
  await execa(INSTALL, ['--root', stage, '--bin-dir', bin]);
  const changed = join(stage, 'etc', 'default', 'reconfig-wg');
  writeFileSync(changed, 'RECONFIG_WG_ARGS="--log-level debug"\n');
  const result = await execa(INSTALL, ['--root', stage, '--uninstall'], { reject: false });
  t.is(result.exitCode, 0, result.stderr);
  for (const name of UNITS) t.false(existsSync(unit(name)), `${name} removed`);
  t.false(existsSync(join(stage, 'usr', 'local', 'share', 'man', 'man8', 'reconfig-wg.8')), 'the man page removed');
  t.false(existsSync(join(stage, 'usr', 'local', 'share', 'bash-completion', 'completions', 'port-knock')), 'the completion removed');
  t.false(existsSync(join(stage, 'etc', 'default', 'port-knock')), 'the unchanged default file is removed');
  t.true(existsSync(changed), 'the changed default file is kept');
  t.regex(result.stdout, /kept .*reconfig-wg: it holds your changes/);
  t.regex(result.stdout, /removed .*port-knock@\.service/);
});

withAnalyze('systemd-analyze verify accepts both installed units, and refuses one whose command is missing', async (t) => {
  const { bin, stage, unit } = staged(t);
  await execa(INSTALL, ['--root', stage, '--bin-dir', bin]);
  // verify runs man for each Documentation=man:… line: the pages install.sh put in place
  const verify = await execa('systemd-analyze', ['verify', ...UNITS.map(unit)], { reject: false, env: { MANPATH: join(stage, 'usr', 'local', 'share', 'man') } });
  t.is(verify.exitCode, 0, verify.stderr);
  t.is(verify.stderr.trim(), '', 'no warnings');
  for (const name of UNITS) t.regex(readFileSync(unit(name), 'utf8'), new RegExp(`^Documentation=man:${name.replace('@.service', '')}\\(8\\) `, 'm'));
  // without the pages, verify says so: the Documentation= lines are checked
  const unfound = await execa('systemd-analyze', ['verify', unit(UNITS[0])], { reject: false, env: { MANPATH: join(stage, 'nowhere') } });
  t.not(unfound.exitCode, 0);
  t.regex(unfound.stderr, /Command 'man reconfig-wg\(8\)' failed/, 'a missing man page is reported');

  // the check has teeth: the same unit with its command gone does not verify
  const broken = unit('reconfig-wg@.service');
  writeFileSync(broken, readFileSync(broken, 'utf8').replace(/^ExecStart=\S+/m, `ExecStart=${join(bin, 'nosuch')}`));
  const refused = await execa('systemd-analyze', ['verify', broken], { reject: false });
  t.not(refused.exitCode, 0);
});

withAnalyze(`systemd-analyze security rates both units ${MAX_EXPOSURE.toFixed(1)} or lower`, async (t) => {
  const { bin, stage, unit } = staged(t);
  await execa(INSTALL, ['--root', stage, '--bin-dir', bin]);
  for (const name of UNITS) {
    const result = await execa('systemd-analyze', ['security', '--offline=true', '--no-pager', unit(name)], { reject: false });
    const level = /Overall exposure level for \S+: (\d+\.\d)/.exec(result.stdout);
    t.truthy(level, `${name}: ${result.stdout.slice(-300)} ${result.stderr}`);
    const exposure = Number(level![1]);
    t.log(`${name}: exposure ${exposure.toFixed(1)}`);
    t.true(exposure <= MAX_EXPOSURE, `${name} exposure ${exposure}`);
    // the two capabilities the daemons use, and no more
    t.regex(readFileSync(unit(name), 'utf8'), /^CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN$/m);
  }
});

test('the shipped /etc/default files only set the variable the unit reads', (t) => {
  for (const [file, variable] of [['reconfig-wg', 'RECONFIG_WG_ARGS'], ['port-knock', 'PORT_KNOCK_ARGS']] as const) {
    const text = readFileSync(join(root, 'init.d', 'systemd', 'default', file), 'utf8');
    const settings = text.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
    t.deepEqual(settings, [`${variable}=""`]);
    const unitText = readFileSync(join(root, 'init.d', 'systemd', `${file}@.service`), 'utf8');
    t.regex(unitText, new RegExp(`^ExecStart=.* \\$${variable}$`, 'm'));
  }
});

test("each unit's files are where the daemons look: pid files in its RuntimeDirectory (0755), the state in its StateDirectory, no /tmp", async (t) => {
  const { defaultPidFile, defaultStateFile, defaultStatusFile } = await import('../src/reconfig/options.js');
  for (const name of UNITS) {
    const text = readFileSync(join(root, 'init.d', 'systemd', name), 'utf8');
    const setting = (key: string): string[] => (new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1] ?? '').split(/\s+/).filter((v) => v !== '');
    const runtime = setting('RuntimeDirectory');
    t.true(runtime.includes('reconfig-wg'), `${name}: /run/reconfig-wg (a reconfig-wg --once started by a knock writes there too)`);
    t.deepEqual(setting('RuntimeDirectoryMode'), ['0755'], 'writable by root alone');
    t.deepEqual(setting('StateDirectory'), ['reconfig-wg']);
    t.deepEqual(setting('StateDirectoryMode'), ['0700']);
    const execStart = setting('ExecStart').join(' ');
    t.notRegex(execStart, /\/tmp\b/);
    for (const [, path] of execStart.matchAll(/--(?:reconfig-)?pid-file (\S+)/g)) {
      t.true(runtime.some((dir) => path!.startsWith(`/run/${dir}/`)), `${name}: ${path} is in its RuntimeDirectory`);
    }
  }
  // the defaults agree with the units, so a flag left out (--status-file) lands there too
  t.is(defaultPidFile('reconfig-wg', '%i'), '/run/reconfig-wg/%i.pid');
  t.is(defaultPidFile('port-knock', '%i'), '/run/port-knock/%i.pid');
  t.is(defaultStatusFile('%i'), '/run/reconfig-wg/%i.json');
  t.is(defaultStateFile('%i'), '/var/lib/reconfig-wg/%i.json');
});
