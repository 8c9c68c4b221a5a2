/**
 * capture → decode → detect, and the daemon around it, with a stand-in capture that replays
 * real recorded traceroute probes and fails on demand (the e2e tests use the real capture).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { readPcapFile } from '../scripts/lab/pcapfile.js';
import { waitFor } from '../scripts/lab/netns.js';
import { ReconfigError } from '../src/common/errors.js';
import type { Logger } from '../src/common/log.js';
import { startKnock } from '../src/knock/daemon.js';
import { KnockDetector, type Knock } from '../src/knock/detector.js';
import { KnockListener } from '../src/knock/listener.js';
import { normalizeOptions } from '../src/knock/options.js';
import { SCREEN_PASS, type Capture, type CaptureOptions } from '../src/net/capture.js';
import { memoryLogger } from './helpers/memory-logger.js';


const frames = (name: string): Buffer[] => readPcapFile(readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url))).frames;

/** Opens "captures" that deliver what the test feeds them, and fail when told to. */
class FakeCaptures {
  readonly opened: CaptureOptions[] = [];
  closed = 0;
  /** how many of the next opens throw */
  failOpens = 0;

  readonly open = (options: CaptureOptions): Capture => {
    if (this.failOpens > 0) {
      this.failOpens--;
      throw new ReconfigError('E_NO_DEVICE', `No capture device ${options.device}.`);
    }
    this.opened.push(options);
    return { link: 'ethernet', device: options.device, close: () => void this.closed++, stats: () => ({ received: 0, dropped: 0 }) };
  };

  get current(): CaptureOptions {
    const last = this.opened.at(-1);
    if (last === undefined) throw new Error('no capture open');
    return last;
  }

  feed(frame: Buffer): void {
    this.current.onFrame(frame, Date.now(), SCREEN_PASS);
  }

  fail(message: string): void {
    this.current.onError?.(new Error(message));
  }
}

function listener(captures: FakeCaptures, logger: Logger, knocks: Knock[]): KnockListener {
  return new KnockListener({
    logger,
    device: 'wan',
    basePort: 19000,
    range: 100,
    detector: new KnockDetector({ basePort: 19000, range: 100, windowMs: 6000 }),
    openCapture: captures.open,
    onKnock: (knock) => knocks.push(knock),
    retryMs: [20, 40],
  });
}

test('the capture is opened with the knock filter for the range, and its probes become one knock per traceroute', (t) => {
  const captures = new FakeCaptures();
  const log = memoryLogger();
  const knocks: Knock[] = [];
  const l = listener(captures, log.logger, knocks);
  l.start();
  t.is(captures.current.device, 'wan');
  t.is(typeof captures.current.filter, 'string');
  t.like(log.events('listening')[0], { device: 'wan', link: 'ethernet', basePort: 19000, range: 100 });
  for (const frame of [...frames('knock-udp4.pcap'), ...frames('knock-udp6.pcap'), ...frames('knock-tcp4.pcap')]) captures.feed(frame);
  t.deepEqual(knocks.map((k) => `${k.proto}/${k.family} ${k.src}`), ['udp/4 192.0.2.10', 'udp/6 2001:db8:100::10']);
  t.like(l.counters(), { knocks: 2, probes: 9, ttl: 9, 'same-traceroute': 7 });
  l.stop();
});

test('a frame that does not decode is counted, not thrown', (t) => {
  const captures = new FakeCaptures();
  const log = memoryLogger();
  const l = listener(captures, log.logger, []);
  l.start();
  t.notThrows(() => captures.feed(Buffer.from([1, 2, 3])));
  t.is(Object.values(l.counters()).reduce((a, b) => a + b, 0), 1);
  l.stop();
});

test('when the capture fails it is reopened with backoff, logged, and knocks are seen again', async (t) => {
  const captures = new FakeCaptures();
  const log = memoryLogger();
  const knocks: Knock[] = [];
  const l = listener(captures, log.logger, knocks);
  l.start();
  captures.failOpens = 2;
  captures.fail('The interface went down');
  t.true(await waitFor(() => captures.opened.length === 2, 2000));
  t.deepEqual(log.events('error').map((e) => [e.code, e.retryMs]), [['E_CAPTURE', 20], ['E_NO_DEVICE', 40], ['E_NO_DEVICE', 40]]);
  t.like(log.events('listening')[1], { reopened: true });
  captures.feed(frames('knock-udp4.pcap')[0]!);
  t.is(knocks.length, 1);
  l.stop();
});

test('stop cancels a pending reopen', async (t) => {
  const captures = new FakeCaptures();
  const l = listener(captures, memoryLogger().logger, []);
  l.start();
  captures.fail('gone');
  l.stop();
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.is(captures.opened.length, 1);
});

test('the daemon holds its pid file while it runs, turns knocks into actions, and removes it when stopped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'knock-daemon-'));
  try {
    const pidFile = join(dir, 'knock.pid');
    const captures = new FakeCaptures();
    const log = memoryLogger();
    const options = normalizeOptions({ command: 'notify {src} {port}', dryRun: true, pidFile });
    const daemon = await startKnock(options, { logger: log.logger, openCapture: captures.open, signals: false });
    t.is(readFileSync(pidFile, 'utf8').trim(), String(process.pid));
    t.like(log.events('started')[0], { action: 'command', argv: ['notify', '{src}', '{port}'], cooldownS: 10, dryRun: true });
    for (const frame of frames('knock-udp6.pcap')) captures.feed(frame);
    t.like(log.events('knock')[0], { src: '2001:db8:100::10', port: 19003, proto: 'udp', family: 6, ttl: 1, action: 'command', argv: ['notify', '2001:db8:100::10', '19003'], dryRun: true });
    t.is(await daemon.stop(), 0);
    t.is(await daemon.done, 0);
    t.false(existsSync(pidFile));
    t.is(captures.closed, 1);
    t.like(log.events('stopped')[0], { counters: { knocks: 1, probes: 3, runs: 0 } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a daemon whose capture cannot open gives the error back and leaves no pid file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'knock-daemon-'));
  try {
    const pidFile = join(dir, 'knock.pid');
    const captures = new FakeCaptures();
    captures.failOpens = 1;
    const options = normalizeOptions({ command: 'true', pidFile, device: 'nosuchdev0' });
    const error = await t.throwsAsync(startKnock(options, { logger: memoryLogger().logger, openCapture: captures.open, signals: false }));
    t.is((error as ReconfigError).code, 'E_NO_DEVICE');
    t.false(existsSync(pidFile));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a flood of ignored probes, and a capture that keeps failing, are a bounded number of lines with the rest counted', async (t) => {
  const captures = new FakeCaptures();
  const log = memoryLogger();
  const l = new KnockListener({
    logger: log.logger,
    device: 'wan',
    basePort: 19000,
    range: 100,
    detector: new KnockDetector({ basePort: 19000, range: 100, windowMs: 6000 }),
    openCapture: captures.open,
    onKnock: () => undefined,
    retryMs: [1],
  });
  l.start();
  const probe = frames('knock-udp4.pcap')[0]!;
  for (let i = 0; i < 5000; i++) captures.feed(probe);
  t.like(l.counters(), { knocks: 1, 'same-traceroute': 4999 });
  const ignored = log.events('probe.ignored');
  t.true(ignored.length <= 20, `${ignored.length} probe.ignored lines for 4999 ignored probes`);
  // a device that fails again at every reopen, every millisecond
  captures.failOpens = 1_000_000;
  captures.fail('The interface went down');
  await new Promise((resolve) => setTimeout(resolve, 300));
  l.stop();
  const errors = log.events('error');
  t.true(errors.length <= 20, `${errors.length} error lines`);
  const summaries = log.events('log.suppressed');
  t.truthy(summaries.find((s) => s.key === 'probe.ignored.same-traceroute'), 'the ignored probes held back are counted');
  t.truthy(summaries.find((s) => s.key === 'capture.failed'), 'so are the failures');
  const told = (key: string): number => [...ignored, ...summaries.filter((s) => s.key === key)].reduce((sum, line) => sum + (typeof line.suppressed === 'number' ? line.suppressed : 0), 0);
  t.is(ignored.length + told('probe.ignored.same-traceroute'), 4999);
});
