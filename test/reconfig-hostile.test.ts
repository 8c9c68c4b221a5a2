/**
 * What a stranger without a peer's private key can make the receive path do: the decisions of
 * the security promise, one per test, on the listener rig (stand-in wg, injector and pinholer).
 * Each names the attack it refuses.
 */
import { chmodSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { HANDOVER_SETTLE_MS } from '../src/reconfig/deliver.js';
import { dataTo, initiationFrom, PORT, R2, R2_V6, rawUdpFrame, responseTo, initiationTo, rig, b64, type Rig } from './helpers/listener-rig.js';
import { PACKET_OUTGOING, PACKET_HOST, sll, sll2 } from './helpers/net-frames.js';

const ROAMER = '198.51.100.7';
const ATTACKER = '203.0.113.66';

/** R2's own response to `peer` leaving the listen port, as a cooked capture on `any` sees it. */
function sentSll(r: Rig, sender: number, receiver = 1, src = R2, pktType = PACKET_OUTGOING): Buffer {
  return sll(rawUdpFrame({ src, dst: ROAMER, srcPort: PORT, dstPort: 40000, payload: responseTo(r.peers[0]!, sender, receiver) }), undefined, pktType);
}

function dataSll(receiver: number, src: string, srcPort: number, dst = R2): Buffer {
  return sll(rawUdpFrame({ src, dst, srcPort, dstPort: PORT, payload: dataTo(receiver) }));
}

/** A live index of peer 0's, learned from R2's own response leaving. */
async function withLiveIndex(r: Rig, index = 0xabcd): Promise<void> {
  await r.feed(sentSll(r, index));
  if (r.listener.counters().sessionsLearned !== 1) throw new Error('the rig did not learn the live index');
}

test('row 2: forged "sent" responses from outside (source port = listen port, mac1 keyed to the peer) teach nothing and evict nothing', async (t) => {
  const r = await rig({ inject: true, link: 'sll' });
  t.teardown(r.close);
  await withLiveIndex(r);
  for (let i = 0; i < 3; i++) {
    // arriving (PACKET_HOST) from the attacker, and arriving "from" R2's own address
    await r.feed(sll(rawUdpFrame({ src: ATTACKER, dst: R2, srcPort: PORT, dstPort: PORT, payload: responseTo(r.peers[0]!, 0x1000 + i, 1) })));
    await r.feed(sentSll(r, 0x2000 + i, 1, R2, PACKET_HOST));
    await r.feed(sll(rawUdpFrame({ src: ATTACKER, dst: R2, srcPort: PORT, dstPort: PORT, payload: initiationTo(r.peers[0]!, 0x3000 + i) })));
  }
  // leaving, but not from one of R2's addresses: not R2's either
  await r.feed(sentSll(r, 0x4000, 1, ATTACKER, PACKET_OUTGOING));
  t.is(r.listener.counters().sessionsLearned, 1, 'only the real one was learned');
  // The live index still vouches for the roamer's data from its new address.
  await r.feed(dataSll(0xabcd, ROAMER, 41000));
  t.is(r.injected.length, 1);
  // A planted index vouches for nothing.
  await r.feed(dataSll(0x1000, ATTACKER, 666));
  t.is(r.injected.length, 1);
  t.true((r.listener.ignored.get('unknown-index') ?? 0) >= 1);
});

test('row 2: on a link that records no direction, a handshake message "from" the listen port is R2\'s only from R2\'s own address to elsewhere', async (t) => {
  const r = await rig({ inject: true });
  t.teardown(r.close);
  await r.feed(rawUdpFrame({ src: ATTACKER, dst: R2, srcPort: PORT, dstPort: PORT, payload: responseTo(r.peers[0]!, 0x1111, 1) }));
  await r.feed(rawUdpFrame({ src: ATTACKER, dst: R2, srcPort: PORT, dstPort: 40000, payload: responseTo(r.peers[0]!, 0x1112, 1) }));
  t.is(r.listener.counters().sessionsLearned, 0);
  await r.feed(rawUdpFrame({ src: R2, dst: ROAMER, srcPort: PORT, dstPort: 40000, payload: responseTo(r.peers[0]!, 0x1113, 1) }));
  t.is(r.listener.counters().sessionsLearned, 1);
});

test('row 2: a sessions file that someone else could have planted or changed is refused, and one of another key too', async (t) => {
  const first = await rig({ inject: true, link: 'sll' });
  t.teardown(first.close);
  const file = join(first.dir, 'sessions.json');
  const leaver = await rig({ inject: true, link: 'sll', like: first, dir: first.dir, sessionsFile: file });
  await withLiveIndex(leaver);
  await leaver.listener.stop();
  const takeOver = async (): Promise<number> => {
    const next = await rig({ inject: true, link: 'sll', like: first, dir: first.dir, sessionsFile: file });
    await next.feed(dataSll(0xabcd, ROAMER, 41000));
    await next.listener.stop();
    return next.injected.length;
  };
  t.is(await takeOver(), 1, 'our own file is taken over');
  chmodSync(file, 0o666);
  t.is(await takeOver(), 0, 'a file others may write is not read');

  const planted = (name: string, publicKey: string): string => {
    const path = join(first.dir, name);
    writeFileSync(path, JSON.stringify({ interface: 'wg0', publicKey, sessions: [{ index: 0xabcd, peer: b64(first.peers[0]!), learnedAt: first.clock.now }] }), { mode: 0o600 });
    return path;
  };
  const handedOverWith = async (sessionsFile: string): Promise<number> => {
    const next = await rig({ inject: true, link: 'sll', like: first, dir: first.dir, sessionsFile });
    await next.feed(dataSll(0xabcd, ROAMER, 41000));
    return next.injected.length;
  };
  const right = planted('right.json', b64(first.r2));
  t.is(await handedOverWith(right), 1, 'the file format itself is taken');
  const link = join(first.dir, 'linked.json');
  symlinkSync(planted('target.json', b64(first.r2)), link);
  t.is(await handedOverWith(link), 0, 'a symbolic link is not followed');
  t.is(await handedOverWith(planted('other-key.json', b64(first.peers[0]!))), 0, 'indices left under another interface key name nothing here');
});

test('row 3: a packet is re-sent only to one of R2\'s own addresses on the listen port: data and initiations for a LAN host are refused before anything is built', async (t) => {
  const r = await rig({ inject: true, link: 'sll', loopbackAccepted: false });
  t.teardown(r.close);
  await withLiveIndex(r);
  const lanHost = '198.51.100.200';
  await r.feed(dataSll(0xabcd, ATTACKER, 666, lanHost));
  await r.feed(sll(rawUdpFrame({ src: ATTACKER, dst: lanHost, srcPort: 666, dstPort: PORT, payload: initiationFrom(r, r.peers[0]!, ATTACKER, 666).subarray(28) })));
  t.is(r.injected.length, 0);
  t.is(r.pinholes.length, 0);
  t.is(r.listener.ignored.get('not-for-us'), 2);
  t.deepEqual(r.wg.sets, []);
});

test('row 3: a stranger\'s data naming a live index opens a pinhole that is removed when it settles untaken, and its source rests', async (t) => {
  const r = await rig({ inject: true, link: 'sll', loopbackAccepted: false, takesUp: () => false });
  t.teardown(r.close);
  await withLiveIndex(r);
  for (let i = 0; i < 5; i++) await r.feed(dataSll(0xabcd, ATTACKER, 666));
  t.is(r.injected.length, 1, 'one hand-over per source, then it rests');
  t.is(r.pinholes.length, 1);
  // refused before admission: the source rests (source-spent), and so does the peer whose
  // data-only confirmation came to nothing (rate-limited, in the capture's buffer already)
  t.is((r.listener.ignored.get('source-spent') ?? 0) + (r.listener.ignored.get('rate-limited') ?? 0), 4);
  // HANDOVER_SETTLE_MS, then one `wg show` read (bounded wait: a loaded machine is slower)
  for (let waited = 0; r.removedPinholes.length === 0 && waited < 5000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
  t.deepEqual(r.removedPinholes.map((tuple) => `${tuple.src}:${tuple.srcPort}`), [`${ATTACKER}:666`]);
});

test('row 3: the roamer\'s own data, taken up by WireGuard, keeps its conntrack entry', async (t) => {
  const r = await rig({ inject: true, link: 'sll', loopbackAccepted: false });
  t.teardown(r.close);
  await r.feed(sll(initiationFrom(r, r.peers[0]!, ROAMER, 41000)));
  t.is(r.wg.peers[0]!.endpoint, `${ROAMER}:41000`);
  t.is(r.pinholes.length, 1);
  await new Promise((resolve) => setTimeout(resolve, HANDOVER_SETTLE_MS + 1000)); // settled by then
  t.deepEqual(r.removedPinholes, []);
});

const martians: [string, string, string][] = [
  ['127.0.0.1', R2, 'source-loopback'],
  ['0.0.0.0', R2, 'source-unspecified'],
  ['224.0.0.1', R2, 'source-multicast'],
  ['255.255.255.255', R2, 'source-broadcast'],
  ['192.0.2.255', R2, 'source-broadcast'],
  ['240.0.0.1', R2, 'source-reserved'],
  ['169.254.1.1', R2, 'source-link-local'],
  [R2, R2, 'source-own'],
  ['::1', R2_V6, 'source-loopback'],
  ['::', R2_V6, 'source-unspecified'],
  ['ff02::1', R2_V6, 'source-multicast'],
  ['fe80::1', R2_V6, 'source-link-local'],
  ['::ffff:198.51.100.7', R2_V6, 'source-mapped'],
  [R2_V6, R2_V6, 'source-own'],
];

test('row 4: a source that could never arrive from outside is refused first: no hand-over, no wg set, no endpoint', async (t) => {
  const r = await rig({ inject: true, link: 'sll' });
  t.teardown(r.close);
  await withLiveIndex(r);
  for (const [src, dst] of martians) {
    await r.feed(sll(rawUdpFrame({ src, dst, srcPort: 40404, dstPort: PORT, payload: dataTo(0xabcd) })));
    await r.feed(sll(rawUdpFrame({ src, dst, srcPort: 40405, dstPort: PORT, payload: initiationFrom(r, r.peers[0]!, ROAMER, 1).subarray(28) })));
  }
  t.is(r.injected.length, 0);
  t.deepEqual(r.wg.sets, []);
  t.is(r.wg.peers[0]!.endpoint, undefined);
  for (const [src, , reason] of martians) t.true((r.listener.ignored.get(reason) ?? 0) >= 2, `${src}: ${reason}`);
  t.is(r.listener.counters().authentic, 0, 'not even verified: refused before the Noise work');
});

test('row 5: VLAN-tagged cooked frames are located by the screen: random initiations are bad-mac1, a genuine one is accepted', async (t) => {
  const r = await rig({ inject: true, link: 'sll' });
  t.teardown(r.close);
  const tagged = (packet: Buffer): Buffer => {
    // as libpcap re-inserts a stripped tag: TPID at the protocol field, then TCI, then the type
    const frame = sll(packet, 0x8100);
    const tci = Buffer.alloc(4);
    tci.writeUInt16BE(10, 0);
    tci.writeUInt16BE(0x0800, 2);
    return Buffer.concat([frame.subarray(0, 16), tci, frame.subarray(16)]);
  };
  for (let i = 0; i < 50; i++) {
    const junk = Buffer.alloc(148, i);
    junk.writeUInt32LE(1, 0);
    await r.feed(tagged(rawUdpFrame({ src: ATTACKER, dst: R2, srcPort: 1000 + i, dstPort: PORT, payload: junk })));
  }
  t.is(r.listener.ignored.get('bad-mac1'), 50);
  t.is(r.listener.ignored.get('decrypt-failed'), undefined);
  await r.feed(tagged(initiationFrom(r, r.peers[0]!, ROAMER, 41000)));
  t.is(r.listener.counters().authentic, 1);
});

test('row 5: an SLL2 frame (tags never inserted there) and a frame the screen cannot place still get the full mac1 check', async (t) => {
  const r = await rig({ inject: true, link: 'sll2' });
  t.teardown(r.close);
  const junk = Buffer.alloc(148, 7);
  junk.writeUInt32LE(1, 0);
  await r.feed(sll2(rawUdpFrame({ src: ATTACKER, dst: R2, srcPort: 1000, dstPort: PORT, payload: junk })));
  t.is(r.listener.ignored.get('bad-mac1'), 1);
});

test('row 8: a flood of ignored packets at debug level is a bounded number of log lines that say how many more there were', async (t) => {
  const r = await rig({ inject: true, link: 'sll' });
  t.teardown(r.close);
  for (let i = 0; i < 2000; i++) r.listener.onFrame(sll(rawUdpFrame({ src: '127.0.0.1', dst: R2, srcPort: 1000 + i, dstPort: PORT, payload: dataTo(1) })), Date.now());
  const lines = r.log.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.reason === 'source-loopback');
  t.is(r.listener.ignored.get('source-loopback'), 2000, 'every one is counted');
  t.true(lines.length <= 20, `${lines.length} lines`);
  await r.listener.stop();
  const told = r.log.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'log.suppressed' || typeof e.suppressed === 'number');
  const suppressed = told.reduce((sum, e) => sum + Number(e.suppressed ?? 0), 0);
  t.is(suppressed + lines.length, 2000, 'what was held back is said at stop');
});
