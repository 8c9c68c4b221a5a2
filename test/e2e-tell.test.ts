/**
 * Telling the world, end to end in the netns lab (root): the real reconfig-wg in R2's
 * namespace moves a peer, then its status file, its hook (argv and environment) and the
 * persisted endpoint (wg-quick file; UCI through the stand-in) are checked; R2 restarted from
 * the persisted wg-quick file reaches R1 without R1 initiating; `check` on a good and on a
 * broken setup.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';
import { endpointOf, withLab, natRemap, pingUntilAnswered, R2_TUNNEL, restartServerFromWgQuick, serverWgQuickConfig, WG_PORT } from '../scripts/lab/lab.js';
import { events, RECONFIG_CLI, startReconfigWg, waitForEvent } from '../scripts/lab/daemons.js';
import { nsRun, stopProcess, waitFor } from '../scripts/lab/netns.js';
import { readPcapFile } from '../scripts/lab/pcapfile.js';
import { parseStatus } from '../src/reconfig/tell/status.js';
import { installUciStandin, networkConfig } from './helpers/uci.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.serial.skip;
const RECORDER = fileURLToPath(new URL('./helpers/hook-recorder.js', import.meta.url));

/** PATH as a user has it: under npm, node_modules/.bin comes first and holds an unrelated `nft`. */
const SYSTEM_PATH = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter((d) => d.length > 0 && !d.includes('node_modules')).join(':');

const cliIn = (ns: string, args: readonly string[]) =>
  execa('ip', ['netns', 'exec', ns, process.execPath, RECONFIG_CLI, ...args], { reject: false, timeout: 30_000, env: { PATH: SYSTEM_PATH } });

function readJsonLines(path: string): { args: string[]; env: Record<string, string> }[] {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { args: string[]; env: Record<string, string> }) : [];
}

e2e('after a change: status file, hook argv and environment, persisted wg-quick endpoint; R2 restarted from that file reaches R1 without R1 initiating', async (t) => {
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const conf = join(dir, `${lab.r2.wg}.conf`);
    writeFileSync(conf, serverWgQuickConfig(lab), { mode: 0o600 });
    const before = readFileSync(conf, 'utf8');
    const records = join(dir, 'hook.jsonl');
    const statusFile = join(dir, 'status.json');
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, [
      '-i', lab.r2.wg,
      '--pid-file', join(dir, 'pid'),
      '--state-file', join(dir, 'state.json'),
      '--status-file', statusFile,
      '--persist', `wg-quick=${conf}`,
      '--hook', `${process.execPath} ${RECORDER} ${records} 0 0 {interface} {peer} {from} {to} {host} {port} {how}`,
    ]);
    t.true(await waitFor(() => existsSync(statusFile), 5000));
    const initial = parseStatus(readFileSync(statusFile, 'utf8'));
    t.like(initial.ok ? initial.value : undefined, { interface: lab.r2.wg, listenPort: WG_PORT, peers: [{ publicKey: roamer.publicKey, endpoint: null, lastChange: null }] }, 'written at start');

    t.not(await pingUntilAnswered(roamer, 15_000), undefined, 'the tunnel comes up');
    const endpoint = await endpointOf(lab, roamer);
    if (endpoint === undefined) throw new Error('no endpoint');
    t.true(await waitFor(() => readJsonLines(records).length > 0, 10_000), 'the hook ran');

    // injected (the fast path) or set (wg set), whichever moved it: told as the log says
    const how = String(events(daemon, 'endpoint.updated')[0]?.how);
    t.true(how === 'injected' || how === 'set', how);
    const at = (name: string): number => Date.parse(String(events(daemon, name)[0]?.time));
    t.log(`endpoint.updated → persist.updated: ${at('persist.updated') - at('endpoint.updated')} ms; → hook started: ${at('command.started') - at('endpoint.updated')} ms`);

    // the hook: argv without a shell, the same values in the environment
    const [run] = readJsonLines(records);
    const [hostPart, portPart] = [endpoint.slice(0, endpoint.lastIndexOf(':')), endpoint.slice(endpoint.lastIndexOf(':') + 1)];
    t.deepEqual(run?.args, [lab.r2.wg, roamer.publicKey, '', endpoint, hostPart, portPart, how]);
    t.like(run?.env, { RECONFIG_WG_INTERFACE: lab.r2.wg, RECONFIG_WG_PEER: roamer.publicKey, RECONFIG_WG_FROM: '', RECONFIG_WG_TO: endpoint, RECONFIG_WG_HOST: hostPart, RECONFIG_WG_PORT: portPart, RECONFIG_WG_HOW: how });

    // the status file, directly and through `reconfig-wg status`
    const status = parseStatus(readFileSync(statusFile, 'utf8'));
    if (!status.ok) throw new Error(status.reason);
    t.like(status.value.peers[0], { publicKey: roamer.publicKey, endpoint, lastChange: { how, from: null, to: endpoint }, counts: { authentic: 1, updated: 1 } });
    t.is(status.value.pid, daemon.pid ?? -1);
    t.not(status.value.capture, null);
    const shown = await cliIn(lab.r2.ns, ['status', '--status-file', statusFile]);
    t.is(shown.exitCode, 0, shown.stderr);
    t.regex(shown.stdout, new RegExp(`^${roamer.publicKey.replace(/[+/]/g, '\\$&')}\\s+${endpoint.replaceAll('.', '\\.')}\\s+\\S+ \\(\\d+ s ago\\)\\s+${how}\\s+authentic 1(, .*)?, updated 1`, 'm'));
    const json = await cliIn(lab.r2.ns, ['status', '--status-file', statusFile, '--json']);
    t.like(JSON.parse(json.stdout), { running: true, interface: lab.r2.wg });

    // the wg-quick file: one line added, the rest untouched
    const after = readFileSync(conf, 'utf8');
    t.is(after.split('\n').length, before.split('\n').length + 1);
    t.true(after.includes(`  PublicKey =  ${roamer.publicKey}\n  Endpoint =  ${endpoint}\n`));
    t.is(after.replace(`  Endpoint =  ${endpoint}\n`, ''), before);

    // R2 restarts from the file with reconfig-wg stopped: R2 reaches R1 by itself, and no
    // initiation from R1 arrives meanwhile.
    await daemon.stop();
    t.false(existsSync(statusFile), 'a clean stop removes the status file');
    const gone = await cliIn(lab.r2.ns, ['status', '--status-file', statusFile]);
    t.is(gone.exitCode, 1, 'status exits 1 when the daemon does not run');
    t.regex(gone.stderr, /status file .* does not exist\. Is reconfig-wg running/);
    const pcap = join(dir, 'from-r1.pcap');
    const tcpdump = lab.scope.start(lab.r2.ns, 'tcpdump', ['-i', 'wan', '-U', '-w', pcap, `udp dst port ${WG_PORT} and udp[8] = 1`]);
    t.truthy(await tcpdump.waitForLine((l) => l.includes('listening on'), 5000));
    await restartServerFromWgQuick(lab, conf);
    t.is(await endpointOf(lab, roamer), endpoint, 'the restarted interface knows the endpoint at once');
    const reached = await waitFor(async () => {
      try {
        await nsRun(lab.r2.ns, 'ping', ['-c', '1', '-W', '1', '-n', '-q', roamer.tunnel]);
        return true;
      } catch {
        return false;
      }
    }, 10_000, 0);
    t.true(reached, `R2 reaches R1 through the tunnel (R2 ${R2_TUNNEL} → R1 ${roamer.tunnel})`);
    await tcpdump.stop();
    t.is(readPcapFile(readFileSync(pcap)).frames.length, 0, 'no handshake initiation came from R1');
  });
});

e2e('a change WireGuard made by itself (firewall open) is told the same way, as roamed', async (t) => {
  await withLab({ firewall: 'open' }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    // With the port open WireGuard needs no help: the tunnel comes up before reconfig-wg starts.
    t.not(await pingUntilAnswered(roamer, 15_000), undefined);
    const before = await endpointOf(lab, roamer);
    const conf = join(dir, `${lab.r2.wg}.conf`);
    writeFileSync(conf, serverWgQuickConfig(lab), { mode: 0o600 });
    const records = join(dir, 'hook.jsonl');
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, [
      '-i', lab.r2.wg, '--no-inject',
      '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 'state.json'), '--status-file', join(dir, 'status.json'),
      '--persist', `wg-quick=${conf}`,
      '--hook', `${process.execPath} ${RECORDER} ${records} 0 0 {how} {from} {to}`,
    ]);
    // The NAT remaps under the live session: R1's next data packets come from a new port, the
    // open firewall lets them in, and WireGuard moves the endpoint on them by itself. The
    // daemon sees it on its next read of the interface (every 10 s).
    await natRemap(roamer);
    t.not(await pingUntilAnswered(roamer, 10_000), undefined);
    const after = await endpointOf(lab, roamer);
    t.not(after, before);
    t.true(await waitFor(() => readJsonLines(records).length > 0, 20_000), daemon.lines.slice(-20).join('\n'));
    t.deepEqual(readJsonLines(records)[0]?.args, ['roamed', String(before), String(after)]);
    t.true(readFileSync(conf, 'utf8').includes(`  Endpoint =  ${String(after)}\n`));
    t.like(await waitForEvent(daemon, 'endpoint.updated', 1000), { how: 'roamed', from: before, to: after });
  });
});

e2e('with --persist uci the peer section gets endpoint_host and endpoint_port, committed (uci stand-in on PATH)', async (t) => {
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const bin = join(dir, 'bin');
    const confDir = join(dir, 'config');
    mkdirSync(bin);
    mkdirSync(confDir);
    installUciStandin(bin);
    writeFileSync(join(confDir, 'network'), networkConfig(lab.r2.wg, [{ publicKey: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' }, { publicKey: roamer.publicKey, name: 'roamer' }]));
    const path = `${bin}:${SYSTEM_PATH}`;
    const daemon = lab.scope.start(lab.r2.ns, process.execPath, [RECONFIG_CLI, '--log-format', 'json', '-i', lab.r2.wg, '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 's.json'), '--persist', `uci=${confDir}`], { PATH: path });
    t.truthy(await waitForEvent(daemon, 'listening', 15_000), daemon.lines.join('\n'));
    t.not(await pingUntilAnswered(roamer, 15_000), undefined);
    const endpoint = await endpointOf(lab, roamer);
    t.like(await waitForEvent(daemon, 'persist.updated', 10_000), { peer: roamer.publicKey, endpoint });
    const get = async (option: string) => (await execa(join(bin, 'uci'), ['-c', confDir, 'get', `network.roamer.${option}`])).stdout;
    t.is(`${await get('endpoint_host')}:${await get('endpoint_port')}`, String(endpoint));
    t.regex(readFileSync(join(confDir, 'network'), 'utf8'), /config wireguard_\S+ 'roamer'\n\toption public_key '\S+'\n\tlist allowed_ips '203\.0\.113\.10\/32'\n\toption endpoint_host '192\.0\.2\.10'\n\toption endpoint_port '\d+'\n/);
    t.false((await execa(join(bin, 'uci'), ['-c', confDir, 'get', `network.@wireguard_${lab.r2.wg}[0].endpoint_host`], { reject: false })).exitCode === 0, 'the other peer is untouched');

    // this daemon writes its status where status looks by default
    const status = await cliIn(lab.r2.ns, ['status', '-i', lab.r2.wg, '--json']);
    t.is(status.exitCode, 0, status.stderr);
    t.like(JSON.parse(status.stdout), { running: true, interface: lab.r2.wg, persist: `uci=${confDir}`, peers: [{ publicKey: roamer.publicKey, endpoint }] });
    t.true(existsSync(`/run/reconfig-wg/${lab.r2.wg}.json`));
    await stopProcess(daemon.child);
    t.false(existsSync(`/run/reconfig-wg/${lab.r2.wg}.json`), 'removed by the clean stop');
  });
});

e2e('check passes on a good setup (and sees the closed firewall) and names the fix on a broken one', async (t) => {
  await withLab({}, async (lab, dir) => {
    const conf = join(dir, `${lab.r2.wg}.conf`);
    writeFileSync(conf, serverWgQuickConfig(lab), { mode: 0o600 });
    const good = await cliIn(lab.r2.ns, ['check', '-i', lab.r2.wg, '--persist', `wg-quick=${conf}`]);
    t.is(good.exitCode, 0, good.stdout + good.stderr);
    t.regex(good.stdout, /^ok {4}wg +wireguard-tools/m);
    t.regex(good.stdout, new RegExp(`^ok {4}interface +${lab.r2.wg}: private key set, listen port ${WG_PORT}, 1 peer$`, 'm'));
    t.regex(good.stdout, /^ok {4}capture +libpcap opens any \(sll2?\) with the daemon's filter for port 51820$/m);
    t.regex(good.stdout, /^ok {4}inject +raw sockets open for IPv4 and IPv6; the firewall drops re-sent packets on lo, so each needs a conntrack pinhole/m);
    t.regex(good.stdout, /^ok {4}pinhole +conntrack entries can be added/m);
    t.regex(good.stdout, /^ok {4}firewall +new UDP to port 51820 is dropped \(inet filter\/input rule 2\): fine/m);
    t.regex(good.stdout, /^ok {4}persist +wg-quick file .* writable, a \[Peer\] for every peer$/m);
    const json = await cliIn(lab.r2.ns, ['check', '-i', lab.r2.wg, '--json']);
    t.like(JSON.parse(json.stdout), { canRun: true, interface: lab.r2.wg, persist: 'none' });

    // broken: no such interface; then a device that is not there and a persist file that is not
    const missing = await cliIn(lab.r2.ns, ['check', '-i', 'nosuch0']);
    t.is(missing.exitCode, 1);
    t.regex(missing.stdout, /^FAIL {2}interface +Unable to access WireGuard interface nosuch0/m);
    t.regex(missing.stdout, /^skip {2}capture/m);
    t.regex(missing.stdout, /cannot run here until the FAIL items are fixed/);
    const broken = await cliIn(lab.r2.ns, ['check', '-i', lab.r2.wg, '-d', 'nosuchdev0', '--persist', `wg-quick=${join(dir, 'nope.conf')}`]);
    t.is(broken.exitCode, 1);
    t.regex(broken.stdout, /^FAIL {2}capture +There is no device nosuchdev0 to capture on/m);
    t.regex(broken.stdout, /^FAIL {2}persist +cannot read the wg-quick file .*nope\.conf \(ENOENT\)\n\s+fix: give its path/m);
    // a wg-quick file that lacks the peer is a warning, not a failure
    writeFileSync(conf, `[Interface]\nListenPort = ${WG_PORT}\n`);
    const lacking = await cliIn(lab.r2.ns, ['check', '-i', lab.r2.wg, '--persist', `wg-quick=${conf}`]);
    t.is(lacking.exitCode, 0);
    t.regex(lacking.stdout, /^warn {2}persist +.* has no \[Peer\] for 1 of 1 peers/m);
    t.is((await cliIn(lab.r2.ns, ['check', '--persist', 'floppy'])).exitCode, 2, 'a bad --persist is a usage error');

    // the daemon refuses to start with a persistence target that cannot work, and says why
    const files = ['--pid-file', join(dir, 'pid'), '--state-file', join(dir, 's.json'), '--status-file', join(dir, 'st.json')];
    const noFile = await cliIn(lab.r2.ns, ['-i', lab.r2.wg, ...files, '--persist', `wg-quick=${join(dir, 'nope.conf')}`]);
    t.is(noFile.exitCode, 2);
    t.regex(noFile.stderr, /Cannot read the wg-quick file .*nope\.conf \(ENOENT\)\. Give its path with --persist wg-quick=PATH, or --persist none\./);
    const noUci = await cliIn(lab.r2.ns, ['-i', lab.r2.wg, ...files, '--persist', 'uci']);
    t.is(noUci.exitCode, 2);
    t.regex(noUci.stderr, /The uci tool was not found\. It comes with OpenWrt; elsewhere use --persist wg-quick or --persist none\./);
    t.false(existsSync(join(dir, 'pid')), 'nothing was started');
  });
});
