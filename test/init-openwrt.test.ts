/**
 * The OpenWrt init scripts, run for real by a shell under stand-ins for what OpenWrt has and
 * Debian does not: rc.common with procd (test/helpers/procd-standin/rc.common records every
 * procd call) and `uci` (test/helpers/procd-standin/uci.ts reads UCI's file format). Each
 * test writes an /etc/config/reconfig-wg, runs the script and checks the procd instances it
 * asked for: their command lines, a finite respawn, the reload trigger.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';
import { KNOCK_CLI, RECONFIG_CLI } from '../scripts/lab/daemons.js';
import { exportPackage, parseUci } from './helpers/procd-standin/uci.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const STANDIN = join(root, 'test', 'helpers', 'procd-standin');
const UCI_STANDIN = fileURLToPath(new URL('./helpers/procd-standin/uci.js', import.meta.url));
const VALIDATE_STANDIN = fileURLToPath(new URL('./helpers/procd-standin/validate-data.js', import.meta.url));
const SCRIPTS = { 'reconfig-wg': join(root, 'init.d', 'openwrt', 'reconfig-wg'), 'port-knock': join(root, 'init.d', 'openwrt', 'port-knock') } as const;
const CLIS = { '/usr/bin/reconfig-wg': RECONFIG_CLI, '/usr/bin/port-knock': KNOCK_CLI } as const;

interface Instance {
  readonly name: string;
  readonly params: Record<string, string[]>;
}

interface Recorded {
  readonly calls: string[][];
  readonly instances: Instance[];
  readonly triggers: string[][];
  /** what the script sent to the system log (`logger` is a stand-in that records) */
  readonly logged: string[];
  readonly stderr: string;
}

/** procd's view of the recorded calls: set_param replaces a parameter, append_param extends it. */
function replay(calls: string[][]): Omit<Recorded, 'logged' | 'stderr'> {
  const instances: Instance[] = [];
  const triggers: string[][] = [];
  let current: { name: string; params: Record<string, string[]> } | undefined;
  for (const [call, ...args] of calls) {
    if (call === 'procd_open_instance') current = { name: args[0] ?? '', params: {} };
    else if (call === 'procd_set_param' && current) current.params[args[0]!] = args.slice(1);
    else if (call === 'procd_append_param' && current) current.params[args[0]!] = [...(current.params[args[0]!] ?? []), ...args.slice(1)];
    else if (call === 'procd_close_instance' && current) {
      instances.push(current);
      current = undefined;
    } else if (call === 'procd_add_reload_trigger') triggers.push(args);
  }
  return { calls, instances, triggers };
}

async function runInit(t: { teardown(fn: () => void): void }, script: keyof typeof SCRIPTS, config: string | undefined, action = 'start'): Promise<Recorded> {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-openwrt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const configDir = join(dir, 'config');
  const bin = join(dir, 'bin');
  mkdirSync(configDir);
  mkdirSync(bin);
  if (config !== undefined) writeFileSync(join(configDir, 'reconfig-wg'), config);
  writeFileSync(join(bin, 'uci'), `#!/bin/sh\nexec '${process.execPath}' '${UCI_STANDIN}' "$@"\n`);
  writeFileSync(join(bin, 'validate_data'), `#!/bin/sh\nexec '${process.execPath}' '${VALIDATE_STANDIN}' "$@"\n`);
  const logFile = join(dir, 'syslog');
  writeFileSync(join(bin, 'logger'), `#!/bin/sh\nprintf '%s\\n' "$*" >>'${logFile}'\n`);
  for (const tool of ['uci', 'validate_data', 'logger']) chmodSync(join(bin, tool), 0o755);
  const record = join(dir, 'record');
  const result = await execa('sh', [join(STANDIN, 'rc.common'), SCRIPTS[script], action], {
    reject: false,
    env: { PATH: `${bin}:/usr/bin:/bin`, UCI_CONFIG_DIR: configDir, PROCD_RECORD: record },
    extendEnv: false,
  });
  if (result.exitCode !== 0) throw new Error(`${script} ${action} failed (${result.exitCode}): ${result.stderr}`);
  const text = existsSync(record) ? readFileSync(record, 'utf8') : '';
  const calls = text.split('\x1e').filter((r) => r.length > 0).map((r) => r.split('\x1f').slice(0, -1));
  const logged = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((line) => line.length > 0) : [];
  return { ...replay(calls), logged, stderr: String(result.stderr) };
}

/** Runs a produced command line's flags through the real command's parser (--help after them). */
async function acceptedByCommand(command: readonly string[]): Promise<{ exitCode: number | undefined; stderr: string }> {
  const [program, ...args] = command;
  const cli = CLIS[program as keyof typeof CLIS];
  if (cli === undefined) throw new Error(`unexpected program ${String(program)}`);
  const result = await execa(process.execPath, [cli, ...args, '--help'], { reject: false });
  return { exitCode: result.exitCode, stderr: String(result.stderr) };
}

test('the uci stand-in reads quoting, lists, unnamed sections and comments as UCI does, and refuses broken lines', (t) => {
  const sections = parseUci(`package reconfig-wg\n# comment\nconfig reconfig-wg 'wg0'\n\toption hook "logger -t 'rwg' \\"x\\""\n\toption device any\n\tlist extra 'a b'\n\tlist extra c\n\nconfig port-knock\n\toption port '19000'\n`);
  t.false(typeof sections === 'string', String(sections));
  if (typeof sections === 'string') return;
  t.is(sections.length, 2);
  t.is(sections[0]!.options.get('hook'), `logger -t 'rwg' "x"`);
  t.is(sections[0]!.options.get('device'), 'any');
  t.deepEqual(sections[0]!.options.get('extra'), ['a b', 'c']);
  t.is(sections[1]!.name, undefined);
  t.regex(exportPackage('reconfig-wg', sections), /^config port-knock 'cfg000002'$/m);
  t.regex(exportPackage('reconfig-wg', sections), /^\toption hook 'logger -t '\\''rwg'\\'' "x"'$/m);
  t.is(typeof parseUci(`config reconfig-wg 'wg0'\n\toption interface 'wg0\n`), 'string');
  t.is(typeof parseUci(`option interface wg0\n`), 'string', 'an option outside a section');
});

test('the shipped example config starts one reconfig-wg for wg0 and, as shipped, no port-knock', async (t) => {
  const example = readFileSync(join(root, 'init.d', 'openwrt', 'reconfig-wg.config'), 'utf8');
  const reconfig = await runInit(t, 'reconfig-wg', example);
  t.deepEqual(reconfig.instances.map((i) => [i.name, i.params.command]), [['wg0', ['/usr/bin/reconfig-wg', '--log-format', 'procd', '-i', 'wg0', '-d', 'any', '--log-level', 'info', '--knock-port', '19000']]]);
  t.deepEqual(reconfig.instances[0]!.params.env, ['NODE_OPTIONS=--max-semi-space-size=1 --max-old-space-size=32 --v8-pool-size=1']);
  t.is((await acceptedByCommand(reconfig.instances[0]!.params.command!)).exitCode, 0);
  const knock = await runInit(t, 'port-knock', example);
  t.deepEqual(knock.instances, [], 'enabled 0 starts nothing');
  const enabled = await runInit(t, 'port-knock', example.replace(/(config port-knock 'knock'\n\toption enabled )'0'/, "$1'1'"));
  t.deepEqual(enabled.instances[0]?.params.command, ['/usr/bin/port-knock', '--log-format', 'procd', '-p', '19000', '--range', '100', '-i', 'wg0', '--cooldown', '10']);
  t.is((await acceptedByCommand(enabled.instances[0]!.params.command!)).exitCode, 0);
});

test('every reconfig-wg flag has a UCI option, and each reaches the command line', async (t) => {
  const config = `config reconfig-wg 'lan'
	option interface 'wg1'
	option device 'eth0'
	option once '1'
	option dry_run 'yes'
	option log_level 'debug'
	option pid_file '/var/run/rwg-wg1.pid'
	option state_file '/etc/reconfig-wg/wg1.json'
	option knock_port '33434'
	option knock_range '20'
	option knock_cooldown '5'
	option pinhole 'always'
	option inject '0'
	option persist 'wg-quick=/etc/wireguard/wg1.conf'
	option hook "/etc/reconfig-wg/hook.sh 'the peer'"
	option status_file '/var/run/rwg-wg1.json'
`;
  const { instances } = await runInit(t, 'reconfig-wg', config);
  t.is(instances.length, 1);
  t.deepEqual(instances[0]!.params.command, [
    '/usr/bin/reconfig-wg', '--log-format', 'procd',
    '-i', 'wg1', '-d', 'eth0', '--once', '--dry-run', '--log-level', 'debug',
    '--pid-file', '/var/run/rwg-wg1.pid', '--state-file', '/etc/reconfig-wg/wg1.json',
    '--knock-port', '33434', '--knock-range', '20', '--knock-cooldown', '5',
    '--pinhole', 'always', '--no-inject', '--persist', 'wg-quick=/etc/wireguard/wg1.conf',
    '--hook', "/etc/reconfig-wg/hook.sh 'the peer'", '--status-file', '/var/run/rwg-wg1.json',
  ]);
  // the flags this version has are all accepted by its parser
  // (without --once, which --knock-port refuses: the parser accepts both, the options do not)
  const current = instances[0]!.params.command!.slice(0, 21);
  const parsed = await acceptedByCommand(current);
  t.is(parsed.exitCode, 0, parsed.stderr);
});

test('every port-knock flag has a UCI option; a command with quotes stays one argument', async (t) => {
  const config = `config port-knock 'knock'
	option port '33434'
	option range '50'
	option command "logger -t knock 'traceroute from {src}'"
	option device 'eth1'
	option cooldown '30'
	option dry_run 'on'
	option log_level 'warn'
	option pid_file '/var/run/pk.pid'
`;
  const { instances } = await runInit(t, 'port-knock', config);
  const command = instances[0]?.params.command;
  t.deepEqual(command, ['/usr/bin/port-knock', '--log-format', 'procd', '-p', '33434', '--range', '50', '-c', "logger -t knock 'traceroute from {src}'", '-d', 'eth1', '--cooldown', '30', '--dry-run', '--log-level', 'warn', '--pid-file', '/var/run/pk.pid']);
  const parsed = await acceptedByCommand(command!);
  t.is(parsed.exitCode, 0, parsed.stderr);
  const rearm = await runInit(t, 'port-knock', `config port-knock\n\toption interface 'wg0'\n\toption reconfig_pid_file '/var/run/rwg.pid'\n`);
  t.deepEqual(rearm.instances[0]?.params.command, ['/usr/bin/port-knock', '--log-format', 'procd', '-i', 'wg0', '--reconfig-pid-file', '/var/run/rwg.pid']);
});

test('one instance per enabled section, unnamed ones included; sections of the other type are not started', async (t) => {
  const config = `config reconfig-wg 'wg0'
	option interface 'wg0'
config reconfig-wg 'wg1'
	option interface 'wg1'
	option enabled '0'
config reconfig-wg
	option interface 'wg2'
config port-knock 'knock'
	option interface 'wg0'
`;
  const { instances } = await runInit(t, 'reconfig-wg', config);
  t.deepEqual(instances.map((i) => i.params.command?.slice(3)), [['-i', 'wg0'], ['-i', 'wg2']]);
  t.is(instances[0]!.name, 'wg0');
  t.regex(instances[1]!.name, /^cfg/);
  const none = await runInit(t, 'reconfig-wg', undefined);
  t.deepEqual(none.instances, [], 'no config file: nothing to start');
});

test('each instance respawns a finite number of times and logs to syslog; uci commit reloads the service', async (t) => {
  for (const script of ['reconfig-wg', 'port-knock'] as const) {
    const { instances, triggers } = await runInit(t, script, `config ${script} 'x'\n\toption interface 'wg0'\n`);
    const respawn = instances[0]?.params.respawn?.map(Number);
    t.is(respawn?.length, 3, `${script}: respawn threshold timeout retry`);
    t.true(respawn![2]! > 0 && respawn![2]! <= 10, `${script}: a bounded retry count, not 0 (for ever)`);
    t.deepEqual(instances[0]?.params.stdout, ['1']);
    t.deepEqual(instances[0]?.params.stderr, ['1']);
    t.deepEqual(triggers, [['reconfig-wg']], `${script}: procd_add_reload_trigger reconfig-wg`);
  }
});

test('reload sends procd the new instance set (procd restarts what changed), not a signal', async (t) => {
  const before = await runInit(t, 'reconfig-wg', `config reconfig-wg 'wg0'\n\toption interface 'wg0'\n`, 'start');
  const after = await runInit(t, 'reconfig-wg', `config reconfig-wg 'wg0'\n\toption interface 'wg0'\n\toption log_level 'debug'\n`, 'reload');
  t.true(after.calls.some(([call, method]) => call === 'procd_close_service' && method === 'set'), 'the instances go to procd as a new set');
  t.false(after.calls.some(([call]) => call === 'procd_send_signal'), 'a HUP would re-read WireGuard but not UCI');
  t.notDeepEqual(after.instances[0]!.params.command, before.instances[0]!.params.command);
  t.deepEqual(after.instances[0]!.params.command?.slice(-2), ['--log-level', 'debug']);
});

/** The long flags a command's --help lists, with their one-letter forms. */
async function helpFlags(cli: string): Promise<Map<string, string | undefined>> {
  const help = (await execa(process.execPath, [cli, '--help'])).stdout;
  const flags = new Map<string, string | undefined>();
  for (const match of help.matchAll(/^\s+(?:-(\w), )?(--[a-z][a-z-]+)/gm)) flags.set(match[2]!, match[1] === undefined ? undefined : `-${match[1]}`);
  return flags;
}

test('no flag of either --help lacks a UCI option (only help, version and -k)', async (t) => {
  const everything = {
    'reconfig-wg': `config reconfig-wg 'x'\n${['log_format json', 'interface wg0', 'device any', 'once 1', 'dry_run 1', 'log_level info', 'pid_file /p', 'state_file /s', 'knock_port 19000', 'knock_range 10', 'knock_cooldown 1', 'pinhole auto', 'inject 0', 'persist none', 'hook true', 'hook_timeout 5', 'status_file /st', 'registry 10.0.0.1', 'registry_zone wg.internal'].map((o) => `\toption ${o}`).join('\n')}\n`,
    'port-knock': `config port-knock 'x'\n${['log_format json', 'port 19000', 'range 10', 'command true', 'interface wg0', 'device any', 'cooldown 1', 'dry_run 1', 'log_level info', 'pid_file /p', 'reconfig_pid_file /r'].map((o) => `\toption ${o}`).join('\n')}\n`,
  } as const;
  for (const [script, cli] of [['reconfig-wg', RECONFIG_CLI], ['port-knock', KNOCK_CLI]] as const) {
    const { instances } = await runInit(t, script, everything[script]);
    const command = instances[0]!.params.command!;
    const flags = await helpFlags(cli);
    t.true(flags.size >= 9, `${script} --help lists its flags`);
    for (const [long, short] of flags) {
      if (['--help', '--version', '--kill'].includes(long)) continue;
      t.true(command.includes(long) || (short !== undefined && command.includes(short)), `${script} ${long} has a UCI option`);
    }
  }
});

test('a bad option value is one line in the system log naming it, and only that section is not started', async (t) => {
  const config = `config reconfig-wg 'wg0'
	option interface 'wg0'
	option knock_port '70000'
	option pinhole 'sometimes'
config reconfig-wg 'wg1'
	option interface 'wg1'
	option hook_timeout '5.5'
config port-knock 'knock'
	option port 'high'
	option log_level 'loud'
`;
  const reconfig = await runInit(t, 'reconfig-wg', config);
  t.deepEqual(reconfig.instances.map((i) => i.name), ['wg1'], 'the good section starts; the bad one does not');
  t.deepEqual(reconfig.logged.sort(), [
    "-t reconfig-wg -p daemon.err section 'wg0' not started: reconfig-wg.wg0.knock_port=70000 validates as port with false",
    `-t reconfig-wg -p daemon.err section 'wg0' not started: reconfig-wg.wg0.pinhole=sometimes validates as or("auto","always","never") with false`,
  ]);
  t.regex(reconfig.stderr, /^reconfig-wg: section 'wg0' not started: reconfig-wg\.wg0\.knock_port=70000/m, 'and on stderr, for whoever ran the script');
  const knock = await runInit(t, 'port-knock', config);
  t.deepEqual(knock.instances, []);
  t.is(knock.logged.length, 2);
  t.true(knock.logged.every((line) => line.startsWith("-t port-knock -p daemon.err section 'knock' not started: reconfig-wg.knock.")), knock.logged.join('\n'));
});

test('both scripts hand procd the type of every option (procd_add_validation), and what validates is what the command accepts', async (t) => {
  for (const script of ['reconfig-wg', 'port-knock'] as const) {
    const { calls } = await runInit(t, script, `config ${script} 'x'\n\toption interface 'wg0'\n`);
    const validation = calls.find(([call]) => call === 'procd_validate');
    t.truthy(validation, `${script}: procd_add_validation`);
    t.deepEqual(validation!.slice(1, 3), ['reconfig-wg', script]);
    const names = validation!.slice(3).map((spec) => spec.split(':')[0]);
    t.true(names.includes('enabled') && names.includes('interface') && names.includes('log_format'), names.join(' '));
  }
  // the edge values validate and the command takes them
  const edge = await runInit(t, 'reconfig-wg', `config reconfig-wg 'x'\n\toption knock_port '65500'\n\toption knock_range '36'\n\toption knock_cooldown '0.5'\n\toption hook_timeout '0.1'\n\toption pinhole 'never'\n\toption enabled 'yes'\n`);
  t.is(edge.instances.length, 1);
  const parsed = await acceptedByCommand(edge.instances[0]!.params.command!);
  t.is(parsed.exitCode, 0, parsed.stderr);
});
