/**
 * Hand-built frames for the src/net tests: IP packets with UDP or TCP inside, wrapped in every
 * link layer, and capture files that hold them. Checksums stay zero: nothing here checks them.
 */
import { isIPv6 } from 'node:net';
import { captureFileHeader } from '../../src/net/capture.js';
import type { LinkType } from '../../src/net/packet.js';

export function addressBytes(address: string): Buffer {
  if (!isIPv6(address)) return Buffer.from(address.split('.').map(Number));
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = address.includes('::') && tail !== '' ? tail.split(':') : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(Number.parseInt(group, 16), i * 2));
  return out;
}

export function udp(srcPort: number, dstPort: number, payload: Buffer, length = 8 + payload.length): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16BE(srcPort, 0);
  header.writeUInt16BE(dstPort, 2);
  header.writeUInt16BE(length, 4);
  return Buffer.concat([header, payload]);
}

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const ACK = 0x10;

export function tcp(srcPort: number, dstPort: number, flags: number, payload: Buffer = Buffer.alloc(0), options: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(20 + options.length);
  header.writeUInt16BE(srcPort, 0);
  header.writeUInt16BE(dstPort, 2);
  header.writeUInt32BE(1000, 4);
  header[12] = ((20 + options.length) / 4) << 4;
  header[13] = flags;
  header.writeUInt16BE(64240, 14);
  options.copy(header, 20);
  return Buffer.concat([header, payload]);
}

export interface Ipv4Options {
  src?: string;
  dst?: string;
  ttl?: number;
  protocol?: number;
  /** flags and fragment offset word (RFC 791): 0x4000 DF, 0x2000 MF, low 13 bits offset */
  flags?: number;
  /** header options, a multiple of 4 bytes */
  options?: Buffer;
}

export function ipv4(transport: Buffer, o: Ipv4Options = {}): Buffer {
  const options = o.options ?? Buffer.alloc(0);
  const header = Buffer.alloc(20 + options.length);
  header[0] = 0x40 | ((20 + options.length) / 4);
  header.writeUInt16BE(header.length + transport.length, 2);
  header.writeUInt16BE(o.flags ?? 0x4000, 6);
  header[8] = o.ttl ?? 64;
  header[9] = o.protocol ?? 17;
  addressBytes(o.src ?? '192.0.2.10').copy(header, 12);
  addressBytes(o.dst ?? '198.51.100.1').copy(header, 16);
  options.copy(header, 20);
  return Buffer.concat([header, transport]);
}

export interface Extension {
  /** 0 hop-by-hop, 43 routing, 44 fragment, 60 destination options */
  type: number;
  /** 8-octet units beyond the first 8 */
  units?: number;
}

export interface Ipv6Options {
  src?: string;
  dst?: string;
  hopLimit?: number;
  protocol?: number;
  extensions?: Extension[];
}

export function ipv6(transport: Buffer, o: Ipv6Options = {}): Buffer {
  const extensions = o.extensions ?? [];
  const chain = [...extensions.map((e) => e.type), o.protocol ?? 17];
  const blocks = extensions.map((e, i) => {
    const block = Buffer.alloc(((e.units ?? 0) + 1) * 8);
    block[0] = chain[i + 1] ?? 59;
    block[1] = e.units ?? 0;
    return block;
  });
  const body = Buffer.concat([...blocks, transport]);
  const header = Buffer.alloc(40);
  header.writeUInt32BE(0x60000000, 0);
  header.writeUInt16BE(body.length, 4);
  header[6] = chain[0] ?? 59;
  header[7] = o.hopLimit ?? 64;
  addressBytes(o.src ?? '2001:db8::10').copy(header, 8);
  addressBytes(o.dst ?? '2001:db8::1').copy(header, 24);
  return Buffer.concat([header, body]);
}

const ETHERTYPE: Record<4 | 6, number> = { 4: 0x0800, 6: 0x86dd };

function familyOf(packet: Buffer): 4 | 6 {
  return (packet[0] ?? 0) >> 4 === 6 ? 6 : 4;
}

export interface VlanTag {
  tpid: number;
  id: number;
}

export function ethernet(packet: Buffer, vlans: VlanTag[] = [], etherType = ETHERTYPE[familyOf(packet)], addresses?: { dst: Buffer; src: Buffer }): Buffer {
  const macs = addresses === undefined ? Buffer.from('020000000001020000000002', 'hex') : Buffer.concat([addresses.dst, addresses.src]);
  const tags = vlans.map((tag) => {
    const b = Buffer.alloc(4);
    b.writeUInt16BE(tag.tpid, 0);
    b.writeUInt16BE(tag.id, 2);
    return b;
  });
  const type = Buffer.alloc(2);
  type.writeUInt16BE(etherType);
  const frame = Buffer.concat([macs, ...tags, type, packet]);
  // Ethernet pads short frames to 60 bytes; the IP length says where the packet ends.
  return frame.length < 60 ? Buffer.concat([frame, Buffer.alloc(60 - frame.length)]) : frame;
}

/** Linux packet types (linux/if_packet.h) and link types (ARPHRD_*) for cooked headers. */
export const PACKET_HOST = 0;
export const PACKET_OUTGOING = 4;
export const ARPHRD_ETHER = 1;
export const ARPHRD_LOOPBACK = 772;

export function sll(packet: Buffer, protocol = ETHERTYPE[familyOf(packet)], pktType = PACKET_HOST, hatype = ARPHRD_ETHER): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt16BE(pktType, 0);
  header.writeUInt16BE(hatype, 2);
  header.writeUInt16BE(6, 4);
  Buffer.from('020000000001', 'hex').copy(header, 6);
  header.writeUInt16BE(protocol, 14);
  return Buffer.concat([header, packet]);
}

export function sll2(packet: Buffer, protocol = ETHERTYPE[familyOf(packet)], pktType = PACKET_HOST, hatype = ARPHRD_ETHER): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt16BE(protocol, 0);
  header.writeUInt32BE(hatype === ARPHRD_LOOPBACK ? 1 : 2, 4); // ifindex
  header.writeUInt16BE(hatype, 8);
  header[10] = pktType;
  header[11] = 6;
  Buffer.from('020000000001', 'hex').copy(header, 12);
  return Buffer.concat([header, packet]);
}

/** BSD loopback, written as a little-endian host would (FreeBSD's AF_INET6 is 28). */
export function nullLink(packet: Buffer, family = familyOf(packet) === 6 ? 28 : 2, bigEndian = false): Buffer {
  const header = Buffer.alloc(4);
  if (bigEndian) header.writeUInt32BE(family);
  else header.writeUInt32LE(family);
  return Buffer.concat([header, packet]);
}

/** A cooked (SLL) frame with VLAN tags where libpcap re-inserts them: at the protocol field. */
export function sllTagged(packet: Buffer, vlans: VlanTag[]): Buffer {
  const plain = sll(packet);
  const tags = vlans.map((tag) => {
    const b = Buffer.alloc(4);
    b.writeUInt16BE(tag.tpid, 0);
    b.writeUInt16BE(tag.id, 2);
    return b;
  });
  if (tags.length === 0) return plain;
  // header up to the protocol field, the tags, then the original protocol and the packet
  return Buffer.concat([plain.subarray(0, 14), ...tags, plain.subarray(14)]);
}

export const WRAP: Record<LinkType, (packet: Buffer) => Buffer> = {
  ethernet: (packet) => ethernet(packet),
  sll: (packet) => sll(packet),
  sll2: (packet) => sll2(packet),
  raw: (packet) => packet,
  null: (packet) => nullLink(packet),
};

export const LINK_TYPES: readonly LinkType[] = ['ethernet', 'sll', 'sll2', 'raw', 'null'];

/** A libpcap capture file holding `frames`, one second apart. */
export function captureFile(link: LinkType, frames: readonly Buffer[]): Buffer {
  const records = frames.map((frame, i) => {
    const header = Buffer.alloc(16);
    header.writeUInt32LE(1_700_000_000 + i, 0);
    header.writeUInt32LE(0, 4);
    header.writeUInt32LE(frame.length, 8);
    header.writeUInt32LE(frame.length, 12);
    return Buffer.concat([header, frame]);
  });
  return Buffer.concat([captureFileHeader(link), ...records]);
}

/** A WireGuard handshake initiation's shape: type 1, three reserved zeros, 148 bytes in all. */
export function initiationLike(type = 1, length = 148): Buffer {
  const message = Buffer.alloc(length, 0xab);
  message.writeUInt32LE(type, 0);
  return message;
}
