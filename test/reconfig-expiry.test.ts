/**
 * Conntrack expiry: a destroy event for a peer's endpoint flow lifts its exclusion from the
 * capture filter; the peer's next data packet is handed to WireGuard with a pinhole and the
 * exclusion comes back. Events go through the real parser (a stand-in socket); the listener,
 * sniffer and delivery are the real ones.
 */
import test from 'ava';
import type { ConntrackFlow } from '../src/net/conntrack-events.js';
import { Counters } from '../src/reconfig/counters.js';
import { Expiry, MAX_LIFTED, MAX_RECENT, RECENT_DESTROY_MS } from '../src/reconfig/expiry.js';
import { FILTER_UPDATE_AFTER_MS } from '../src/reconfig/sniffer.js';
import { FakeDestroyEvents } from './helpers/conntrack-events.js';
import { R2, b64, dataTo, events, PORT, rawUdpFrame, responseTo, rig, type Rig } from './helpers/listener-rig.js';
import { memoryLogger } from './helpers/memory-logger.js';

const ENDPOINT = '198.51.100.7';
const OTHER = '198.51.100.8';
const STRANGER = '198.51.100.66';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** A restored exclusion reaches the capture filter with the next gathered update (sniffer.ts). */
const filterUpdated = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, FILTER_UPDATE_AFTER_MS + 20));

function fromPeer(src: string, srcPort: number, receiver: number): Buffer {
  return rawUdpFrame({ src, dst: R2, srcPort, dstPort: PORT, payload: dataTo(receiver) });
}

const flowFrom = (src: string, srcPort: number, dstPort = PORT): ConntrackFlow => ({ family: 4, src, srcPort, dst: R2, dstPort });

/** Two peers at known endpoints, each with a live session index (0x1111 and 0x2222). */
async function expiryRig(options: { takesUp?: boolean } = {}): Promise<{ r: Rig; ct: FakeDestroyEvents }> {
  const ct = new FakeDestroyEvents();
  const sessions = new Map<number, string>();
  const r = await rig({ inject: true, peers: 2, sessions, destroyEvents: ct, ...(options.takesUp === false ? { takesUp: () => false } : {}) });
  r.wg.peers[0]!.endpoint = `${ENDPOINT}:40001`;
  r.wg.peers[1]!.endpoint = `${OTHER}:40002`;
  await r.listener.refresh('test');
  for (const [index, peer, to] of [[0x1111, r.peers[0]!, ENDPOINT], [0x2222, r.peers[1]!, OTHER]] as const) {
    sessions.set(index, b64(peer));
    await r.feed(rawUdpFrame({ src: R2, dst: to, srcPort: PORT, dstPort: 40000, payload: responseTo(peer, index, 1) }));
  }
  if (r.listener.sessionsLearned !== 2) throw new Error('the rig did not learn the live indices');
  return { r, ct };
}

const excludes = (filter: string | undefined, address: string): boolean => filter?.includes(`src host ${address} `) === true;

test('while the entry exists, data from the endpoint is left out and, slipping in, only counted', async (t) => {
  const { r } = await expiryRig();
  t.teardown(r.close);
  t.true(excludes(r.openedFilters.at(-1), ENDPOINT));
  await r.feed(fromPeer(ENDPOINT, 40001, 0x1111));
  t.is(r.listener.ignored.get('from-endpoint'), 1);
  t.is(r.injected.length, 0);
});

test('a destroyed entry of the endpoint lifts its exclusion; its next data is handed over with a pinhole and the exclusion comes back', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  const filters = r.openedFilters.length;
  const moves = events(r, 'endpoint.updated').length;
  ct.emit(flowFrom(ENDPOINT, 40001));
  await turn();
  t.is(r.openedFilters.length, filters + 1, 'the filter is rebuilt once');
  t.false(excludes(r.openedFilters.at(-1), ENDPOINT), 'the endpoint is captured again');
  t.true(excludes(r.openedFilters.at(-1), OTHER), 'the other peer stays left out');

  await r.feed(fromPeer(ENDPOINT, 40001, 0x1111));
  t.is(r.injected.length, 1);
  t.like(r.injected[0]!.tuple, { src: ENDPOINT, srcPort: 40001, dst: R2, dstPort: PORT });
  t.is(r.pinholes.length, 1, 'a pinhole even though the firewall accepts lo');
  t.like(r.pinholes[0], { src: ENDPOINT, srcPort: 40001 });
  t.deepEqual(r.wg.sets, [], 'nothing is set');
  t.is(events(r, 'endpoint.updated').length, moves, 'nothing moved');
  t.is(events(r, 'data.reentered').length, 1);
  t.like(r.listener.counters(), { expiryLifted: 1, expiryRestored: 1 });

  await filterUpdated();
  t.true(excludes(r.openedFilters.at(-1), ENDPOINT), 'left out again');
  await r.feed(fromPeer(ENDPOINT, 40001, 0x1111));
  t.is(r.injected.length, 1, 'one that slipped in meanwhile is only counted');
  t.is(r.listener.ignored.get('from-endpoint'), 1);
});

test('the entry R2 started (R2 → endpoint) counts too', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  ct.emit({ family: 4, src: R2, srcPort: PORT, dst: ENDPOINT, dstPort: 40001 });
  await turn();
  t.false(excludes(r.openedFilters.at(-1), ENDPOINT));
});

test('destroyed flows of other ports, other sources and another port of the endpoint lift nothing', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  const filters = r.openedFilters.length;
  ct.emit(flowFrom(ENDPOINT, 40001, 51821), flowFrom(STRANGER, 40001), flowFrom(ENDPOINT, 40009), { family: 4, src: ENDPOINT, srcPort: 40001, dst: R2, dstPort: 53 });
  await turn();
  t.is(r.openedFilters.length, filters);
  t.like(r.listener.counters(), { expiryLifted: 0 });
});

test('a flood of destroy events rebuilds the filter once per turn of the loop', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  const filters = r.openedFilters.length;
  for (let i = 0; i < 5000; i++) ct.emit(flowFrom(i % 2 === 0 ? ENDPOINT : OTHER, i % 2 === 0 ? 40001 : 40002), flowFrom(STRANGER, 1024 + (i % 60000)));
  await turn();
  t.is(r.openedFilters.length, filters + 1);
  t.false(excludes(r.openedFilters.at(-1), ENDPOINT));
  t.false(excludes(r.openedFilters.at(-1), OTHER));
});

test('data from a lifted endpoint naming another peer’s session is refused', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  ct.emit(flowFrom(ENDPOINT, 40001));
  await turn();
  await r.feed(fromPeer(ENDPOINT, 40001, 0x2222));
  t.is(r.injected.length, 0);
  t.is(r.listener.ignored.get('from-endpoint'), 1);
  await r.feed(fromPeer(ENDPOINT, 40001, 0x9999));
  t.is(r.injected.length, 0);
  t.is(r.listener.ignored.get('unknown-index'), 1);
});

test('lost events (ENOBUFS) lift every endpoint, each restored by its own packet', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  ct.lose();
  await turn();
  t.false(excludes(r.openedFilters.at(-1), ENDPOINT));
  t.false(excludes(r.openedFilters.at(-1), OTHER));
  await r.feed(fromPeer(OTHER, 40002, 0x2222));
  await filterUpdated();
  t.true(excludes(r.openedFilters.at(-1), OTHER));
  t.false(excludes(r.openedFilters.at(-1), ENDPOINT));
  t.like(r.listener.counters(), { conntrackEventsLost: 1, expiryLifted: 2, expiryRestored: 1 });
});

test('a lifted endpoint that moved is forgotten: the new endpoint is left out', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  ct.emit(flowFrom(ENDPOINT, 40001));
  await turn();
  r.wg.peers[0]!.endpoint = `${ENDPOINT}:40005`;
  await r.listener.refresh('test');
  const filter = r.openedFilters.at(-1);
  t.true(filter?.includes(`src host ${ENDPOINT} and udp src port 40005`));
  t.false(filter?.includes('udp src port 40001'));
});

test('a flow destroyed while its peer’s move was still being confirmed is lifted as the move is adopted', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  // The entry of the new flow goes before the daemon believes the move: nothing to lift yet.
  ct.emit(flowFrom(ENDPOINT, 40005));
  await turn();
  t.like(r.listener.counters(), { expiryLifted: 0 });
  r.wg.peers[0]!.endpoint = `${ENDPOINT}:40005`;
  await r.listener.refresh('test');
  t.like(r.listener.counters(), { expiryLifted: 1 });
  t.false(r.openedFilters.at(-1)?.includes('udp src port 40005'), 'the new endpoint is captured');
  await r.feed(fromPeer(ENDPOINT, 40005, 0x1111));
  t.is(events(r, 'data.reentered').length, 1, 'its data is handed over as a re-entry');
  t.like(r.pinholes.at(-1), { src: ENDPOINT, srcPort: 40005 });
});

test('the pinhole of a re-entry is kept when the hand-over settles; a stranger’s is removed', async (t) => {
  // The stand-in WireGuard takes nothing up: what is kept is kept because its source is the endpoint.
  const { r, ct } = await expiryRig({ takesUp: false });
  t.teardown(r.close);
  ct.emit(flowFrom(ENDPOINT, 40001));
  await turn();
  await r.feed(fromPeer(ENDPOINT, 40001, 0x1111));
  await r.feed(fromPeer(STRANGER, 40001, 0x2222));
  t.is(r.injected.length, 2);
  // The settle step runs HANDOVER_SETTLE_MS after the hand-over; bounded wait for it.
  for (let i = 0; i < 100 && r.removedPinholes.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  t.deepEqual(
    r.removedPinholes.map((p) => p.src),
    [STRANGER],
  );
});

test('the lifted set is bounded and keeps only believed endpoints', (t) => {
  const { logger } = memoryLogger();
  const counters = new Counters(logger, () => false);
  let endpoints = new Set(Array.from({ length: MAX_LIFTED + 10 }, (_, i) => `198.51.100.${i % 250}|${1024 + i}`));
  let changed = 0;
  const expiry = new Expiry({ counters, endpoints: () => endpoints, changed: () => changed++ });
  expiry.lost();
  t.is(changed, MAX_LIFTED);
  t.is(counters.ignored.get('expiry-full'), 10);
  // The peers moved: stale keys make room.
  endpoints = new Set(['192.0.2.9|9']);
  expiry.destroyed({ family: 4, src: '192.0.2.9', srcPort: 9, dst: R2, dstPort: PORT }, PORT);
  t.true(expiry.isLifted('192.0.2.9|9'));
  t.deepEqual([...expiry.liftedAmong(endpoints)], ['192.0.2.9|9']);
  counters.stop();
});

test('destroyed flows that are no endpoint are remembered a while and in bounded number', (t) => {
  const { logger } = memoryLogger();
  const counters = new Counters(logger, () => false);
  let now = 0;
  let endpoints = new Set<string>();
  const expiry = new Expiry({ counters, endpoints: () => endpoints, changed: () => undefined, now: () => now });
  const flow = (port: number): ConntrackFlow => ({ family: 4, src: '192.0.2.9', srcPort: port, dst: R2, dstPort: PORT });
  expiry.destroyed(flow(1), PORT);
  now += RECENT_DESTROY_MS + 1;
  endpoints = new Set(['192.0.2.9|1']);
  t.deepEqual([...expiry.liftedAmong(endpoints)], [], 'too long ago');
  for (let port = 1000; port < 1000 + MAX_RECENT + 1; port++) expiry.destroyed(flow(port), PORT);
  endpoints = new Set(['192.0.2.9|1000', `192.0.2.9|${1000 + MAX_RECENT}`]);
  t.deepEqual([...expiry.liftedAmong(endpoints)], [`192.0.2.9|${1000 + MAX_RECENT}`], 'the oldest was forgotten');
  counters.stop();
});

test('a lift replaces the filter at once, also while a gathered update for a move waits', async (t) => {
  const { r, ct } = await expiryRig();
  t.teardown(r.close);
  const filters = r.openedFilters.length;
  // peer 1 moves: its new endpoint is left out with the next gathered update, not at once
  await r.feed(fromPeer('198.51.100.9', 40009, 0x2222));
  t.like(events(r, 'endpoint.updated').at(-1), { to: '198.51.100.9:40009' });
  await turn();
  t.is(r.openedFilters.length, filters, 'the move waits to be gathered');
  ct.emit(flowFrom(ENDPOINT, 40001));
  await turn();
  t.is(r.openedFilters.length, filters + 1, 'the lift does not wait');
  t.false(excludes(r.openedFilters.at(-1), ENDPOINT));
  t.true(r.openedFilters.at(-1)?.includes('src host 198.51.100.9 and udp src port 40009'), 'the move comes with it');
  await filterUpdated();
  t.is(r.openedFilters.length, filters + 1, 'nothing left to gather');
});
