/**
 * The endpoint registry end to end in the netns lab (root): reconfig-wg --registry on R2, real
 * `dig` on R1 through the tunnel. R1 reads its own endpoint as R2 sees it (its NAT's address and
 * port) in wgsd's layout; a query spoofed from the WAN side with R1's tunnel address as its
 * source (R2's rp_filter off) reaches R2's stack but never the registry; a query from a tunnel
 * address that is no peer's gets nothing. The status file's counters say what was seen.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { endpointOf, pingUntilAnswered, R2_TUNNEL, R2_V4, withLab } from '../scripts/lab/lab.js';
import { RECONFIG_CLI, startReconfigWg, waitForEvent } from '../scripts/lab/daemons.js';
import { nsRun, waitFor } from '../scripts/lab/netns.js';
import { parseStatus, type StatusRegistry } from '../src/reconfig/tell/status.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.serial.skip;

const PORT = 5182;
const ZONE = 'wg.internal';
const SERVICE = `_wireguard._udp.${ZONE}`;
const UDP_LISTEN = new URL('../scripts/lab/udp-listen.js', import.meta.url).pathname;

/** dig in a namespace, one try of 2 s; never throws (dig exits 9 when nothing answers). */
async function dig(ns: string, args: readonly string[]): Promise<{ exitCode: number; stdout: string }> {
  const result = await execa('ip', ['netns', 'exec', ns, 'dig', '+tries=1', '+time=2', '+noall', '+answer', '+additional', '+comments', ...args], { reject: false, timeout: 20_000 });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout) };
}

/** The records dig printed: [name, ttl, class, type, rdata]. */
function records(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((line) => line.length > 0 && !line.startsWith(';'))
    .map((line) => {
      const [name = '', ttl = '', klass = '', type = '', ...rest] = line.split(/\s+/);
      return [name, ttl, klass, type, rest.join(' ')];
    });
}

/** The peer's label computed by coreutils' base32 (RFC 4648), not by our code. */
async function base32Label(publicKey: string): Promise<string> {
  const out = await execa('base32', ['-w', '0'], { input: Buffer.from(publicKey, 'base64') });
  return String(out.stdout).trim().toLowerCase();
}

function registryOf(statusFile: string): StatusRegistry {
  const status = parseStatus(readFileSync(statusFile, 'utf8'));
  if (!status.ok || status.value.registry == null) throw new Error(`no registry in the status file: ${status.ok ? 'none' : status.reason}`);
  return status.value.registry;
}

const sum = (record: Readonly<Record<string, number>>): number => Object.values(record).reduce((a, b) => a + b, 0);

e2e('R1 reads its own NAT endpoint from R2 through the tunnel; a WAN-side spoof and a non-peer source get nothing and are not even seen', async (t) => {
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const statusFile = join(dir, 'status.json');
    // An address that is not the interface's is a usage error before anything runs.
    const files = ['--pid-file', join(dir, 'pid'), '--state-file', join(dir, 'state.json'), '--status-file', statusFile];
    for (const [address, message] of [
      [R2_V4, new RegExp(`--registry ${R2_V4.replaceAll('.', '\\.')} is an address of wan, not of ${lab.r2.wg}: the registry answers only inside the tunnel`)],
      ['203.0.113.99', new RegExp(`--registry 203\\.0\\.113\\.99 is not an address of ${lab.r2.wg} \\(it has 203\\.0\\.113\\.1\\)`)],
    ] as const) {
      const refused = await execa('ip', ['netns', 'exec', lab.r2.ns, process.execPath, RECONFIG_CLI, '-i', lab.r2.wg, ...files, '--registry', address], { reject: false, timeout: 30_000 });
      t.is(refused.exitCode, 2, refused.stderr);
      t.regex(refused.stderr, message);
      t.notRegex(refused.stderr, /\n\s+at /, 'no stack trace');
    }
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, [
      '-i', lab.r2.wg,
      '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 'state.json'), '--status-file', statusFile,
      '--registry', R2_TUNNEL,
    ]);
    t.like(await waitForEvent(daemon, 'registry.listening', 10_000), { listen: `${R2_TUNNEL}:${PORT}`, zone: ZONE }, daemon.lines.join('\n'));
    t.not(await pingUntilAnswered(roamer, 15_000), undefined, 'the tunnel comes up');
    const endpoint = await endpointOf(lab, roamer);
    if (endpoint === undefined) throw new Error('R2 has no endpoint for R1');
    const natPort = endpoint.slice(endpoint.lastIndexOf(':') + 1);
    t.is(endpoint, `${roamer.natV4}:${natPort}`, 'R2 sees R1 behind its NAT');
    const label = await base32Label(roamer.publicKey);
    t.is(label.length, 56);
    const name = `${label}.${SERVICE}.`;

    // PTR: one name per peer with an endpoint (the registry follows the change it was told of)
    t.true(
      await waitFor(async () => records((await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'PTR', SERVICE])).stdout).length > 0, 10_000, 500),
      'the PTR record appears',
    );
    const ptr = await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'PTR', SERVICE]);
    t.regex(ptr.stdout, /status: NOERROR/);
    t.regex(ptr.stdout, /flags: qr aa rd;/, 'authoritative, no recursion offered');
    t.deepEqual(records(ptr.stdout), [[`${SERVICE}.`, '0', 'IN', 'PTR', name]]);

    // SRV: the port R2 sees, the target its own name; A then TXT in the additional section
    const srv = await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'SRV', name]);
    const verified = /"verified=(\d+)"/.exec(srv.stdout)?.[1];
    t.truthy(verified, srv.stdout);
    t.true(Math.abs(Number(verified) - Date.now() / 1000) < 120, `verified=${String(verified)} is about now`);
    t.deepEqual(records(srv.stdout), [
      [name, '0', 'IN', 'SRV', `0 0 ${natPort} ${name}`],
      [name, '0', 'IN', 'A', roamer.natV4],
      [name, '0', 'IN', 'TXT', `"txtvers=1" "pub=${roamer.publicKey}" "allowed=${roamer.tunnel}/32" "verified=${String(verified)}"`],
    ]);
    // as wgsd-client asks: the key in upper case, no EDNS (so a 512-byte limit)
    const upper = await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), '+noedns', 'SRV', name.toUpperCase()]);
    t.regex(upper.stdout, /flags: qr aa rd;/, 'not truncated');
    t.is(records(upper.stdout)[0]?.[4], `0 0 ${natPort} ${name}`);
    t.deepEqual(records(upper.stdout)[1]?.slice(3), ['A', roamer.natV4]);
    // A and TXT on their own; AAAA of an IPv4 endpoint is no data
    t.deepEqual(records((await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'A', name])).stdout), [[name, '0', 'IN', 'A', roamer.natV4]]);
    t.is(records((await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'TXT', name])).stdout)[0]?.[3], 'TXT');
    const aaaa = await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'AAAA', name]);
    t.regex(aaaa.stdout, /status: NOERROR/);
    t.deepEqual(records(aaaa.stdout), []);
    // what it does not serve: ANY refused, a name outside the zone refused, a missing peer NXDOMAIN
    // (dig 9.18 asks ANY over TCP unless told not to; the registry is UDP only)
    t.regex((await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), '+notcp', 'ANY', name])).stdout, /status: REFUSED/);
    t.regex((await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'A', 'example.org'])).stdout, /status: REFUSED/);
    t.regex((await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'SRV', `${'a'.repeat(52)}====.${SERVICE}`])).stdout, /status: NXDOMAIN/);

    // Spoofed from the WAN side: the attacker sends from R1's tunnel address into R2's WAN
    // interface, with R2's reverse-path filter off so the kernel takes it.
    await nsRun(lab.r2.ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.wan.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    await nsRun(lab.attacker.ns, 'ip', ['addr', 'add', `${roamer.tunnel}/32`, 'dev', 'wan']);
    await nsRun(lab.attacker.ns, 'ip', ['route', 'add', `${R2_TUNNEL}/32`, 'via', R2_V4]);
    // a control: a plain socket on R2 (bound to no device) hears such a datagram
    const control = lab.scope.start(lab.r2.ns, process.execPath, [UDP_LISTEN, String(PORT + 1), '60']);
    t.truthy(await control.waitForLine((line) => line === 'listening', 10_000));
    await dig(lab.attacker.ns, ['-b', roamer.tunnel, `@${R2_TUNNEL}`, '-p', String(PORT + 1), 'PTR', SERVICE]);
    t.truthy(await control.waitForLine((line) => line.includes(`"from":"${roamer.tunnel}"`), 5000), 'the spoofed datagram reaches R2 (rp_filter off)');
    await control.stop();

    // the status file is rewritten on the daemon's re-read (every 10 s): wait until it holds
    // the last queries counted so far, so that `before` is current
    t.true(await waitFor(() => registryOf(statusFile).refused['out-of-zone'] === 1, 25_000, 500), JSON.stringify(registryOf(statusFile)));
    const before = registryOf(statusFile);
    const spoofed = await dig(lab.attacker.ns, ['-b', roamer.tunnel, `@${R2_TUNNEL}`, '-p', String(PORT), 'PTR', SERVICE]);
    t.deepEqual(records(spoofed.stdout), [], 'no answer to the spoof');
    t.notRegex(spoofed.stdout, /status:/);

    // A tunnel address that is no peer's: R1 sends from a second address through its tunnel.
    await nsRun(roamer.ns, 'ip', ['addr', 'add', '203.0.113.77/24', 'dev', roamer.wg]);
    const stranger = await dig(roamer.ns, ['-b', '203.0.113.77', `@${R2_TUNNEL}`, '-p', String(PORT), 'PTR', SERVICE]);
    t.deepEqual(records(stranger.stdout), [], 'no answer to a non-peer source');
    t.notRegex(stranger.stdout, /status:/);

    // One more genuine query, so the status file is rewritten (on the daemon's next re-read):
    // it counts that one answer and nothing else.
    t.regex((await dig(roamer.ns, [`@${R2_TUNNEL}`, '-p', String(PORT), 'PTR', SERVICE])).stdout, /status: NOERROR/);
    const counted = (r: StatusRegistry): number => sum(r.answered);
    t.true(await waitFor(() => counted(registryOf(statusFile)) === counted(before) + 1, 25_000, 500), JSON.stringify(registryOf(statusFile)));
    const after = registryOf(statusFile);
    t.deepEqual(after.ignored, before.ignored, 'the spoof and the stranger were not even seen');
    t.deepEqual(after.ignored, {});
    t.deepEqual(after.refused, before.refused);
    t.like(after, { state: 'serving', listen: `${R2_TUNNEL}:${PORT}`, zone: ZONE, peers: 1 });
    t.log(`registry counters: ${JSON.stringify(after)}`);
  });
});
