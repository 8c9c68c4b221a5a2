/**
 * The listener's decisions, driven directly: frames in through a stand-in capture, `wg` calls
 * out through a stand-in wg. Crypto, decoding and the decision logic are the real ones. Without
 * an injector, verified initiations are applied with `wg set` (today's path, and --no-inject).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { createLogger } from '../src/common/log.js';
import { Listener, type HeldPacket } from '../src/reconfig/listener.js';
import { Admission } from '../src/reconfig/admission.js';
import { waitFor } from '../scripts/lab/netns.js';
import { normalizeOptions } from '../src/reconfig/options.js';
import { CLOCK_SKEW_ALLOWANCE_MS, Watermarks } from '../src/reconfig/replay.js';
import { publicKeyOf } from '../src/wireguard/keys.js';
import { timestampFromDate } from '../src/wireguard/tai64n.js';
import { FakeWg } from './helpers/fake-wg.js';
import { createInitiation } from '../scripts/lab/initiator.js';
import { PORT, R2, b64, events, initiationFrom, keyText, newKey, rawUdpFrame, rig } from './helpers/listener-rig.js';

test('a genuine initiation from a new address points that peer there and triggers a send', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  await r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000));
  t.deepEqual(r.wg.sets, [
    ['peer', b64(r.peers[0]!), 'endpoint', '198.51.100.7:40000', 'persistent-keepalive', '1'],
    ['peer', b64(r.peers[0]!), 'persistent-keepalive', 'off'],
  ]);
  t.is(r.wg.peers[0]!.endpoint, '198.51.100.7:40000');
  t.is(r.wg.peers[0]!.keepalive, 0, 'the peer keeps its own keepalive setting');
  const [updated] = events(r, 'endpoint.updated');
  t.like(updated, { interface: 'wg0', peer: b64(r.peers[0]!), to: '198.51.100.7:40000' });
});

test('a peer with its own keepalive gets it back after the off-to-on edge', async (t) => {
  const r = await rig({ keepalive: 25 });
  t.teardown(r.close);
  await r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000));
  t.deepEqual(r.wg.sets.map((s) => s.slice(2)), [
    ['endpoint', '198.51.100.7:40000', 'persistent-keepalive', 'off'],
    ['persistent-keepalive', '25'],
  ]);
  t.is(r.wg.peers[0]!.keepalive, 25);
});

test('an initiation from the current endpoint changes nothing', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  r.wg.peers[0]!.endpoint = '198.51.100.7:40000';
  await r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000));
  t.deepEqual(r.wg.sets, []);
  t.is(r.listener.accepted, 1);
});

test('an IPv6 source becomes a bracketed endpoint', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  const payload = createInitiation({ initiatorPrivateKey: r.peers[0]!, responderPublicKey: publicKeyOf(r.r2) });
  await r.feed(rawUdpFrame({ src: '2001:db8:1::7', dst: '2001:db8::1', srcPort: 5000, dstPort: PORT, payload }));
  t.is(r.wg.peers[0]!.endpoint, '[2001:db8:1::7]:5000');
});

test('a replayed initiation from another address is refused, and so is an older one', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  const payload = createInitiation({ initiatorPrivateKey: r.peers[0]!, responderPublicKey: publicKeyOf(r.r2) });
  await r.feed(rawUdpFrame({ src: '198.51.100.7', dst: R2, srcPort: 40000, dstPort: PORT, payload }));
  await r.feed(rawUdpFrame({ src: '203.0.113.66', dst: R2, srcPort: 666, dstPort: PORT, payload }));
  await r.feed(initiationFrom(r, r.peers[0]!, '203.0.113.66', 667, new Date(Date.now() - 60_000)));
  t.is(r.wg.peers[0]!.endpoint, '198.51.100.7:40000');
  t.is(r.listener.ignored.get('replay'), 2);
});

test('the replay watermark survives a restart through the state file', async (t) => {
  const first = await rig();
  t.teardown(first.close);
  // The initiation's own timestamp, fixed here: the checks below do not depend on how long the
  // test takes to run.
  const sentAt = new Date();
  await first.feed(initiationFrom(first, first.peers[0]!, '198.51.100.7', 40000, sentAt));
  await first.listener.stop();
  const marks = Watermarks.load(join(first.dir, 'state.json'), 'wg0');
  t.is(marks.size, 1);
  const peer = b64(first.peers[0]!);
  t.false(marks.isFresh(peer, timestampFromDate(sentAt)), 'the same initiation again is a replay');
  t.false(marks.isFresh(peer, timestampFromDate(new Date(sentAt.getTime() - 1000))), 'an older one too');
  t.true(marks.isFresh(peer, timestampFromDate(new Date(sentAt.getTime() + 1000))), 'a newer one is fresh');
  t.throws(() => Watermarks.load(join(first.dir, 'state.json'), 'wg1'), { message: /belongs to interface wg0/ });
});

test('the watermark is written off the event loop, and wg set waits until it is on disk', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  const durable = r.watermarks.durable.bind(r.watermarks);
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  r.watermarks.durable = async () => {
    await held;
    await durable();
  };
  const fed = r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.deepEqual(r.wg.sets, [], 'no wg set before the watermark is on disk');
  release();
  await fed;
  t.is(r.wg.peers[0]!.endpoint, '198.51.100.7:40000');
  const marks = Watermarks.load(join(r.dir, 'state.json'), 'wg0');
  t.is(marks.size, 1, 'the file has the watermark');
});

test('watermarks raised while a write runs are written together next; a write that fails is told and the next one tried', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const marks = Watermarks.load(join(dir, 'state.json'), 'wg0');
  const failures: string[] = [];
  marks.onWriteError = (error) => failures.push(error.message);
  const base = Date.now();
  const at = (s: number): Buffer => timestampFromDate(new Date(base + s * 1000));
  marks.advance('a', at(1));
  marks.advance('b', at(2));
  marks.advance('a', at(3));
  await marks.durable();
  const written = Watermarks.load(join(dir, 'state.json'), 'wg0');
  t.false(written.isFresh('a', at(3)), 'the newest of a is on disk');
  t.false(written.isFresh('b', at(2)));
  // A directory where the file should be: the write fails, is told, and durable() still resolves.
  const stuck = Watermarks.load(join(dir, 'stuck.json'), 'wg0');
  stuck.onWriteError = (error) => failures.push(error.message);
  mkdirSync(join(dir, 'stuck.json'));
  stuck.advance('a', at(4));
  await stuck.durable();
  t.is(failures.length, 1, failures.join('; '));
  t.regex(failures[0] ?? '', /Cannot write state file .*stuck\.json/);
});

test('with no state file (a reboot on tmpfs), an initiation older than the start less the allowance is refused; a newer one is accepted', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  const old = new Date(Date.now() - CLOCK_SKEW_ALLOWANCE_MS - 60_000);
  await r.feed(initiationFrom(r, r.peers[0]!, '203.0.113.66', 666, old));
  t.is(r.listener.ignored.get('replay'), 1, 'captured before the daemon started: refused');
  t.not(r.wg.peers[0]!.endpoint, '203.0.113.66:666');
  await r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000, new Date(Date.now() - CLOCK_SKEW_ALLOWANCE_MS / 2)));
  t.is(r.wg.peers[0]!.endpoint, '198.51.100.7:40000', 'a peer whose clock lags within the allowance gets through');
});

test('a state file someone else could have planted or changed is refused, never read', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const real = join(dir, 'real.json');
  writeFileSync(real, JSON.stringify({ version: 1, interface: 'wg0', timestamps: {} }), { mode: 0o600 });
  t.is(Watermarks.load(real, 'wg0').size, 0, 'our own file is read');
  const link = join(dir, 'link.json');
  symlinkSync(real, link);
  t.throws(() => Watermarks.load(link, 'wg0'), { message: /link\.json: it is a symbolic link.*--state-file/ });
  chmodSync(real, 0o666);
  t.throws(() => Watermarks.load(real, 'wg0'), { message: /others may write it/ });
});

test('the floor is the start time less the allowance, and it holds whatever the state file says', (t) => {
  const startedAt = new Date('2026-11-23T12:00:00Z');
  const marks = Watermarks.load(join(tmpdir(), `rwg-floor-${process.pid}-none.json`), 'wg0', startedAt);
  const at = (ms: number): Buffer => timestampFromDate(new Date(startedAt.getTime() + ms));
  t.deepEqual(marks.floor, at(-CLOCK_SKEW_ALLOWANCE_MS));
  t.false(marks.isFresh('peer', at(-CLOCK_SKEW_ALLOWANCE_MS)));
  t.false(marks.isFresh('peer', at(-CLOCK_SKEW_ALLOWANCE_MS - 1000)));
  t.true(marks.isFresh('peer', at(-CLOCK_SKEW_ALLOWANCE_MS + 1000)));
  t.true(marks.isFresh('peer', at(0)));
});

test('a key that is not a peer is counted as unknown-peer, and wg is re-read at most once per interval', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  const stranger = newKey();
  const dumpsBefore = r.wg.calls.filter((c) => c[2] === 'dump').length;
  await r.feed(initiationFrom(r, stranger, '203.0.113.66', 666));
  await r.feed(initiationFrom(r, stranger, '203.0.113.66', 667));
  await r.feed(initiationFrom(r, stranger, '203.0.113.66', 668));
  t.is(r.listener.ignored.get('unknown-peer'), 3);
  t.is(r.wg.calls.filter((c) => c[2] === 'dump').length - dumpsBefore, 1);
  t.deepEqual(r.wg.sets, []);
});

test('a peer added after start is found by re-reading wg', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  const late = newKey();
  r.wg.peers.push({ publicKey: b64(late), keepalive: 0 });
  await r.feed(initiationFrom(r, late, '198.51.100.9', 40001));
  t.is(r.wg.peers[1]!.endpoint, '198.51.100.9:40001');
});

test('only the peer that sent the initiation is touched', async (t) => {
  const r = await rig({ peers: 3 });
  t.teardown(r.close);
  r.wg.peers[0]!.endpoint = '198.51.100.1:1';
  r.wg.peers[2]!.endpoint = '198.51.100.3:3';
  await r.feed(initiationFrom(r, r.peers[1]!, '198.51.100.2', 2222));
  t.deepEqual(r.wg.peers.map((p) => p.endpoint), ['198.51.100.1:1', '198.51.100.2:2222', '198.51.100.3:3']);
  t.true(r.wg.sets.every((s) => s[1] === b64(r.peers[1]!)));
});

test('tampered, foreign and malformed packets are counted by reason and change nothing', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  const good = createInitiation({ initiatorPrivateKey: r.peers[0]!, responderPublicKey: publicKeyOf(r.r2) });
  const tampered = Buffer.from(good);
  tampered[50] = tampered[50]! ^ 0x80;
  const otherServer = createInitiation({ initiatorPrivateKey: r.peers[0]!, responderPublicKey: publicKeyOf(newKey()) });
  const frame = (payload: Buffer, dstPort = PORT): Buffer => rawUdpFrame({ src: '203.0.113.66', dst: R2, srcPort: 666, dstPort, payload });
  await r.feed(frame(tampered));
  await r.feed(frame(otherServer));
  await r.feed(frame(good.subarray(0, 100)));
  await r.feed(frame(good, 9999));
  await r.feed(Buffer.from([0x45, 0, 0]));
  await r.feed(Buffer.alloc(0));
  t.is(r.listener.ignored.get('bad-mac1'), 2);
  t.is(r.listener.ignored.get('bad-size'), 1);
  t.is(r.listener.ignored.get('wrong-port'), 1);
  t.is([...r.listener.ignored.values()].reduce((a, b) => a + b, 0), 6);
  t.deepEqual(r.wg.sets, []);
  t.true(events(r, 'initiation.ignored').every((e) => typeof e.reason === 'string'));
});

test('--dry-run logs the change and makes none', async (t) => {
  const r = await rig({ dryRun: true });
  t.teardown(r.close);
  await r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000));
  t.deepEqual(r.wg.sets, []);
  t.like(events(r, 'endpoint.updated')[0], { dryRun: true, to: '198.51.100.7:40000' });
});

test('when the listen port changes, the capture filter follows it', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  r.wg.listenPort = 51999;
  await r.listener.refresh('test');
  t.is(r.openedFilters.length, 2);
  t.regex(r.openedFilters[1]!, /51999/);
  t.notRegex(r.openedFilters[1]!, /51820/);
});

test('the interface private key never reaches the log', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  await r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000));
  r.wg.exists = false;
  await r.listener.refresh('test');
  const all = r.log.join('\n');
  t.true(r.log.length > 2);
  t.false(all.includes(keyText(r.r2)));
});

test('an interface without a private key is a clear configuration error', async (t) => {
  const wg = new FakeWg('wg0', '(none)', '(none)', PORT, []);
  const listener = new Listener({
    logger: createLogger({ name: 'test', format: 'json', level: 'silent' }),
    options: { ...normalizeOptions({ interface: 'wg0' }), interface: 'wg0' },
    watermarks: Watermarks.load(join(tmpdir(), `rwg-none-${process.pid}.json`), 'wg0'),
    openCapture: () => {
      throw new Error('must not capture without a key');
    },
    run: wg.run,
  });
  const error = await t.throwsAsync(listener.start(), { message: /Interface wg0 has no private key.*wg set wg0 private-key FILE/ });
  t.like(error, { code: 'E_NO_PRIVATE_KEY', exitCode: 2 });
});

test('random and mutated frames never throw; only the genuine payload moves an endpoint, and only once (seeded)', async (t) => {
  const r = await rig({ peers: 2 });
  t.teardown(r.close);
  const genuine = initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes)),
        fc.array(fc.record({ index: fc.nat({ max: genuine.length - 1 }), mask: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 4 }).map((edits) => {
          const frame = Buffer.from(genuine);
          for (const { index, mask } of edits) frame[index] = frame[index]! ^ mask;
          return frame;
        }),
      ),
      async (frame) => {
        await r.feed(frame);
      },
    ),
    { seed: 42, numRuns: 1500 },
  );
  // A flip in the IP or UDP header (addresses, ports, checksum) keeps the payload genuine; the
  // first such frame legitimately moves the endpoint and every later copy is a replay.
  const moved = r.wg.sets.filter((s) => s[2] === 'endpoint');
  t.true(moved.length <= 1, `endpoint moved ${moved.length} times`);
  t.true(moved.every((s) => s[1] === b64(r.peers[0]!)));
  t.true((r.listener.ignored.get('replay') ?? 0) + (r.listener.ignored.get('bad-mac1') ?? 0) > 0);
});

test('a flood of mac1-valid initiations from one source is rate-limited before the Noise work; other sources still get through', async (t) => {
  let now = 0; // the policy's clock: the flood arrives within one instant
  const r = await rig({ admission: new Admission<HeldPacket>({}, () => now) });
  t.teardown(r.close);
  const stranger = newKey();
  const frames = Array.from({ length: 100 }, (_, i) => initiationFrom(r, stranger, '203.0.113.66', 1000 + i));
  for (const frame of frames) await r.feed(frame);
  const counters = r.listener.counters();
  t.true((counters['rate-limited'] ?? 0) >= 50, JSON.stringify(counters));
  t.true((counters['unknown-peer'] ?? 0) <= 50);
  // A second later the genuine one waits for its turn (a drain tick), then goes through.
  now += 1000;
  await r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000));
  t.true(await waitFor(() => r.wg.peers[0]!.endpoint === '198.51.100.7:40000', 2000));
});

test('junk is screened in the capture buffer: bad mac1 and wrong sizes are counted and never decoded', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  const genuine = initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000);
  const badMac = Buffer.from(genuine);
  badMac[badMac.length - 20]! ^= 1; // inside mac1
  await r.feed(badMac);
  const short = rawUdpFrame({ src: '198.51.100.7', dst: R2, srcPort: 40000, dstPort: PORT, payload: Buffer.from([1, ...Buffer.alloc(99)]) });
  await r.feed(short);
  t.like(r.listener.counters(), { 'bad-mac1': 1, 'bad-size': 1, authentic: 0, accepted: 0 });
  await r.feed(genuine);
  t.like(r.listener.counters(), { authentic: 1, accepted: 1, updated: 1 });
});

test('accepted counts only initiations that were carried out: a failing wg leaves them authentic only', async (t) => {
  const r = await rig();
  t.teardown(r.close);
  r.wg.failSet = true;
  await r.feed(initiationFrom(r, r.peers[0]!, '198.51.100.7', 40000));
  t.like(r.listener.counters(), { authentic: 1, accepted: 0, updated: 0 });
});
