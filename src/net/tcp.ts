/**
 * TCP header (RFC 9293 §3.1): ports, control bits and where the payload starts. `buf` ends
 * where the IP packet ends.
 */
import { fail, ok, type Result } from '../common/result.js';

export type TcpReason = 'truncated' | 'bad-tcp';

/** Control bits as they sit in octet 13 of the header. */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export interface TcpHeader {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly flags: number;
  /** header length in bytes, options included */
  readonly headerLength: number;
  readonly payloadOffset: number;
}

const MIN_HEADER_LENGTH = 20;
const DST_PORT_OFFSET = 2;
const DATA_OFFSET_OFFSET = 12;
const FLAGS_OFFSET = 13;

export function decodeTcp(buf: Buffer, offset: number): Result<TcpHeader, TcpReason> {
  if (buf.length < offset + MIN_HEADER_LENGTH) return fail('truncated');
  const headerLength = ((buf[offset + DATA_OFFSET_OFFSET] ?? 0) >> 4) * 4;
  if (headerLength < MIN_HEADER_LENGTH || buf.length < offset + headerLength) return fail('bad-tcp');
  return ok({
    srcPort: buf.readUInt16BE(offset),
    dstPort: buf.readUInt16BE(offset + DST_PORT_OFFSET),
    flags: buf[offset + FLAGS_OFFSET] ?? 0,
    headerLength,
    payloadOffset: offset + headerLength,
  });
}
