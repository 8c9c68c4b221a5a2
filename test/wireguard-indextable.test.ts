/**
 * R2's session indices as WireGuard keeps them: a pending handshake apart from the current,
 * previous and next keypairs, on a clock of our own.
 */
import test from 'ava';
import { REKEY_TIMEOUT_MS, REJECT_AFTER_TIME_MS } from '../src/wireguard/constants.js';
import { IndexTable, RETRY_WINDOW_MS } from '../src/wireguard/indextable.js';

const R1 = 'R1';

test('unanswered initiations R2 sends every REKEY_TIMEOUT replace only each other, never the live session', (t) => {
  const table = new IndexTable();
  table.learnSent('response', 0x100, R1, 0); // R1 initiated; R2 answered: the live session
  for (let i = 1; i <= 3; i++) table.learnSent('initiation', 0x200 + i, R1, i * REKEY_TIMEOUT_MS);
  const at = 3 * REKEY_TIMEOUT_MS + 1;
  t.is(table.lookup(0x100, at), R1, 'the live index survives three retries to a stale endpoint');
  t.is(table.lookup(0x203, at), R1, 'the newest handshake is pending');
  t.is(table.lookup(0x201, at), undefined, 'an unanswered retry is gone');
  t.is(table.lookup(0x202, at), undefined);
  t.deepEqual(table.slots(R1), { next: 0x100, pending: 0x203 });
});

test('an initiation answered long before the next one became the current keypair; the one before it is previous', (t) => {
  const table = new IndexTable();
  table.learnSent('initiation', 0x1, R1, 0);
  table.learnSent('initiation', 0x2, R1, 120_000); // rekey: 0x1 was answered
  table.learnSent('initiation', 0x3, R1, 240_000); // rekey again: 0x2 was answered
  t.deepEqual(table.slots(R1), { previous: 0x1, current: 0x2, pending: 0x3 });
  table.learnSent('initiation', 0x4, R1, 360_000);
  t.deepEqual(table.slots(R1), { previous: 0x2, current: 0x3, pending: 0x4 }, 'the oldest keypair goes');
  t.is(table.lookup(0x1, 360_000), undefined);
});

test('a response repeated within the retry window replaces the unused one; after it, the old one was confirmed', (t) => {
  const table = new IndexTable();
  table.learnSent('response', 0x10, R1, 0);
  table.learnSent('response', 0x11, R1, REKEY_TIMEOUT_MS); // R1 retried: 0x10 was never used
  t.deepEqual(table.slots(R1), { next: 0x11 });
  table.learnSent('response', 0x12, R1, REKEY_TIMEOUT_MS + RETRY_WINDOW_MS + 120_000);
  t.deepEqual(table.slots(R1), { current: 0x11, next: 0x12 });
});

test('responding replaces R2\'s own handshake in progress', (t) => {
  const table = new IndexTable();
  table.learnSent('initiation', 0x20, R1, 0);
  table.learnSent('response', 0x21, R1, 100);
  t.deepEqual(table.slots(R1), { next: 0x21 });
});

test('indices live REJECT_AFTER_TIME after their handshake, are kept per peer, and are restored in their slots', (t) => {
  const table = new IndexTable();
  table.learnSent('response', 0x30, R1, 0);
  table.learnSent('response', 0x40, 'R3', 0);
  t.is(table.lookup(0x30, REJECT_AFTER_TIME_MS), R1);
  t.is(table.lookup(0x30, REJECT_AFTER_TIME_MS + 1), undefined);
  t.is(table.lookup(0x40, 10), 'R3');
  table.retainPeers(new Set([R1]));
  t.is(table.lookup(0x40, 10), undefined, 'a peer no longer configured is forgotten');

  const left = new IndexTable();
  left.learnSent('initiation', 0x1, R1, 0);
  left.learnSent('initiation', 0x2, R1, 120_000);
  left.learnSent('response', 0x3, R1, 130_000);
  const successor = new IndexTable();
  for (const entry of left.live(130_000)) successor.restore(entry.index, entry.peer, entry.learnedAt, entry.slot);
  t.deepEqual(successor.slots(R1), left.slots(R1));
});
