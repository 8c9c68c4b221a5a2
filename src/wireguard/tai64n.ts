/**
 * TAI64N timestamps as carried in handshake initiations (paper §5.1, §5.4.2): 8 bytes of
 * big-endian seconds with the TAI64 offset, then 4 bytes of big-endian nanoseconds. A responder
 * only accepts a timestamp greater than the last one seen from that peer (replay protection),
 * so byte order is the only comparison that matters.
 */
import { fail, ok, type Result } from '../common/result.js';
import { TIMESTAMP_SIZE } from './constants.js';

/** 2^62 + 10: TAI64 label of the Unix epoch, as wireguard-go's tai64n package uses it. */
const TAI64_BASE = 0x400000000000000an;
const NANOS_PER_SECOND = 1_000_000_000;

/** -1, 0 or 1 as `a` sorts before, equal to or after `b`, byte by byte (memcmp). */
export function compareTimestamps(a: Uint8Array, b: Uint8Array): -1 | 0 | 1 {
  const order = Buffer.compare(a, b);
  return order < 0 ? -1 : order > 0 ? 1 : 0;
}

export function timestampFromDate(date: Date): Buffer {
  const millis = date.getTime();
  if (!Number.isFinite(millis)) throw new RangeError('invalid Date');
  const seconds = Math.floor(millis / 1000);
  const nanos = (millis - seconds * 1000) * 1_000_000;
  const stamp = Buffer.alloc(TIMESTAMP_SIZE);
  stamp.writeBigUInt64BE(TAI64_BASE + BigInt(seconds), 0);
  stamp.writeUInt32BE(nanos, 8);
  return stamp;
}

/** Fails on a wrong length, nanoseconds out of range, or a time a Date cannot hold. */
export function timestampToDate(stamp: Uint8Array): Result<Date, 'bad-timestamp'> {
  if (stamp.length !== TIMESTAMP_SIZE) return fail('bad-timestamp');
  const view = Buffer.from(stamp.buffer, stamp.byteOffset, stamp.byteLength);
  const seconds = Number(view.readBigUInt64BE(0) - TAI64_BASE);
  const nanos = view.readUInt32BE(8);
  if (nanos >= NANOS_PER_SECOND) return fail('bad-timestamp');
  const date = new Date(seconds * 1000 + Math.floor(nanos / 1_000_000));
  return Number.isNaN(date.getTime()) ? fail('bad-timestamp') : ok(date);
}
