/**
 * The capture keeper's drop counter: growth is logged, rate-limited, and the totals survive a
 * reopen (a new capture's counters start at zero). Captures here are stand-ins with counters
 * the test sets; the real libpcap counters are read by the e2e tests.
 */
import test from 'ava';
import { CaptureKeeper, DROP_LOG_EVERY_MS, MAX_OVERLAP_SEEN, OVERLAP_MS } from '../src/net/capture-keeper.js';
import { CapturePace } from '../src/net/capture-pace.js';
import type { Capture, CaptureStats } from '../src/net/capture.js';
import { memoryLogger } from './helpers/memory-logger.js';

function rig(): { keeper: CaptureKeeper; counters: CaptureStats[]; events: ReturnType<typeof memoryLogger>['events'] } {
  const { logger, events } = memoryLogger();
  const counters: CaptureStats[] = [];
  const keeper = new CaptureKeeper({
    logger,
    device: 'any',
    dropCheckMs: 20,
    onFrame: () => undefined,
    onOpen: () => undefined,
    openCapture: (): Capture => {
      const index = counters.push({ received: 0, dropped: 0 }) - 1;
      return { link: 'sll', device: 'any', close: () => undefined, stats: () => counters[index]! };
    },
  });
  return { keeper, counters, events };
}

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('drops are logged when they grow, at most once per interval, with totals across reopens', async (t) => {
  const { keeper, counters, events } = rig();
  t.teardown(() => keeper.stop());
  keeper.open('udp');
  await tick(100);
  t.is(events('capture.drops').length, 0, 'nothing dropped, nothing logged');
  counters[0] = { received: 1000, dropped: 40 };
  await tick(100);
  t.like(events('capture.drops')[0], { dropped: 40, received: 1000, since: 40, device: 'any' });
  counters[0] = { received: 2000, dropped: 90 };
  await tick(100);
  t.is(events('capture.drops').length, 1, `rate-limited to one line per ${DROP_LOG_EVERY_MS} ms`);
  keeper.reopen('udp and port 1');
  counters[1] = { received: 10, dropped: 5 };
  t.deepEqual(keeper.stats(), { received: 2010, dropped: 95 });
});

test('with a pace, a busy capture is swapped for one in blocks and back, each swap with an overlap that passes a frame once', async (t) => {
  const { logger, events } = memoryLogger();
  const opened: { timeoutMs: number; filter: string; closed: boolean; stats: CaptureStats; send: (frame: Buffer) => void }[] = [];
  const passed: string[] = [];
  const pace = new CapturePace({ batchTimeoutMs: 10, batchAbovePerSecond: 500, immediateBelowPerSecond: 100, quietForMs: 200 });
  const keeper = new CaptureKeeper({
    logger,
    device: 'any',
    pace,
    paceCheckMs: 20,
    onFrame: (frame) => passed.push(frame.toString()),
    onOpen: () => undefined,
    openCapture: (options): Capture => {
      const entry = {
        timeoutMs: options.bufferTimeoutMs ?? 0,
        filter: options.filter,
        closed: false,
        stats: { received: 0, dropped: 0 },
        send: (frame: Buffer) => {
          if (!entry.closed) options.onFrame(frame, 0, 1);
        },
      };
      opened.push(entry);
      return { link: 'sll', device: 'any', close: () => void (entry.closed = true), stats: () => entry.stats };
    },
  });
  t.teardown(() => keeper.stop());
  keeper.open('udp');
  t.is(opened[0]!.timeoutMs, 0, 'opened in immediate mode');
  await tick(60);
  t.is(opened.length, 1, 'quiet: no swap');

  // a flood: far more than 500 a second
  opened[0]!.stats = { received: 5000, dropped: 0 };
  await tick(40);
  t.is(opened.length, 2, 'swapped once');
  t.like(opened[1], { timeoutMs: 10, filter: 'udp', closed: false });
  t.false(opened[0]!.closed, 'the immediate capture stays for the overlap');
  t.like(events('capture.mode')[0], { mode: 'batch', device: 'any' });
  opened[0]!.send(Buffer.from('one'));
  opened[1]!.send(Buffer.from('one'));
  opened[1]!.send(Buffer.from('two'));
  t.deepEqual(passed, ['one', 'two'], 'a frame both captures saw is passed on once');
  await tick(OVERLAP_MS + 60);
  t.true(opened[0]!.closed, 'the immediate capture is closed after the overlap');

  // quiet again (the counters no longer grow): back to immediate mode after the quiet spell
  await tick(400);
  t.is(opened.length, 3);
  t.like(opened[2], { timeoutMs: 0, filter: 'udp' });
  t.like(events('capture.mode')[1], { mode: 'immediate' });
  await tick(OVERLAP_MS + 80);
  t.true(opened[1]!.closed, 'the capture in blocks is closed after its overlap and last block');
  t.false(opened[2]!.closed);
  t.is(keeper.stats().received, 5000, 'totals kept across the swaps');

  // a filter update keeps the mode; a reopen too
  keeper.replace('udp and port 2');
  t.like(opened[3], { timeoutMs: 0, filter: 'udp and port 2' });
  t.is(opened.length, 4, 'no other swap');
});

test('a filter swap is no burst to the pace: what a retiring capture counted stays in the totals while it retires', async (t) => {
  const { logger, events } = memoryLogger();
  const opened: { timeoutMs: number; stats: CaptureStats }[] = [];
  const pace = new CapturePace({ batchTimeoutMs: 10, batchAbovePerSecond: 500, immediateBelowPerSecond: 100, quietForMs: 200 });
  const keeper = new CaptureKeeper({
    logger,
    device: 'any',
    pace,
    paceCheckMs: 20,
    onFrame: () => undefined,
    onOpen: () => undefined,
    openCapture: (options): Capture => {
      const entry = { timeoutMs: options.bufferTimeoutMs ?? 0, stats: { received: 0, dropped: 0 } };
      opened.push(entry);
      return { link: 'sll', device: 'any', close: () => undefined, stats: () => entry.stats };
    },
  });
  t.teardown(() => keeper.stop());
  // a long-lived capture that has seen 10,000 packets over its life, none lately
  keeper.open('udp');
  opened[0]!.stats = { received: 10_000, dropped: 0 };
  await tick(60);
  keeper.replace('udp and port 2');
  t.is(keeper.stats().received, 10_000, 'the retiring capture still counts');
  // its ring fills during the overlap while its successor takes the same packets: no loss
  opened[0]!.stats = { received: 12_000, dropped: 500 };
  opened[1]!.stats = { received: 2, dropped: 0 };
  t.deepEqual(keeper.stats(), { received: 10_002, dropped: 0 });
  await tick(OVERLAP_MS + 100);
  t.deepEqual(keeper.stats(), { received: 10_002, dropped: 0 });
  t.is(events('capture.mode').length, 0, 'still immediate');
  t.deepEqual(opened.map((o) => o.timeoutMs), [0, 0]);
});

test('the frames remembered during an overlap have a fixed ceiling: past it, frames are passed on unchecked', (t) => {
  const { logger } = memoryLogger();
  const sends: ((frame: Buffer) => void)[] = [];
  let passed = 0;
  const keeper = new CaptureKeeper({
    logger,
    device: 'any',
    onFrame: () => void passed++,
    onOpen: () => undefined,
    openCapture: (options): Capture => {
      sends.push((frame) => options.onFrame(frame, 0, 1));
      return { link: 'sll', device: 'any', close: () => undefined, stats: () => ({ received: 0, dropped: 0 }) };
    },
  });
  t.teardown(() => keeper.stop());
  keeper.open('udp');
  keeper.replace('udp and port 2');
  const frame = (i: number): Buffer => Buffer.from(`frame ${i}`);
  for (let i = 0; i < MAX_OVERLAP_SEEN; i++) sends[0]!(frame(i));
  sends[1]!(frame(0));
  t.is(passed, MAX_OVERLAP_SEEN, 'remembered ones are passed on once');
  sends[0]!(frame(MAX_OVERLAP_SEEN));
  sends[1]!(frame(MAX_OVERLAP_SEEN));
  t.is(passed, MAX_OVERLAP_SEEN + 2, 'past the ceiling nothing more is remembered');
});
