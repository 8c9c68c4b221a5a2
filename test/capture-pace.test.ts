/**
 * The capture's pace: immediate mode while the link is quiet, blocks under load, and back only
 * after a quiet spell, with the rates between the two thresholds changing nothing.
 */
import test from 'ava';
import { CapturePace } from '../src/net/capture-pace.js';

const options = { batchTimeoutMs: 10, batchAbovePerSecond: 500, immediateBelowPerSecond: 100, quietForMs: 5000 };

/** Feeds `perSecond` for `seconds`, one observation a second, from where `at` left off. */
function feed(pace: CapturePace, state: { received: number; at: number }, perSecond: number, seconds: number): string[] {
  const modes: string[] = [];
  for (let i = 0; i < seconds; i++) {
    state.received += perSecond;
    state.at += 1000;
    modes.push(pace.observe(state.received, state.at));
  }
  return modes;
}

test('a quiet capture is in immediate mode, with no buffer timeout', (t) => {
  const pace = new CapturePace(options);
  const state = { received: 0, at: 0 };
  pace.observe(0, 0);
  t.deepEqual(feed(pace, state, 20, 10), Array(10).fill('immediate'));
  t.is(pace.bufferTimeoutMs, 0);
});

test('one measurement at the batch rate switches to blocks at once', (t) => {
  const pace = new CapturePace(options);
  const state = { received: 0, at: 0 };
  pace.observe(0, 0);
  t.deepEqual(feed(pace, state, 499, 3), ['immediate', 'immediate', 'immediate']);
  t.deepEqual(feed(pace, state, 500, 1), ['batch']);
  t.is(pace.bufferTimeoutMs, 10);
  t.is(pace.perSecond, 500);
});

test('blocks stay until the rate has been under the quiet rate for the whole quiet spell', (t) => {
  const pace = new CapturePace(options);
  const state = { received: 0, at: 0 };
  pace.observe(0, 0);
  feed(pace, state, 10_000, 2);
  // between the thresholds: no switch either way, however long
  t.deepEqual(feed(pace, state, 300, 20), Array(20).fill('batch'));
  // quiet for 4 s, one busier second, then quiet again: the spell starts over
  t.deepEqual(feed(pace, state, 50, 4), Array(4).fill('batch'));
  t.deepEqual(feed(pace, state, 150, 1), ['batch']);
  t.deepEqual(feed(pace, state, 50, 5), ['batch', 'batch', 'batch', 'batch', 'immediate']);
  t.is(pace.bufferTimeoutMs, 0);
});

test('a sender that toggles its rate gets at most one pair of switches per quiet spell', (t) => {
  const pace = new CapturePace(options);
  const state = { received: 0, at: 0 };
  pace.observe(0, 0);
  let switches = 0;
  let mode: string = pace.mode;
  for (let i = 0; i < 60; i++) {
    for (const now of feed(pace, state, i % 2 === 0 ? 5000 : 0, 1)) {
      if (now !== mode) switches++;
      mode = now;
    }
  }
  t.is(switches, 1, 'in blocks from the first busy second on');
});

test('a total that goes down, or time that does not advance, starts the measurement afresh', (t) => {
  const pace = new CapturePace(options);
  pace.observe(1_000_000, 0);
  t.is(pace.observe(10, 1000), 'immediate', 'a capture lost with its figures is no negative rate');
  t.is(pace.observe(10_000, 1000), 'immediate', 'no division by zero');
  t.is(pace.observe(20_000, 2000), 'batch');
});

test('thresholds the wrong way round are refused', (t) => {
  t.throws(() => new CapturePace({ ...options, immediateBelowPerSecond: 600 }), { instanceOf: RangeError });
});
