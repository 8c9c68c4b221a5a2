/**
 * UDP header (RFC 768). `buf` ends where the IP packet ends, so the length field is checked
 * against the real datagram and never reaches into link-layer padding.
 */
import { fail, ok, type Result } from '../common/result.js';

export type UdpReason = 'truncated' | 'bad-udp';

export interface UdpHeader {
  readonly srcPort: number;
  readonly dstPort: number;
  /** header and payload, from the length field */
  readonly length: number;
  readonly payloadOffset: number;
  readonly payloadEnd: number;
}

const HEADER_LENGTH = 8;
const DST_PORT_OFFSET = 2;
const LENGTH_OFFSET = 4;

export function decodeUdp(buf: Buffer, offset: number): Result<UdpHeader, UdpReason> {
  if (buf.length < offset + HEADER_LENGTH) return fail('truncated');
  const length = buf.readUInt16BE(offset + LENGTH_OFFSET);
  // Shorter than the IP payload is legal (the rest is ignored, as Linux does); longer is not.
  if (length < HEADER_LENGTH || buf.length < offset + length) return fail('bad-udp');
  return ok({
    srcPort: buf.readUInt16BE(offset),
    dstPort: buf.readUInt16BE(offset + DST_PORT_OFFSET),
    length,
    payloadOffset: offset + HEADER_LENGTH,
    payloadEnd: offset + length,
  });
}
