/**
 * Hand-built raw-IP frames (LINKTYPE_RAW: the frame starts at the IP header) for unit tests.
 * Checksums are left zero: the decoders do not verify them, as the kernel already has.
 */
import { isIPv6 } from 'node:net';

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(Number.parseInt(g, 16), i * 2));
  return out;
}

export interface UdpFrame {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  ttl?: number;
  payload: Buffer;
}

export function rawUdpFrame(f: UdpFrame): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(f.srcPort, 0);
  udp.writeUInt16BE(f.dstPort, 2);
  udp.writeUInt16BE(8 + f.payload.length, 4);
  if (isIPv6(f.src)) {
    const ip = Buffer.alloc(40);
    ip.writeUInt32BE(0x60000000, 0);
    ip.writeUInt16BE(8 + f.payload.length, 4);
    ip[6] = 17;
    ip[7] = f.ttl ?? 64;
    ipv6Bytes(f.src).copy(ip, 8);
    ipv6Bytes(f.dst).copy(ip, 24);
    return Buffer.concat([ip, udp, f.payload]);
  }
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + f.payload.length, 2);
  ip[8] = f.ttl ?? 64;
  ip[9] = 17;
  Buffer.from(f.src.split('.').map(Number)).copy(ip, 12);
  Buffer.from(f.dst.split('.').map(Number)).copy(ip, 16);
  return Buffer.concat([ip, udp, f.payload]);
}
