import test from 'ava';
import { compareTimestamps, timestampFromDate, timestampToDate } from '../src/wireguard/tai64n.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

test('the Unix epoch is TAI64 label 0x400000000000000a with zero nanoseconds', (t) => {
  t.is(hex(timestampFromDate(new Date(0))), '400000000000000a00000000');
});

test('a known date encodes seconds and nanoseconds big-endian', (t) => {
  // 1700000000 = 0x6553f100 seconds, 123 ms = 0x0754d4c0 ns.
  const stamp = timestampFromDate(new Date('2023-11-14T22:13:20.123Z'));
  t.is(hex(stamp), '400000006553f10a0754d4c0');
});

test('a date before the epoch keeps nanoseconds positive, as Go time does', (t) => {
  const stamp = timestampFromDate(new Date('1969-12-31T23:59:59.500Z'));
  t.is(hex(stamp), '40000000000000091dcd6500');
});

test('an invalid Date is refused', (t) => {
  t.throws(() => timestampFromDate(new Date(Number.NaN)), { instanceOf: RangeError });
});

test('timestamps decode back to the date they were made from', (t) => {
  const date = new Date('2031-05-06T07:08:09.010Z');
  const decoded = timestampToDate(timestampFromDate(date));
  t.true(decoded.ok && decoded.value.getTime() === date.getTime());
});

test('decoding refuses a wrong length, nanoseconds past one second, and dates out of range', (t) => {
  t.deepEqual(timestampToDate(Buffer.alloc(11)), { ok: false, reason: 'bad-timestamp' });
  const tooManyNanos = Buffer.from('400000006553f10a3b9aca00', 'hex');
  t.deepEqual(timestampToDate(tooManyNanos), { ok: false, reason: 'bad-timestamp' });
  t.deepEqual(timestampToDate(Buffer.alloc(12, 0xff)), { ok: false, reason: 'bad-timestamp' });
  t.deepEqual(timestampToDate(Buffer.alloc(12, 0)), { ok: false, reason: 'bad-timestamp' });
});

test('later timestamps compare greater, byte by byte', (t) => {
  const earlier = timestampFromDate(new Date('2024-01-01T00:00:00.999Z'));
  const later = timestampFromDate(new Date('2024-01-01T00:00:01.000Z'));
  t.is(compareTimestamps(earlier, later), -1);
  t.is(compareTimestamps(later, earlier), 1);
  t.is(compareTimestamps(later, Buffer.from(later)), 0);
  // Seconds dominate nanoseconds: the top byte decides before any later byte is looked at.
  const laterSecond = Buffer.from('40000000000000010000000a', 'hex');
  const moreNanos = Buffer.from('4000000000000000ffffffff', 'hex');
  t.is(compareTimestamps(laterSecond, moreNanos), 1);
});
