import test from 'ava';
import { VerifyBudget } from '../src/reconfig/budget.js';

const options = { globalPerSecond: 10, globalBurst: 20, sourcePerSecond: 1, sourceBurst: 3, maxSources: 2 };

function clocked(): { budget: VerifyBudget; advance(ms: number): void } {
  let now = 0;
  return { budget: new VerifyBudget(options, () => now), advance: (ms) => void (now += ms) };
}

const takes = (budget: VerifyBudget, source: string, n: number): number => Array.from({ length: n }, () => budget.take(source)).filter(Boolean).length;

test('one source gets its burst, then its sustained rate', (t) => {
  const { budget, advance } = clocked();
  t.is(takes(budget, '192.0.2.66', 10), 3);
  advance(1000);
  t.is(takes(budget, '192.0.2.66', 10), 1);
  advance(500);
  t.is(takes(budget, '192.0.2.66', 1), 0);
});

test('a flooding source does not use up another source\'s budget', (t) => {
  const { budget } = clocked();
  takes(budget, '192.0.2.66', 100);
  t.true(budget.take('198.51.100.7'));
});

test('many sources together are held to the overall budget', (t) => {
  const { budget, advance } = clocked();
  const sources = Array.from({ length: 50 }, (_, i) => `203.0.113.${i}`);
  t.is(sources.filter((s) => budget.take(s)).length, 20);
  advance(1000);
  t.is(sources.filter((s) => budget.take(s)).length, 10);
});

test('the sources remembered are bounded; a forgotten one starts again with its burst', (t) => {
  const { budget } = clocked();
  t.is(takes(budget, 'a', 5), 3);
  takes(budget, 'b', 1);
  takes(budget, 'c', 1); // 'a' is the least recent: forgotten
  t.is(takes(budget, 'a', 5), 3);
});
