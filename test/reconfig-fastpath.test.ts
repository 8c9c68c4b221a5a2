/**
 * The fast path's decisions, for every packet kind: what is handed to WireGuard, what is
 * confirmed, what falls back to `wg set`, and what is only counted. Frames come in through a
 * stand-in capture; a stand-in injector plays WireGuard (it roams the peer a packet belongs to).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { FILTER_UPDATE_AFTER_MS, FILTER_UPDATE_WITHIN_MS } from '../src/reconfig/sniffer.js';
import { REJECT_AFTER_TIME_MS } from '../src/wireguard/constants.js';
import { R2, b64, dataTo, events, initiationFrom, initiationTo, PORT, rawUdpFrame, responseTo, rig, type Rig } from './helpers/listener-rig.js';

const NEW_SRC = '198.51.100.7';

function sent(payload: Buffer, peerPort = 40000): Buffer {
  return rawUdpFrame({ src: R2, dst: NEW_SRC, srcPort: PORT, dstPort: peerPort, payload });
}

function data(r: Rig, receiver: number, src = NEW_SRC, srcPort = 40001): Buffer {
  void r;
  return rawUdpFrame({ src, dst: R2, srcPort, dstPort: PORT, payload: dataTo(receiver) });
}

test('a genuine initiation from a new address is handed to WireGuard, which moves the endpoint: no wg set', async (t) => {
  const r = await rig({ inject: true });
  t.teardown(r.close);
  await r.feed(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000));
  t.is(r.injected.length, 1);
  t.like(r.injected[0]!.tuple, { family: 4, src: NEW_SRC, srcPort: 40000, dst: R2, dstPort: PORT });
  t.is(r.injected[0]!.payload.length, 148);
  t.deepEqual(r.wg.sets, []);
  t.like(events(r, 'endpoint.updated')[0], { peer: b64(r.peers[0]!), from: undefined, to: `${NEW_SRC}:40000`, how: 'injected' });
  t.is(r.listener.updated, 1);
});

test('an initiation from the current endpoint is handed over too, and changes nothing', async (t) => {
  const r = await rig({ inject: true });
  t.teardown(r.close);
  r.wg.peers[0]!.endpoint = `${NEW_SRC}:40000`;
  await r.listener.refresh('test');
  const told = events(r, 'endpoint.updated').length;
  await r.feed(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000));
  t.is(r.injected.length, 1, 'WireGuard gets the re-handshake the firewall dropped');
  t.deepEqual(r.wg.sets, []);
  t.is(events(r, 'endpoint.updated').length, told);
});

test('an injection WireGuard does not take up falls back to wg set with the keepalive edge', async (t) => {
  const r = await rig({ inject: true, pinhole: 'never', takesUp: () => false });
  t.teardown(r.close);
  await r.feed(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000));
  t.is(r.injected.length, 1);
  t.deepEqual(r.wg.sets[0], ['peer', b64(r.peers[0]!), 'endpoint', `${NEW_SRC}:40000`, 'persistent-keepalive', '1']);
  t.like(events(r, 'endpoint.updated')[0], { how: 'set', to: `${NEW_SRC}:40000` });
});

test('in auto mode, an injection that was not taken up turns the pinhole on and is handed over again', async (t) => {
  const r = await rig({ inject: true, pinhole: 'auto', loopbackAccepted: true, takesUp: (_tuple, _payload, pinholed) => pinholed });
  t.teardown(r.close);
  await r.feed(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000));
  t.is(r.injected.length, 2);
  t.is(r.pinholes.length, 1);
  t.like(r.pinholes[0], { src: NEW_SRC, srcPort: 40000, dst: R2, dstPort: PORT });
  t.deepEqual(r.wg.sets, []);
  t.like(events(r, 'endpoint.updated')[0], { how: 'injected' });
  t.is(events(r, 'pinhole.enabled').length, 1);
  // From now on every injection is pinholed first.
  await r.feed(initiationFrom(r, r.peers[0]!, NEW_SRC, 40002, new Date(Date.now() + 1000)));
  t.is(r.pinholes.length, 2);
});

test('a data packet from a new address is handed over when its receiver index is one of R2’s live sessions', async (t) => {
  const sessions = new Map<number, string>();
  const r = await rig({ inject: true, sessions });
  t.teardown(r.close);
  const peer = b64(r.peers[0]!);
  sessions.set(0xabcd, peer);
  await r.feed(sent(responseTo(r.peers[0]!, 0xabcd, 77)));
  t.is(r.listener.sessionsLearned, 1);
  await r.feed(data(r, 0xabcd));
  t.is(r.injected.length, 1);
  t.like(r.injected[0]!.tuple, { src: NEW_SRC, srcPort: 40001 });
  t.like(events(r, 'endpoint.updated')[0], { peer, to: `${NEW_SRC}:40001`, how: 'injected' });
  t.deepEqual(r.wg.sets, [], 'a data packet never moves an endpoint by our hand');
});

test('R2’s own initiation names its index for the peer whose mac1 key fits', async (t) => {
  const sessions = new Map<number, string>();
  const r = await rig({ inject: true, peers: 3, sessions });
  t.teardown(r.close);
  const peer = b64(r.peers[2]!);
  sessions.set(0x1234, peer);
  await r.feed(sent(initiationTo(r.peers[2]!, 0x1234)));
  await r.feed(data(r, 0x1234));
  t.like(events(r, 'session.learned')[0], { peer, index: 0x1234, from: 'initiation' });
  t.like(events(r, 'endpoint.updated')[0], { peer, how: 'injected' });
  t.deepEqual(r.wg.peers.map((p) => p.endpoint), [undefined, undefined, `${NEW_SRC}:40001`]);
});

test('data naming an unknown index, or one from the current endpoint, or a handshake for no peer, is only counted', async (t) => {
  const r = await rig({ inject: true });
  t.teardown(r.close);
  await r.feed(data(r, 0x9999));
  t.is(r.listener.ignored.get('unknown-index'), 1);
  // A response mac1-keyed for a key that is no peer names nothing.
  await r.feed(sent(responseTo(r.r2, 0x5555, 1)));
  t.is(r.listener.ignored.get('unknown-receiver'), 1);
  await r.feed(data(r, 0x5555));
  t.is(r.listener.ignored.get('unknown-index'), 2);

  r.wg.peers[0]!.endpoint = `${NEW_SRC}:40001`;
  await r.listener.refresh('test');
  await r.feed(sent(responseTo(r.peers[0]!, 0x4444, 1)));
  await r.feed(data(r, 0x4444));
  t.is(r.listener.ignored.get('from-endpoint'), 1);
  t.is(r.injected.length, 0);
});

test('an index expires REJECT_AFTER_TIME after its handshake', async (t) => {
  const r = await rig({ inject: true });
  t.teardown(r.close);
  await r.feed(sent(responseTo(r.peers[0]!, 0xabcd, 1)));
  r.clock.now += REJECT_AFTER_TIME_MS + 1;
  await r.feed(data(r, 0xabcd));
  t.is(r.listener.ignored.get('unknown-index'), 1);
  t.is(r.injected.length, 0);
});

test('data packets are budgeted per source: a replay flood of one live index hands over only a few', async (t) => {
  const r = await rig({ inject: true, takesUp: () => false });
  t.teardown(r.close);
  await r.feed(sent(responseTo(r.peers[0]!, 0xabcd, 1)));
  for (let i = 0; i < 100; i++) await r.feed(data(r, 0xabcd, '203.0.113.66', 666));
  t.true(r.injected.length <= 20, `${r.injected.length} handed over`);
  // Refused before admission: the source whose packet was not taken up rests (source-spent),
  // and the peer's next data-only confirmation waits its cooldown (rate-limited).
  const refused = (r.listener.ignored.get('rate-limited') ?? 0) + (r.listener.ignored.get('source-spent') ?? 0);
  t.true(refused >= 80, `${refused} refused`);
  t.deepEqual(r.wg.sets, []);
});

test('with --dry-run nothing is handed over; data is counted as dry-run', async (t) => {
  const r = await rig({ inject: true, dryRun: true });
  t.teardown(r.close);
  await r.feed(sent(responseTo(r.peers[0]!, 0xabcd, 1)));
  await r.feed(data(r, 0xabcd));
  await r.feed(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000));
  t.is(r.injected.length, 0);
  t.is(r.listener.ignored.get('dry-run'), 1);
  t.deepEqual(r.wg.sets, []);
  t.like(events(r, 'endpoint.updated')[0], { dryRun: true });
});

test('after a confirmed change the capture filter leaves the new endpoint’s data out', async (t) => {
  const r = await rig({ inject: true });
  t.teardown(r.close);
  t.notRegex(r.openedFilters[0]!, /198\.51\.100\.7/);
  await r.feed(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000));
  await new Promise((resolve) => setTimeout(resolve, FILTER_UPDATE_AFTER_MS + 20));
  const last = r.openedFilters.at(-1)!;
  t.is(r.openedFilters.length, 2);
  t.regex(last, /not \(src host 198\.51\.100\.7 and udp src port 40000\)/);
});

test('peers that roam together are one filter replacement, after the last of them; a stream of roams still gets one within FILTER_UPDATE_WITHIN_MS', async (t) => {
  const r = await rig({ inject: true, peers: 3 });
  t.teardown(r.close);
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  const started = performance.now();
  await r.feed(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000));
  await sleep(FILTER_UPDATE_AFTER_MS * 0.6);
  await r.feed(initiationFrom(r, r.peers[1]!, NEW_SRC, 40001));
  await sleep(FILTER_UPDATE_AFTER_MS * 0.6);
  t.is(r.openedFilters.length, 1, 'not replaced while peers keep roaming');
  await sleep(FILTER_UPDATE_AFTER_MS * 0.4 + 80);
  t.is(r.openedFilters.length, 2, 'replaced once');
  t.regex(r.openedFilters.at(-1)!, /40000\)[^]*40001\)/, 'leaving out both new endpoints');
  // A roam every FILTER_UPDATE_AFTER_MS / 2 (each peer in turn) never lets the changes settle.
  const streamFrom = performance.now();
  let port = 41000;
  while (performance.now() - streamFrom < FILTER_UPDATE_WITHIN_MS + FILTER_UPDATE_AFTER_MS) {
    await r.feed(initiationFrom(r, r.peers[port % 3]!, NEW_SRC, port++));
    await sleep(FILTER_UPDATE_AFTER_MS / 2);
  }
  t.true(r.openedFilters.length >= 3, `replaced within ${FILTER_UPDATE_WITHIN_MS} ms of the first change of a stream (${r.openedFilters.length} filters in ${Math.round(performance.now() - started)} ms)`);
});

test('data from a new endpoint that reaches the screen before the filter leaves it out is not handed over, and its peer does not rest', async (t) => {
  const sessions = new Map<number, string>();
  const r = await rig({ inject: true, sessions });
  t.teardown(r.close);
  sessions.set(0xabcd, b64(r.peers[0]!));
  await r.feed(sent(responseTo(r.peers[0]!, 0xabcd, 1)));
  await r.feed(data(r, 0xabcd));
  t.like(events(r, 'endpoint.updated')[0], { to: `${NEW_SRC}:40001`, how: 'injected' });
  t.is(r.openedFilters.length, 1, 'the filter is not replaced yet');
  // The kernel filter still passes the new endpoint's data: WireGuard already takes it there.
  await r.feed(data(r, 0xabcd));
  t.is(r.listener.ignored.get('from-endpoint'), 1);
  t.is(r.injected.length, 1, 'handed over once, for the move only');
  t.is(events(r, 'data.not-taken-up').length, 0);
  // The peer takes a hand-over from its next address at once.
  await r.feed(data(r, 0xabcd, NEW_SRC, 40002));
  t.is(r.injected.length, 2);
  t.like(events(r, 'endpoint.updated')[1], { to: `${NEW_SRC}:40002`, how: 'injected' });
});

test('data from the source an initiation was just handed over from is not handed over too: it spends no data budget', async (t) => {
  const sessions = new Map<number, string>();
  const r = await rig({ inject: true, sessions });
  t.teardown(r.close);
  sessions.set(0xabcd, b64(r.peers[0]!));
  // R1's initiation from its new address is handed over; before the confirmation has read wg,
  // WireGuard's response names the new session and R1's first data follows it (through the
  // flow that response opened).
  r.listener.onFrame(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000), Date.now());
  r.listener.onFrame(sent(responseTo(r.peers[0]!, 0xabcd, 1)), Date.now());
  r.listener.onFrame(data(r, 0xabcd, NEW_SRC, 40000), Date.now());
  await r.listener.settled();
  t.is(r.injected.length, 1, 'the initiation only');
  t.is(r.listener.ignored.get('initiation-pending'), 1);
  t.like(events(r, 'endpoint.updated')[0], { to: `${NEW_SRC}:40000`, how: 'injected' });
  // data from another source of the same peer meanwhile is still handed over
  r.listener.onFrame(initiationFrom(r, r.peers[0]!, NEW_SRC, 40010, new Date(Date.now() + 1000)), Date.now());
  r.listener.onFrame(data(r, 0xabcd, NEW_SRC, 40011), Date.now());
  await r.listener.settled();
  t.is(r.injected.length, 3);
});

test('an endpoint WireGuard moved by itself is told as roamed on the next read', async (t) => {
  const r = await rig({ inject: true });
  t.teardown(r.close);
  const changes: unknown[] = [];
  r.listener.onChange((change) => changes.push(change));
  r.wg.peers[0]!.endpoint = '198.51.100.1:1';
  await r.listener.refresh('test');
  r.wg.peers[0]!.endpoint = '198.51.100.2:2';
  await r.listener.refresh('test');
  t.is(changes.length, 2);
  t.like(changes[0], { from: undefined, to: '198.51.100.1:1', how: 'roamed' });
  t.like(changes[1], { from: '198.51.100.1:1', to: '198.51.100.2:2', how: 'roamed' });
});

test('data packets that waited for their turn are handed over for their own peer', async (t) => {
  const r = await rig({ inject: true, peers: 2, takesUp: () => false });
  t.teardown(r.close);
  await r.feed(sent(responseTo(r.peers[0]!, 0xaaaa, 1)));
  await r.feed(sent(responseTo(r.peers[1]!, 0xbbbb, 2)));
  // A flood for peer 0's session from many sources, all at once, spends the open share; one
  // packet per source then waits.
  for (let i = 0; i < 40; i++) r.listener.onFrame(data(r, 0xaaaa, `203.0.113.${100 + i}`, 666), Date.now());
  await r.feed(data(r, 0xbbbb, '198.51.100.77', 777));
  const before = r.injected.length;
  r.clock.now += 1000; // tokens for the waiting ones
  await new Promise((resolve) => setTimeout(resolve, 100));
  await r.listener.settled();
  const late = r.injected.slice(before).map((p) => p.payload.readUInt32LE(4));
  t.true(late.includes(0xbbbb), `handed over after waiting: ${late.map((x) => x.toString(16)).join(',')}`);
  // WireGuard (the stand-in) does not take it up; the confirmation says for which peer it looked.
  const notTakenUp = events(r, 'data.not-taken-up').find((e) => (e.sources as string[]).includes('198.51.100.77:777'));
  t.is(notTakenUp?.peer, b64(r.peers[1]!));
});

test('a restarted listener takes over the live session indices its predecessor left behind', async (t) => {
  const first = await rig({ inject: true });
  t.teardown(first.close);
  const sessionsFile = join(first.dir, 'sessions.json');
  const before = await rig({ inject: true, like: first, sessionsFile, dir: first.dir });
  before.clock.now -= 60_000; // a minute before the successor starts (its clock starts where this one did)
  await before.feed(sent(responseTo(before.peers[0]!, 0xabcd, 1)));
  // a later handshake (not a retry): 0xabcd was confirmed and is the current keypair
  before.clock.now += 60_000;
  await before.feed(sent(responseTo(before.peers[0]!, 0x1111, 2)));
  await before.listener.stop();
  t.is((JSON.parse(readFileSync(sessionsFile, 'utf8')) as { sessions: unknown[] }).sessions.length, 2);

  const sessions = new Map([[0xabcd, b64(before.peers[0]!)]]);
  const after = await rig({ inject: true, like: first, sessionsFile, dir: first.dir, sessions });
  t.like(events(after, 'sessions.taken-over')[0], { sessions: 2 });
  await after.feed(data(after, 0xabcd));
  t.is(after.injected.length, 1, 'a data packet of a session older than this process is vouched for');
  t.like(events(after, 'endpoint.updated')[0], { how: 'injected' });
});

test('left-behind indices that are too old, of another interface or of no peer are not taken over', async (t) => {
  const r = await rig({ inject: true });
  t.teardown(r.close);
  const sessionsFile = join(r.dir, 'sessions.json');
  const peer = b64(r.peers[0]!);
  writeFileSync(
    sessionsFile,
    JSON.stringify({
      interface: 'wg0',
      sessions: [
        { index: 1, peer, learnedAt: r.clock.now - REJECT_AFTER_TIME_MS - 1 },
        { index: 2, peer: 'not-a-peer', learnedAt: r.clock.now },
        { index: -3, peer, learnedAt: r.clock.now },
        { index: 4, peer, learnedAt: r.clock.now + 60_000 },
      ],
    }),
  );
  const again = await rig({ inject: true, like: r, sessionsFile, dir: r.dir });
  t.is(events(again, 'sessions.taken-over').length, 0);
  writeFileSync(sessionsFile, JSON.stringify({ interface: 'wg9', sessions: [{ index: 5, peer, learnedAt: r.clock.now }] }));
  const other = await rig({ inject: true, like: r, sessionsFile, dir: r.dir });
  t.is(events(other, 'sessions.ignored').length, 1);
  for (const index of [1, 2, 3, 4, 5]) await other.feed(data(other, index));
  t.is(other.injected.length, 0);
});

test('a flood of replayed data from many sources runs one confirmation for the peer, and a genuine initiation amid it is still taken up', async (t) => {
  const sessions = new Map<number, string>();
  // The stand-in WireGuard drops the replayed data (only the initiation moves the peer).
  const r = await rig({ inject: true, sessions, takesUp: (_tuple, payload) => payload[0] === 1 });
  t.teardown(r.close);
  const peer = b64(r.peers[0]!);
  sessions.set(0xabcd, peer);
  await r.feed(sent(responseTo(r.peers[0]!, 0xabcd, 1)));
  const showsBefore = r.wg.calls.filter((c) => c[2] === 'endpoints').length;
  for (let i = 0; i < 50; i++) r.listener.onFrame(data(r, 0xabcd, `203.0.113.${1 + (i % 40)}`, 1000 + i), Date.now());
  r.listener.onFrame(initiationFrom(r, r.peers[0]!, NEW_SRC, 40000), Date.now());
  await r.listener.settled();
  const shows = r.wg.calls.filter((c) => c[2] === 'endpoints').length - showsBefore;
  t.true(shows <= 3 * 2, `${shows} wg show calls: one confirmation loop, restarted once by the initiation`);
  t.like(events(r, 'endpoint.updated').at(-1), { peer, to: `${NEW_SRC}:40000`, how: 'injected' });
  t.deepEqual(r.wg.sets, []);
});
