/**
 * The capture keeper's drop counter: growth is logged, rate-limited, and the totals survive a
 * reopen (a new capture's counters start at zero). Captures here are stand-ins with counters
 * the test sets; the real libpcap counters are read by the e2e tests.
 */
import test from 'ava';
import { CaptureKeeper, DROP_LOG_EVERY_MS } from '../src/net/capture-keeper.js';
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
