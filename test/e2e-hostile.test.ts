/**
 * The security promise against the real daemon in the netns lab, under the service files' node
 * flags: what a stranger without a peer's private key sends can neither crash reconfig-wg nor
 * grow its memory, make R2 send or open anything for it, nor move an endpoint. One test per
 * attack; floods are bounded in rate and duration. Needs root.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { daemonArgs, events, startReconfigWg, waitForEvent, type LogEvent } from '../scripts/lab/daemons.js';
import { junkInitiations, sendFrames, startFlood } from '../scripts/lab/flood.js';
import { buildUdpPacket } from '../src/net/inject.js';
import { ethernet } from './helpers/net-frames.js';
import { injectOnce, UDP_LISTEN } from '../scripts/lab/injection.js';
import {
  ATTACKER_V4,
  endpointOf,
  natRemap,
  pingOnce,
  recordPackets,
  R2_V4,
  R2_V6,
  WG_PORT,
  withLab,
} from '../scripts/lab/lab.js';
import { nsRun, waitFor } from '../scripts/lab/netns.js';
import { ONE_RETRY_MS, rehandshake, rssKiB, SERVICE_NODE_FLAGS } from '../scripts/lab/hostile.js';
import { mac } from '../src/wireguard/blake2.js';
import { MESSAGE_RESPONSE, RESPONSE_MAC1_OFFSET } from '../src/wireguard/constants.js';
import { mac1KeyOf } from '../src/wireguard/mac1.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.serial.skip;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

for (const networks of [1024, 65_536]) {
  e2e(`row 1: 20k/s valid-mac1 junk from spoofed IPv6 sources over ${networks} /64s for 30 s: the daemon lives, RSS stays within 16 MiB of idle, R1 is accepted within one retry`, async (t) => {
    await withLab({}, async (lab, dir) => {
      const roamer = lab.roamers[0]!;
      const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir), true, undefined, SERVICE_NODE_FLAGS);
      t.true(await waitFor(() => pingOnce(roamer, 0.5), 15_000, 0), 'the tunnel comes up before the flood');
      await sleep(2000);
      const idle = rssKiB(daemon);
      const flood = await startFlood(lab.scope, lab.attacker.ns, {
        to: R2_V6, port: WG_PORT, perSecond: 20_000, seconds: 30, sources: [],
        spoof: { prefix: '2001:db8:66::', networks },
        payloads: junkInitiations(Buffer.from(lab.r2.publicKey, 'base64'), 1024, true),
      });
      let peak = idle;
      const sampler = setInterval(() => {
        if (!daemon.exited) peak = Math.max(peak, rssKiB(daemon));
      }, 250);
      try {
        await sleep(10_000);
        const waited = await rehandshake(lab, daemon, false, 15_000);
        t.log(`idle RSS ${(idle / 1024).toFixed(1)} MiB; R1 accepted ${String(waited)} ms after it started again`);
        t.not(waited, undefined, 'R1 accepted while the flood ran');
        t.true(waited! <= ONE_RETRY_MS, `within one WireGuard retry: ${String(waited)} ms`);
        const report = await flood.finished();
        t.true(report.sent >= 20_000 * 30 * 0.8, `the flooder sent ${report.sent}`);
      } finally {
        clearInterval(sampler);
      }
      t.false(daemon.exited, `the daemon lives: ${daemon.lines.filter((l) => !l.startsWith('{')).slice(-5).join(' | ')}`);
      const after = rssKiB(daemon);
      t.log(`RSS idle ${(idle / 1024).toFixed(1)} MiB, peak ${(peak / 1024).toFixed(1)} MiB, after ${(after / 1024).toFixed(1)} MiB`);
      t.true(peak - idle <= 16 * 1024, `peak ${((peak - idle) / 1024).toFixed(1)} MiB above idle`);
      t.true(await pingOnce(roamer, 2), 'the tunnel works');
    });
  });
}

e2e('row 6: 10k/s valid-mac1 junk from random addresses inside R1\'s own IPv6 /64 does not starve R1\'s exact address: accepted within one retry', async (t) => {
  await withLab({ ipv6: true }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir), true, undefined, SERVICE_NODE_FLAGS);
    t.true(await waitFor(() => pingOnce(roamer, 0.5), 15_000, 0), 'the tunnel comes up over IPv6 before the flood');
    t.regex((await endpointOf(lab, roamer)) ?? '', new RegExp(`^\\[${roamer.natV6}\\]:`));
    // R1's NAT, R2 and the attacker share 2001:db8:100::/64 in the lab: spoof inside it.
    const flood = await startFlood(lab.scope, lab.attacker.ns, {
      to: R2_V6, port: WG_PORT, perSecond: 10_000, seconds: 20, sources: [],
      spoof: { prefix: '2001:db8:100::', networks: 1 },
      payloads: junkInitiations(Buffer.from(lab.r2.publicKey, 'base64'), 1024, true),
    });
    await sleep(3000);
    const waited = await rehandshake(lab, daemon, true, 15_000);
    t.log(`R1 accepted ${String(waited)} ms after it started again`);
    await flood.finished();
    t.not(waited, undefined);
    t.true(waited! <= ONE_RETRY_MS, `within one WireGuard retry: ${String(waited)} ms`);
    t.false(daemon.exited);
  });
});

/** R2's handshake response as a stranger forges it: from the listen port, mac1 keyed to R1. */
function forgedResponse(peerPublicKey: string, sender: number): Buffer {
  const msg = Buffer.alloc(92, 0x33);
  msg[0] = MESSAGE_RESPONSE;
  msg.fill(0, 1, 4);
  msg.writeUInt32LE(sender, 4);
  msg.writeUInt32LE(0x01020304, 8);
  mac(mac1KeyOf(Buffer.from(peerPublicKey, 'base64')), msg.subarray(0, RESPONSE_MAC1_OFFSET)).copy(msg, RESPONSE_MAC1_OFFSET);
  return msg;
}

e2e('row 2: forged responses from outside with source port 51820 evict nothing and plant nothing: R1\'s next remap is still handed over, and the sessions file holds only R2\'s own indices', async (t) => {
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir, ['--log-level', 'debug']));
    t.true(await waitFor(() => pingOnce(roamer, 0.5), 15_000, 0));
    const learned = (): number => events(daemon, 'session.learned').length;
    await waitFor(() => learned() > 0, 5000);
    const before = learned();
    const planted = [0x0badf00d, 0x0badf00e, 0x0badf00f];
    for (const index of planted) {
      const forged = forgedResponse(roamer.publicKey, index).toString('hex');
      t.like(await injectOnce(lab.attacker.ns, [ATTACKER_V4, String(WG_PORT), R2_V4, String(WG_PORT), forged]), { ok: true });
      t.like(await injectOnce(lab.attacker.ns, [R2_V4, String(WG_PORT), R2_V4, String(WG_PORT), forged]), { ok: true }, 'even "from" R2 itself');
    }
    await sleep(500);
    t.is(learned(), before, 'nothing learned from the forgeries');
    // R1's NAT remaps under its live session: its data is still vouched for by the live index.
    const updates = events(daemon, 'endpoint.updated').length;
    await natRemap(roamer);
    t.true(await waitFor(() => {
      void pingOnce(roamer, 0.2);
      return events(daemon, 'endpoint.updated').slice(updates).some((e) => e.how === 'injected');
    }, 4000, 200), 'the remap was handed over on the live index');
    await daemon.stop();
    // left beside the pid file (daemonArgs puts it in dir)
    const saved = readFileSync(join(dir, 'reconfig.sessions.json'), 'utf8');
    t.regex(saved, /"index":/, 'the live indices were left');
    for (const index of planted) t.false(saved.includes(`"index":${index}`), `index ${index} not left for a successor`);
  });
});

e2e('row 3: data naming a live index, addressed to a LAN host behind R2 or sent from R2\'s own address, is never re-sent; a stranger\'s pinhole is never assured and gone within two seconds', async (t) => {
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    // A LAN behind R2: forwarding on, a forward chain that drops new inbound from the WAN.
    const lan = await lab.scope.addNamespace(`rwg-${lab.id}-lan`);
    await nsRun(lab.r2.ns, 'ip', ['link', 'add', 'lan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan]);
    await nsRun(lab.r2.ns, 'ip', ['addr', 'add', '198.51.100.1/24', 'dev', 'lan']);
    await nsRun(lab.r2.ns, 'ip', ['link', 'set', 'lan', 'up']);
    await nsRun(lan, 'ip', ['addr', 'add', '198.51.100.2/24', 'dev', 'eth0']);
    await nsRun(lan, 'ip', ['link', 'set', 'eth0', 'up']);
    await nsRun(lan, 'ip', ['route', 'add', 'default', 'via', '198.51.100.1']);
    await nsRun(lab.r2.ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await nsRun(lab.r2.ns, 'nft', ['-f', '-'], 'table inet languard {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n    ct state established,related accept\n    iifname "wan" ct state new drop\n  }\n}\n');
    await nsRun(lab.attacker.ns, 'ip', ['route', 'add', '198.51.100.0/24', 'via', R2_V4]);
    const listener = lab.scope.start(lan, process.execPath, [UDP_LISTEN, String(WG_PORT), '60']);
    t.truthy(await listener.waitForLine((line) => line === 'listening', 10_000));

    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir, ['--log-level', 'debug']));
    t.true(await waitFor(() => pingOnce(roamer, 0.5), 15_000, 0));
    // On the path: one of R1's data packets (it names R2's live session index).
    const recording = await recordPackets(lab, `udp dst port ${WG_PORT} and udp[8] = 4`, 1);
    void pingOnce(roamer, 1);
    const [packet] = await recording.next(5000);
    if (packet === undefined) throw new Error('no data packet was recorded');
    const hex = packet.payload.toString('hex');

    for (const forwarding of ['1', '0']) {
      await nsRun(lab.r2.ns, 'sysctl', ['-qw', `net.ipv4.ip_forward=${forwarding}`]);
      for (let i = 0; i < 3; i++) t.like(await injectOnce(lab.attacker.ns, [ATTACKER_V4, String(40100 + i), '198.51.100.2', String(WG_PORT), hex]), { ok: true });
    }
    t.like(await injectOnce(lab.attacker.ns, [R2_V4, String(WG_PORT), R2_V4, String(WG_PORT), hex]), { ok: true });
    await sleep(1000);
    t.deepEqual(listener.lines.filter((l) => l.startsWith('{')), [], 'nothing reached the LAN host');
    const reasons = events(daemon, 'packet.ignored').map((e) => e.reason);
    t.true(reasons.includes('not-for-us'), `ignored: ${[...new Set(reasons)].join(', ')}`);
    t.true(reasons.includes('source-own'));
    const strangers = (): LogEvent[] => events(daemon, 'data.injected').filter((e) => String(e.src).startsWith(`${ATTACKER_V4}:`) || String(e.src).startsWith(`${R2_V4}:`));
    t.deepEqual(strangers(), [], 'nothing of theirs was re-sent');

    // Sent to R2 itself from the attacker's own address: handed over (it names a live index),
    // WireGuard refuses the replay, and the pinhole goes.
    const conntrack = async (): Promise<string[]> =>
      (await nsRun(lab.r2.ns, 'conntrack', ['-L', '-p', 'udp'])).split('\n').filter((l) => l.includes(ATTACKER_V4) && l.includes(`port=${WG_PORT}`));
    t.like(await injectOnce(lab.attacker.ns, [ATTACKER_V4, '40200', R2_V4, String(WG_PORT), hex]), { ok: true });
    t.true(await waitFor(() => strangers().length === 1, 2000), 'the replay naming a live index was handed over once');
    const early = await conntrack();
    t.false(early.some((l) => l.includes('ASSURED')), `never assured: ${early.join(' | ')}`);
    t.true(await waitFor(async () => (await conntrack()).length === 0, 2500, 100), `gone within two seconds and a half: ${(await conntrack()).join(' | ')}`);
    t.not((await endpointOf(lab, roamer))?.split(':')[0], ATTACKER_V4);
  });
});

e2e('row 4: R1\'s data held back and re-sent from 127.0.0.1 and from R2\'s own address moves nothing and tells nothing', async (t) => {
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir, ['--log-level', 'debug']));
    t.true(await waitFor(() => pingOnce(roamer, 0.5), 15_000, 0));
    const endpoint = await endpointOf(lab, roamer);
    const recording = await recordPackets(lab, `udp dst port ${WG_PORT} and udp[8] = 4`, 3);
    for (let i = 0; i < 3; i++) void pingOnce(roamer, 1);
    const packets = await recording.next(5000);
    t.true(packets.length >= 2, 'R1\'s data recorded on the path');
    const updates = events(daemon, 'endpoint.updated').length;
    // Fresh ones WireGuard has not seen: R1 keeps sending, the attacker replays the newest.
    const fresh = await recordPackets(lab, `udp dst port ${WG_PORT} and udp[8] = 4`, 2);
    for (let i = 0; i < 2; i++) void pingOnce(roamer, 1);
    const held = await fresh.next(5000);
    for (const [i, p] of held.entries()) {
      t.like(await injectOnce(lab.attacker.ns, ['127.0.0.1', '40404', R2_V4, String(WG_PORT), p.payload.toString('hex')]), { ok: true });
      t.like(await injectOnce(lab.attacker.ns, [R2_V4, String(40405 + i), R2_V4, String(WG_PORT), p.payload.toString('hex')]), { ok: true });
    }
    await sleep(1000);
    t.is(await endpointOf(lab, roamer), endpoint, 'the endpoint did not move');
    t.is(events(daemon, 'endpoint.updated').length, updates, 'nothing told');
    const reasons = new Set(events(daemon, 'packet.ignored').map((e) => e.reason));
    t.true(reasons.has('source-own') || reasons.has('source-loopback'), `ignored: ${[...reasons].join(', ')}`);
  });
});

e2e('row 5: random initiations tagged with VLAN 10, captured on `any`, are all refused by the mac1 screen: none reaches the Noise steps', async (t) => {
  await withLab({}, async (lab, dir) => {
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir, ['--log-level', 'debug']));
    // Tagged frames on R2's wire: the kernel strips the tag on receive and libpcap puts it back
    // into the cooked header at the protocol field, where the screen must step over it.
    const mac = (ns: string): Promise<Buffer> =>
      nsRun(ns, 'cat', ['/sys/class/net/wan/address']).then((text) => Buffer.from(text.trim().replaceAll(':', ''), 'hex'));
    const [r2Mac, attackerMac] = [await mac(lab.r2.ns), await mac(lab.attacker.ns)];
    const junk = junkInitiations(Buffer.from(lab.r2.publicKey, 'base64'), 200, false);
    const frames = junk.map((payload, i) =>
      ethernet(buildUdpPacket({ family: 4, src: ATTACKER_V4, srcPort: 30000 + i, dst: R2_V4, dstPort: WG_PORT }, payload), [{ tpid: 0x8100, id: 10 }], undefined, { dst: r2Mac, src: attackerMac }),
    );
    t.is(await sendFrames(lab.attacker.ns, 'wan', frames), 200);
    // The counters, not the (rate-limited) debug lines, say what became of each frame.
    await sleep(1000);
    daemon.child.kill('SIGTERM');
    const stopped = await waitForEvent(daemon, 'stopped', 5000);
    const counters = (stopped?.counters ?? {}) as Record<string, number>;
    t.true((counters['bad-mac1'] ?? 0) >= 200, `every tagged frame screened: ${JSON.stringify(counters)}`);
    t.is(counters['decrypt-failed'], undefined, 'no junk reached the Noise steps');
    t.is(counters['rate-limited'], undefined);
  });
});
