/**
 * The rate-limited log: per key, a burst and then a few lines a second; what is held back is
 * counted and said, on the next line that gets through or in a summary line. A fake clock.
 */
import test from 'ava';
import { BURST, LINES_PER_SECOND, LogLimiter } from '../src/common/log-limit.js';
import { memoryLogger } from './helpers/memory-logger.js';

class FakeClock {
  ms = 0;
  readonly now = (): number => this.ms;
  readonly wall = (): number => Date.parse('2026-12-01T00:00:00.000Z') + this.ms;
}

function limiter(level: 'debug' | 'info' = 'debug') {
  const clock = new FakeClock();
  const log = memoryLogger(level);
  return { clock, log, limit: new LogLimiter(log.logger, { now: clock.now, wallClock: clock.wall, summaryAfterMs: 0 }) };
}

test('a flood of one event writes its burst, then a few lines a second, each saying how many were held back since when', (t) => {
  const { clock, log, limit } = limiter();
  // 10,000 lines in 10 s
  for (let i = 0; i < 10_000; i++) {
    clock.ms = i;
    limit.log('info', 'knock.cooldown', { event: 'knock', n: i }, `knock ${i}`);
  }
  const lines = log.events('knock');
  t.true(lines.length <= BURST + 10 * LINES_PER_SECOND + 1, `${lines.length} lines`);
  t.true(lines.length >= BURST + 10 * LINES_PER_SECOND - 1);
  t.deepEqual(lines.slice(0, BURST).map((l) => l.n), [...Array(BURST).keys()], 'the burst goes out as it came');
  const next = lines[BURST]!;
  t.is(next.suppressed, (next.n as number) - BURST, 'the next line says how many were held back');
  t.is(next.suppressedSince, '2026-12-01T00:00:00.010Z');
  t.regex(String(next.msg), /^knock \d+ \(\d+ more suppressed since 2026-12-01T00:00:00\.010Z\)$/);
  limit.stop();
  const written = lines.length;
  const told = lines.reduce((sum, l) => sum + (typeof l.suppressed === 'number' ? l.suppressed : 0), 0) + log.events('log.suppressed').reduce((sum, l) => sum + (l.suppressed as number), 0);
  t.is(written + told, 10_000, 'every line is either written or counted');
});

test('lines held back by a key that then goes quiet are summarised once its bucket has room, and at stop', (t) => {
  const { clock, log, limit } = limiter();
  for (let i = 0; i < BURST + 5; i++) limit.log('warn', 'capture.failed', { event: 'error' }, 'failed');
  t.is(log.events('error').length, BURST);
  limit.flush();
  t.is(log.events('log.suppressed').length, 0, 'no room yet: nothing');
  clock.ms = 1000;
  limit.flush();
  t.like(log.events('log.suppressed'), [{ key: 'capture.failed', suppressed: 5, since: '2026-12-01T00:00:00.000Z', level: 40 }]);
  limit.flush();
  t.is(log.events('log.suppressed').length, 1, 'said once');
  // one token left after the summary (a second refilled LINES_PER_SECOND): one line, 49 held back
  for (let i = 0; i < 50; i++) limit.log('warn', 'capture.failed', { event: 'error' }, 'failed');
  t.is(log.events('error').length, BURST + LINES_PER_SECOND - 1);
  limit.stop();
  t.like(log.events('log.suppressed')[1], { key: 'capture.failed', suppressed: 50 - (LINES_PER_SECOND - 1), since: '2026-12-01T00:00:01.000Z' });
});

test("keys are limited apart: one event's flood does not hold back another's lines", (t) => {
  const { log, limit } = limiter();
  for (let i = 0; i < 1000; i++) limit.log('debug', 'probe.ignored.same-traceroute', { event: 'probe.ignored' }, 'ignored');
  t.true(limit.log('info', 'knock.command', { event: 'knock', action: 'command' }, 'knock'));
  t.is(log.events('knock').length, 1);
  t.is(log.events('probe.ignored').length, BURST);
});

test('a level the logger does not write costs no token and counts nothing', (t) => {
  const { log, limit } = limiter('info');
  for (let i = 0; i < 1000; i++) t.false(limit.log('debug', 'probe.ignored.ttl', { event: 'probe.ignored' }, 'ignored'));
  limit.stop();
  t.deepEqual(log.lines, []);
});

test('keys beyond the table share one bucket: many keys cannot grow memory or the log', (t) => {
  const clock = new FakeClock();
  const log = memoryLogger();
  const limit = new LogLimiter(log.logger, { now: clock.now, maxKeys: 4, summaryAfterMs: 0 });
  for (let i = 0; i < 1000; i++) limit.log('info', `event.${i}`, { event: 'e' }, 'line');
  t.is(log.events('e').length, 4 + BURST, 'four keys of their own (one line each), the rest one bucket');
});
