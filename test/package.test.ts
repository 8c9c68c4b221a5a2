/**
 * The package as an administrator installs it: `npm pack` builds it (prepack), and the tarball,
 * installed into an empty prefix with `npm install -g --prefix DIR`, puts both commands on
 * that prefix's PATH, with their native capture addon built. Then what a deployment relies on:
 * `man reconfig-wg` renders, the bash completion loads as bash-completion loads it, `--version`
 * names the command, and under a journal (JOURNAL_STREAM) the log lines carry their priority.
 *
 * The pack runs in a copy of the source tree (its own dist/), so the build it triggers never
 * rewrites the dist/ other tests are running from.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';
import { BASH_COMPLETION, completeWith } from './helpers/completion.js';
import { runBesideJournal } from './helpers/journal.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string>; files: string[] };

/** Everything `npm pack` and the build read: what package.json ships, plus the sources. */
function copySourceTree(into: string): void {
  const skip = new Set(['node_modules', 'dist', '.git', '.ci']);
  for (const entry of readdirSync(root)) {
    if (skip.has(entry) || entry.endsWith('.tgz')) continue;
    cpSync(join(root, entry), join(into, entry), { recursive: true });
  }
  // the build needs the compiler and the types, not a fresh install
  symlinkSync(join(root, 'node_modules'), join(into, 'node_modules'));
}

test.serial('npm pack builds the commands into the tarball, and it installs into an empty prefix with both commands working', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'rwg-pack-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const tree = join(work, 'tree');
  const prefix = join(work, 'prefix');
  copySourceTree(tree);
  t.false(existsSync(join(tree, 'dist')), 'the copy starts without a build');

  const packed = await execa('npm', ['pack', '--pack-destination', work, '--loglevel=error'], { cwd: tree, reject: false, timeout: 110_000 });
  t.is(packed.exitCode, 0, packed.stderr);
  const tarball = join(work, `reconfig-wg-${pkg.version}.tgz`);
  t.true(existsSync(tarball), `npm pack made ${tarball}`);

  const listing = (await execa('tar', ['-tzf', tarball])).stdout.split('\n');
  for (const bin of Object.values(pkg.bin)) t.true(listing.includes(`package/${bin}`), `the tarball holds ${bin}`);
  t.true(listing.includes('package/LICENSE'), 'the tarball holds the LICENSE');
  t.true(listing.includes('package/scripts/install.sh'), 'the tarball holds scripts/install.sh');
  for (const file of ['man/reconfig-wg.8', 'man/port-knock.8', 'completions/reconfig-wg', 'examples/hooks/syslog.sh', 'examples/hooks/ntfy.sh', 'examples/hooks/nsupdate.sh']) {
    t.true(listing.includes(`package/${file}`), `the tarball holds ${file}`);
  }
  t.false(listing.some((f) => f.startsWith('package/dist/test/')), 'tests are not shipped');

  const installed = await execa('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], {
    cwd: work,
    reject: false,
    timeout: 110_000,
  });
  t.is(installed.exitCode, 0, installed.stderr);

  for (const command of Object.keys(pkg.bin)) {
    const path = join(prefix, 'bin', command);
    const version = await execa(path, ['--version'], { reject: false });
    t.is(version.exitCode, 0, `${command} --version: ${version.stderr}`);
    t.is(version.stdout.trim(), `${command} v${pkg.version}`);
    const help = await execa(path, ['--help'], { reject: false });
    t.is(help.exitCode, 0, `${command} --help: ${help.stderr}`);
    t.regex(help.stdout, new RegExp(`\\$ ${command} `), `${command} --help shows its usage`);
  }

  // the capture addon is native: the install must have built it for this node
  const lib = join(prefix, 'lib', 'node_modules', 'reconfig-wg');

  // the README's next step: the installed package's install.sh finds the commands of the
  // prefix it sits in, and writes units that start them
  const stage = join(work, 'stage');
  const units = await execa(join(lib, 'scripts', 'install.sh'), ['--root', stage], { reject: false });
  t.is(units.exitCode, 0, units.stderr);
  const unit = readFileSync(join(stage, 'etc', 'systemd', 'system', 'reconfig-wg@.service'), 'utf8');
  t.regex(unit, new RegExp(`^ExecStart=${join(prefix, 'bin', 'reconfig-wg').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `, 'm'));
  // man reconfig-wg: npm linked the pages into the prefix, install.sh copied them to /usr/local
  for (const manpath of [join(prefix, 'share', 'man'), join(stage, 'usr', 'local', 'share', 'man')]) {
    for (const command of Object.keys(pkg.bin)) {
      const page = await execa('man', [command], { env: { MANPATH: manpath, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' }, reject: false });
      t.is(page.exitCode, 0, `man ${command} in ${manpath}: ${page.stderr}`);
      t.regex(page.stdout, new RegExp(`^${command.toUpperCase()}\\(8\\)`, 'm'));
      t.regex(page.stdout, /-V, --version/);
    }
  }
  // the completion, loaded the way bash-completion loads it on the first Tab: by the command's
  // name, from the completions directory install.sh wrote (found through XDG_DATA_DIRS)
  if (existsSync(BASH_COMPLETION)) {
    const loaded = await execa('bash', ['-c', `source ${BASH_COMPLETION}; __load_completion reconfig-wg && __load_completion port-knock && complete -p reconfig-wg port-knock`], {
      env: { XDG_DATA_DIRS: join(stage, 'usr', 'local', 'share'), BASH_COMPLETION_USER_DIR: join(work, 'none') },
      reject: false,
    });
    t.is(loaded.exitCode, 0, loaded.stderr);
    t.regex(loaded.stdout, /^complete -F _reconfig_wg reconfig-wg$/m);
    t.regex(loaded.stdout, /^complete -F _port_knock port-knock$/m);
    t.true((await completeWith(join(lib, 'completions', 'reconfig-wg'), 'reconfig-wg --log-')).includes('--log-format'));
  } else {
    t.log('bash-completion is not installed: the completion is not loaded');
  }
  // logs under systemd: stderr is the journal, so the start-up error carries priority 3 (err)
  const journal = await runBesideJournal(join(prefix, 'bin', 'reconfig-wg'), ['-i', 'nosuch0', '--persist', 'none', '--pid-file', join(work, 'rwg.pid'), '--state-file', join(work, 'rwg.json')], 'stderr');
  t.regex(journal.err, /^<3>reconfig-wg: .*nosuch0/m, journal.err);
  if (process.getuid?.() === 0) {
    // a running daemon's lines on a journal stdout: port-knock on lo, for a range nothing sends to
    const knock = await runBesideJournal(join(prefix, 'bin', 'port-knock'), ['-p', '39980', '--range', '5', '-d', 'lo', '-c', 'true', '--pid-file', join(work, 'pk.pid')], 'stdout', /listening/);
    t.regex(knock.out, /^<6>listening /m, knock.out + knock.err);
  }
  const addon = await execa(process.execPath, ['-e', "require('pcap'); console.log('ok')"], { cwd: lib, reject: false });
  t.is(addon.stdout.trim(), 'ok', addon.stderr);
  // so is the socket addon (raw IP, netlink and device-bound UDP sockets, the readiness watch), built by the package's own
  // install script from the shipped binding.gyp and C source
  const sockets = await execa(process.execPath, ['-e', "console.log(Object.keys(require('./build/Release/reconfig_inject.node')).length)"], { cwd: lib, reject: false });
  t.is(sockets.stdout.trim(), '16', sockets.stderr);
});
