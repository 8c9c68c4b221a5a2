/**
 * The Internet checksum (RFC 1071): the IPv4 header checksum (RFC 791) and the UDP checksum over
 * the IPv4 (RFC 768) and IPv6 (RFC 8200 §8.1) pseudo-headers. Pure, over Buffers; odd lengths
 * are padded with a zero octet as the RFCs say.
 */
import { fail, ok, type Result } from '../common/result.js';

const PROTOCOL_UDP = 17;
const IPV4_HEADER_LENGTH = 20;
const IPV4_CHECKSUM_OFFSET = 10;
const IPV4_PROTOCOL_OFFSET = 9;
const IPV4_SRC_OFFSET = 12;
const IPV6_HEADER_LENGTH = 40;
const IPV6_NEXT_HEADER_OFFSET = 6;
const IPV6_SRC_OFFSET = 8;
const UDP_HEADER_LENGTH = 8;
export const UDP_CHECKSUM_OFFSET = 6;

/** The 16-bit one's-complement sum of buf[start, end), added to `sum`, not yet folded. */
export function sum16(buf: Buffer, start: number, end: number, sum = 0): number {
  let total = sum;
  let at = start;
  for (; at + 1 < end; at += 2) total += (buf[at]! << 8) | buf[at + 1]!;
  if (at < end) total += buf[at]! << 8;
  return total;
}

/** Folds carries back in and complements: the value that goes into the header. */
export function finish(sum: number): number {
  let folded = sum;
  while (folded > 0xffff) folded = (folded & 0xffff) + Math.floor(folded / 0x10000);
  return ~folded & 0xffff;
}

/** RFC 1071 over the whole buffer. */
export function internetChecksum(buf: Buffer): number {
  return finish(sum16(buf, 0, buf.length));
}

/** The checksum of a 20-octet IPv4 header at `offset`, its own checksum field counted as zero. */
export function ipv4HeaderChecksum(header: Buffer, offset = 0): number {
  const sum = sum16(header, offset, offset + IPV4_CHECKSUM_OFFSET) + sum16(header, offset + IPV4_CHECKSUM_OFFSET + 2, offset + IPV4_HEADER_LENGTH);
  return finish(sum);
}

/**
 * The UDP checksum of `segment` (header and payload, its checksum field counted as zero) between
 * `src` and `dst` (4 or 16 octets each). A computed 0 is sent as 0xffff: 0 means "none" in IPv4
 * (RFC 768) and is invalid in IPv6 (RFC 8200 §8.1).
 */
export function udpChecksum(src: Buffer, dst: Buffer, segment: Buffer): number {
  // Pseudo-header: addresses, then the protocol and the UDP length (the IPv6 form spreads the
  // same numbers over 32-bit fields, which sums to the same value).
  let sum = sum16(src, 0, src.length) + sum16(dst, 0, dst.length) + PROTOCOL_UDP + segment.length;
  sum = sum16(segment, 0, UDP_CHECKSUM_OFFSET, sum);
  sum = sum16(segment, UDP_CHECKSUM_OFFSET + 2, segment.length, sum);
  const checksum = finish(sum);
  return checksum === 0 ? 0xffff : checksum;
}

export type ChecksumReason = 'truncated' | 'not-udp' | 'bad-ip-checksum' | 'bad-udp-checksum' | 'no-udp-checksum';

/**
 * Verifies a whole IPv4 (20-octet header) or IPv6 (no extension headers) packet carrying UDP:
 * the IPv4 header checksum and the UDP checksum, the way a receiver does. Tests use it.
 */
export function verifyUdpChecksum(packet: Buffer): Result<true, ChecksumReason> {
  const version = packet.length > 0 ? packet[0]! >> 4 : 0;
  let src: Buffer;
  let dst: Buffer;
  let segment: Buffer;
  if (version === 4) {
    if (packet.length < IPV4_HEADER_LENGTH + UDP_HEADER_LENGTH || (packet[0]! & 0x0f) !== 5) return fail('truncated');
    if (packet[IPV4_PROTOCOL_OFFSET] !== PROTOCOL_UDP) return fail('not-udp');
    if (finish(sum16(packet, 0, IPV4_HEADER_LENGTH)) !== 0) return fail('bad-ip-checksum');
    const total = packet.readUInt16BE(2);
    if (total > packet.length || total < IPV4_HEADER_LENGTH + UDP_HEADER_LENGTH) return fail('truncated');
    src = packet.subarray(IPV4_SRC_OFFSET, IPV4_SRC_OFFSET + 4);
    dst = packet.subarray(IPV4_SRC_OFFSET + 4, IPV4_SRC_OFFSET + 8);
    segment = packet.subarray(IPV4_HEADER_LENGTH, total);
  } else if (version === 6) {
    if (packet.length < IPV6_HEADER_LENGTH + UDP_HEADER_LENGTH) return fail('truncated');
    if (packet[IPV6_NEXT_HEADER_OFFSET] !== PROTOCOL_UDP) return fail('not-udp');
    const end = IPV6_HEADER_LENGTH + packet.readUInt16BE(4);
    if (end > packet.length) return fail('truncated');
    src = packet.subarray(IPV6_SRC_OFFSET, IPV6_SRC_OFFSET + 16);
    dst = packet.subarray(IPV6_SRC_OFFSET + 16, IPV6_SRC_OFFSET + 32);
    segment = packet.subarray(IPV6_HEADER_LENGTH, end);
  } else {
    return fail('truncated');
  }
  if (segment.length < UDP_HEADER_LENGTH || segment.readUInt16BE(4) !== segment.length) return fail('truncated');
  if (segment.readUInt16BE(UDP_CHECKSUM_OFFSET) === 0) return fail('no-udp-checksum');
  // A receiver sums everything, the checksum field included: the result must be all ones.
  const sum = sum16(segment, 0, segment.length, sum16(src, 0, src.length) + sum16(dst, 0, dst.length) + PROTOCOL_UDP + segment.length);
  return finish(sum) === 0 ? ok(true) : fail('bad-udp-checksum');
}
