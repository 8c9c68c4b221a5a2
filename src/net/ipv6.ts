/**
 * IPv6 header (RFC 8200 §3), stepping over the extension headers that may come before the
 * transport header (§4): hop-by-hop options, routing, destination options. A fragment header
 * (§4.5) is a reason, not a step: the transport header may be in another fragment.
 */
import { fail, ok, type Result } from '../common/result.js';

export type Ipv6Reason = 'truncated' | 'bad-ipv6' | 'fragment';

export interface Ipv6Header {
  readonly src: string;
  readonly dst: string;
  readonly hopLimit: number;
  /** the upper-layer protocol, after any extension headers */
  readonly protocol: number;
  /** how many extension headers were stepped over */
  readonly extensionHeaders: number;
  readonly payloadOffset: number;
  /** where the packet ends by its payload length; Ethernet may pad the frame beyond it */
  readonly end: number;
}

const HEADER_LENGTH = 40;
const VERSION = 6;
const PAYLOAD_LENGTH_OFFSET = 4;
const NEXT_HEADER_OFFSET = 6;
const HOP_LIMIT_OFFSET = 7;
const SRC_OFFSET = 8;
const DST_OFFSET = 24;
const HOP_BY_HOP = 0;
const ROUTING = 43;
const FRAGMENT = 44;
const DESTINATION_OPTIONS = 60;
const SKIPPED: ReadonlySet<number> = new Set([HOP_BY_HOP, ROUTING, DESTINATION_OPTIONS]);
/** Bounds the walk: RFC 8200 §4.1 allows four of these kinds in one packet (destination options twice). */
const MAX_EXTENSION_HEADERS = 8;
/** Hdr Ext Len counts 8-octet units beyond the first 8 (§4.3, §4.4, §4.6). */
const EXTENSION_UNIT = 8;

/** RFC 5952 §4: lower case, no leading zeros, the first longest run of 2+ zero groups as `::`. */
export function formatIpv6(buf: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + i * 2));
  let runStart = -1;
  let runLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > runLength) {
      runStart = i;
      runLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (runStart < 0) return hex.join(':');
  return `${hex.slice(0, runStart).join(':')}::${hex.slice(runStart + runLength).join(':')}`;
}

export function decodeIpv6(buf: Buffer, offset: number): Result<Ipv6Header, Ipv6Reason> {
  if (buf.length < offset + HEADER_LENGTH) return fail('truncated');
  if ((buf[offset] ?? 0) >> 4 !== VERSION) return fail('bad-ipv6');
  const end = offset + HEADER_LENGTH + buf.readUInt16BE(offset + PAYLOAD_LENGTH_OFFSET);
  if (buf.length < end) return fail('truncated');
  let protocol = buf[offset + NEXT_HEADER_OFFSET] ?? 0;
  let at = offset + HEADER_LENGTH;
  let extensionHeaders = 0;
  while (SKIPPED.has(protocol)) {
    // The payload length already fits the buffer, so a header past it is a lie, not a cut.
    if (extensionHeaders === MAX_EXTENSION_HEADERS || end < at + EXTENSION_UNIT) return fail('bad-ipv6');
    protocol = buf[at] ?? 0;
    at += ((buf[at + 1] ?? 0) + 1) * EXTENSION_UNIT;
    extensionHeaders++;
  }
  if (protocol === FRAGMENT) return fail('fragment');
  if (at > end) return fail('bad-ipv6');
  return ok({
    src: formatIpv6(buf, offset + SRC_OFFSET),
    dst: formatIpv6(buf, offset + DST_OFFSET),
    hopLimit: buf[offset + HOP_LIMIT_OFFSET] ?? 0,
    protocol,
    extensionHeaders,
    payloadOffset: at,
    end,
  });
}
