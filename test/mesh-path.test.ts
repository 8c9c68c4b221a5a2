import test from 'ava';
import { PeerPath, REJECT_AFTER_TIME_MS, type PeerObservation, type Wanted } from '../src/mesh/path.js';
import { parsePrefix } from '../src/mesh/prefix.js';

const TIMERS = { deadAfterMs: 2_000, probeWindowMs: 12_000, backoffFirstMs: 30_000, backoffMaxMs: 600_000 };
const prefix = (text: string) => {
  const p = parsePrefix(text);
  if (!p.ok) throw new Error(text);
  return p.value;
};
const WANTED: Wanted = { endpoint: '192.0.2.20:40000', allowed: [prefix('203.0.113.20/32')] };
const T0 = 1_000_000_000;
const seen = (over: Partial<PeerObservation> = {}): PeerObservation => ({ endpoint: '192.0.2.20:40000', latestHandshakeMs: 0, rxBytes: 0, txBytes: 0, ...over });

test('a new peer is probed: endpoint from the registry, no prefixes', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  t.deepEqual(path.begin(undefined), [{ do: 'probe', endpoint: '192.0.2.20:40000' }]);
  t.is(path.view().kind, 'probing');
  t.deepEqual(path.view().allowed, []);
});

test('a completed handshake promotes the path to the registry\'s prefixes', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  t.deepEqual(path.step(T0 + 500, seen(), undefined), []);
  t.deepEqual(path.step(T0 + 900, seen({ latestHandshakeMs: T0 + 800, rxBytes: 92 }), undefined), [{ do: 'promote', allowed: ['203.0.113.20/32'] }]);
  t.is(path.view().kind, 'direct');
});

test('a handshake from before the probe does not promote', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(seen({ latestHandshakeMs: T0 - REJECT_AFTER_TIME_MS * 2, rxBytes: 500 }));
  t.deepEqual(path.step(T0 + 500, seen({ latestHandshakeMs: T0 - REJECT_AFTER_TIME_MS * 2, rxBytes: 500 }), undefined), []);
  t.is(path.view().kind, 'probing');
});

test('a direct path that hears nothing for deadAfter falls back to the hub, goes silent for twice that, then probes afresh', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  path.step(T0 + 100, seen({ latestHandshakeMs: T0 + 100, rxBytes: 92 }), undefined);
  t.deepEqual(path.step(T0 + 1_100, seen({ latestHandshakeMs: T0 + 100, rxBytes: 124 }), undefined), [], 'a keepalive arrived');
  t.deepEqual(path.step(T0 + 3_000, seen({ latestHandshakeMs: T0 + 100, rxBytes: 124 }), undefined), [], 'silent 1.9 s: still direct');
  // The peer is removed: if only our direction of the path broke, the peer stops hearing us.
  t.deepEqual(path.step(T0 + 3_200, seen({ latestHandshakeMs: T0 + 100, rxBytes: 124 }), undefined), [{ do: 'demote' }, { do: 'remove' }]);
  t.is(path.view().kind, 'quiet');
  t.regex(path.view().why, /direct path died/);
  t.is(path.view().until, T0 + 3_200 + 4_000);
  t.deepEqual(path.step(T0 + 7_000, undefined, WANTED), [], 'silent for 4 s, whatever the registry repeats');
  t.deepEqual(path.step(T0 + 7_200, undefined, undefined), [{ do: 'probe', endpoint: '192.0.2.20:40000' }]);
  t.is(path.view().kind, 'probing');
});

test('after a fall-back only a new handshake promotes again: the peer hearing us is not enough', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  path.step(T0 + 100, seen({ latestHandshakeMs: T0 + 100, rxBytes: 92 }), undefined);
  path.step(T0 + 2_200, seen({ latestHandshakeMs: T0 + 100, rxBytes: 92 }), undefined);
  t.is(path.view().kind, 'quiet');
  path.step(T0 + 6_300, undefined, undefined);
  t.is(path.view().kind, 'probing');
  t.deepEqual(path.step(T0 + 6_800, seen(), undefined), [], 'added afresh: nothing yet');
  t.deepEqual(path.step(T0 + 7_000, seen({ latestHandshakeMs: T0 + 6_900, rxBytes: 92 }), undefined), [{ do: 'promote', allowed: ['203.0.113.20/32'] }]);
});

test('a remap the registry shows is followed: a dead path probes the new endpoint without waiting', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  path.step(T0 + 100, seen({ latestHandshakeMs: T0 + 100, rxBytes: 92 }), undefined);
  const moved: Wanted = { ...WANTED, endpoint: '192.0.2.20:40999' };
  t.deepEqual(path.step(T0 + 1_000, seen({ latestHandshakeMs: T0 + 100, rxBytes: 124 }), moved), [], 'a working direct path keeps its endpoint');
  t.deepEqual(path.step(T0 + 3_500, seen({ latestHandshakeMs: T0 + 100, rxBytes: 124 }), moved), [{ do: 'demote' }, { do: 'remove' }]);
  t.deepEqual(path.step(T0 + 4_000, undefined, moved), [{ do: 'probe', endpoint: '192.0.2.20:40999' }], 'its side fell back too: no need to wait');
  t.is(path.view().endpoint, '192.0.2.20:40999');
});

test('a probe that gets no handshake backs off 30 s, doubling to 10 min', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  let now = T0;
  const waits: number[] = [];
  for (let attempt = 0; attempt < 7; attempt++) {
    t.deepEqual(path.step(now + 11_900, seen(), undefined), [], 'still within the window');
    t.deepEqual(path.step(now + 12_000, seen(), undefined), [{ do: 'remove' }]);
    const view = path.view();
    t.is(view.kind, 'backed-off');
    waits.push(view.until! - (now + 12_000));
    t.deepEqual(path.step(view.until! - 1, undefined, undefined), [], 'waits');
    now = view.until!;
    t.deepEqual(path.step(now, undefined, undefined), [{ do: 'probe', endpoint: WANTED.endpoint }]);
  }
  t.deepEqual(waits, [30_000, 60_000, 120_000, 240_000, 480_000, 600_000, 600_000]);
});

test('a backed-off peer whose endpoint changes is probed at once', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  path.step(T0 + 12_000, seen(), undefined);
  t.is(path.view().kind, 'backed-off');
  t.deepEqual(path.step(T0 + 13_000, undefined, WANTED), [], 'the same endpoint: still waiting');
  t.deepEqual(path.step(T0 + 14_000, undefined, { ...WANTED, endpoint: '192.0.2.20:41000' }), [{ do: 'probe', endpoint: '192.0.2.20:41000' }]);
});

test('a peer someone removed from WireGuard is probed again', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  path.step(T0 + 100, seen({ latestHandshakeMs: T0 + 100, rxBytes: 92 }), undefined);
  t.deepEqual(path.step(T0 + 600, undefined, undefined), [{ do: 'probe', endpoint: WANTED.endpoint }]);
});

test('new prefixes from the registry reach a direct peer; none left demotes it', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  path.step(T0 + 100, seen({ latestHandshakeMs: T0 + 100, rxBytes: 92 }), undefined);
  t.deepEqual(path.step(T0 + 600, seen({ latestHandshakeMs: T0 + 100, rxBytes: 124 }), { ...WANTED, allowed: [prefix('203.0.113.20/32'), prefix('198.51.100.0/25')] }), [
    { do: 'promote', allowed: ['203.0.113.20/32', '198.51.100.0/25'] },
  ]);
  t.deepEqual(path.step(T0 + 900, seen({ latestHandshakeMs: T0 + 100, rxBytes: 156 }), { ...WANTED, allowed: [] }), [{ do: 'demote' }]);
});

test('a direct path whose session outlived REJECT_AFTER_TIME without a new handshake is dead', (t) => {
  const path = new PeerPath(T0, WANTED, TIMERS);
  path.begin(undefined);
  path.step(T0 + 100, seen({ latestHandshakeMs: T0 + 100, rxBytes: 92 }), undefined);
  let rx = 92;
  let now = T0 + 100;
  for (; now < T0 + REJECT_AFTER_TIME_MS; now += 1_000) t.deepEqual(path.step(now, seen({ latestHandshakeMs: T0 + 100, rxBytes: (rx += 32) }), undefined), []);
  const actions = path.step(T0 + REJECT_AFTER_TIME_MS + 6_000, seen({ latestHandshakeMs: T0 + 100, rxBytes: (rx += 32) }), undefined);
  t.deepEqual(actions, [{ do: 'demote' }, { do: 'remove' }]);
});
