/**
 * IPv4 header (RFC 791 §3.1).
 */
import { fail, ok, type Result } from '../common/result.js';

export type Ipv4Reason = 'truncated' | 'bad-ipv4' | 'fragment';

export interface Ipv4Header {
  readonly src: string;
  readonly dst: string;
  readonly ttl: number;
  readonly protocol: number;
  /** MF set: this is the first fragment of a larger datagram */
  readonly moreFragments: boolean;
  /** offset of the transport header */
  readonly payloadOffset: number;
  /** where the packet ends by its total length; Ethernet may pad the frame beyond it */
  readonly end: number;
}

const MIN_HEADER_LENGTH = 20;
const VERSION = 4;
const TOTAL_LENGTH_OFFSET = 2;
const FLAGS_OFFSET = 6;
const MORE_FRAGMENTS = 0x2000;
const FRAGMENT_OFFSET_MASK = 0x1fff;
const TTL_OFFSET = 8;
const PROTOCOL_OFFSET = 9;
const SRC_OFFSET = 12;
const DST_OFFSET = 16;

export function formatIpv4(buf: Buffer, at: number): string {
  return `${buf[at] ?? 0}.${buf[at + 1] ?? 0}.${buf[at + 2] ?? 0}.${buf[at + 3] ?? 0}`;
}

export function decodeIpv4(buf: Buffer, offset: number): Result<Ipv4Header, Ipv4Reason> {
  if (buf.length < offset + MIN_HEADER_LENGTH) return fail('truncated');
  const first = buf[offset] ?? 0;
  const headerLength = (first & 0x0f) * 4;
  const totalLength = buf.readUInt16BE(offset + TOTAL_LENGTH_OFFSET);
  if (first >> 4 !== VERSION || headerLength < MIN_HEADER_LENGTH || totalLength < headerLength) return fail('bad-ipv4');
  if (buf.length < offset + totalLength) return fail('truncated');
  const flags = buf.readUInt16BE(offset + FLAGS_OFFSET);
  // A later fragment carries no transport header, only bytes from the middle of a datagram.
  if ((flags & FRAGMENT_OFFSET_MASK) !== 0) return fail('fragment');
  return ok({
    src: formatIpv4(buf, offset + SRC_OFFSET),
    dst: formatIpv4(buf, offset + DST_OFFSET),
    ttl: buf[offset + TTL_OFFSET] ?? 0,
    protocol: buf[offset + PROTOCOL_OFFSET] ?? 0,
    moreFragments: (flags & MORE_FRAGMENTS) !== 0,
    payloadOffset: offset + headerLength,
    end: offset + totalLength,
  });
}
