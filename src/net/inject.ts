/**
 * The one module that opens raw sockets. A vouched-for packet is re-sent to R2's own address
 * with its original source kept: a locally sent packet to a local address loops back through
 * `lo` with its route attached, so strict reverse-path filtering never sees it, and WireGuard
 * receives it as if it came from the original source. The packet is built afresh (never the
 * captured bytes): captured packets may carry a partial checksum from offload, and the kernel
 * silently drops UDP with a bad one.
 */
import { ReconfigError } from '../common/errors.js';
import { fail, ok, type Result } from '../common/result.js';
import { addressBytes } from './address.js';
import { UDP_CHECKSUM_OFFSET, ipv4HeaderChecksum, udpChecksum } from './checksum.js';
import { BUILD_HINT, errnoName, errnoText, loadNativeSockets, type NativeSockets } from './native.js';

export interface UdpTuple {
  readonly family: 4 | 6;
  readonly src: string;
  readonly srcPort: number;
  readonly dst: string;
  readonly dstPort: number;
}

const PROTOCOL_UDP = 17;
const IPV4_HEADER_LENGTH = 20;
const IPV6_HEADER_LENGTH = 40;
const UDP_HEADER_LENGTH = 8;
/** The Linux default for both (net.ipv4.ip_default_ttl, net.ipv6.conf.*.hop_limit). */
const TTL = 64;
const IPV4_VERSION_IHL = 0x45;
/** Don't Fragment (RFC 791): the packet goes only over `lo`. */
const IPV4_FLAGS_DF = 0x4000;
const IPV6_VERSION = 0x60000000;
const MAX_IPV4_PAYLOAD = 0xffff - IPV4_HEADER_LENGTH - UDP_HEADER_LENGTH;
const MAX_IPV6_PAYLOAD = 0xffff - UDP_HEADER_LENGTH;

export type BuildReason = 'bad-family' | 'bad-src' | 'bad-dst' | 'bad-port' | 'too-long';

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 0xffff;
}

/** buildUdpPacket as a Result: why a tuple cannot make a packet, instead of an exception. */
export function encodeUdpPacket(tuple: UdpTuple, payload: Buffer): Result<Buffer, BuildReason> {
  const { family } = tuple;
  if (family !== 4 && family !== 6) return fail('bad-family');
  const src = addressBytes(family, tuple.src);
  if (src === undefined) return fail('bad-src');
  const dst = addressBytes(family, tuple.dst);
  if (dst === undefined) return fail('bad-dst');
  if (!validPort(tuple.srcPort) || !validPort(tuple.dstPort)) return fail('bad-port');
  if (payload.length > (family === 4 ? MAX_IPV4_PAYLOAD : MAX_IPV6_PAYLOAD)) return fail('too-long');

  const headerLength = family === 4 ? IPV4_HEADER_LENGTH : IPV6_HEADER_LENGTH;
  const udpLength = UDP_HEADER_LENGTH + payload.length;
  const packet = Buffer.alloc(headerLength + udpLength);
  if (family === 4) {
    packet[0] = IPV4_VERSION_IHL;
    packet.writeUInt16BE(packet.length, 2);
    // Identification 0: with DF set it is never used for reassembly (RFC 6864 §4.1).
    packet.writeUInt16BE(IPV4_FLAGS_DF, 6);
    packet[8] = TTL;
    packet[9] = PROTOCOL_UDP;
    src.copy(packet, 12);
    dst.copy(packet, 16);
    packet.writeUInt16BE(ipv4HeaderChecksum(packet), 10);
  } else {
    packet.writeUInt32BE(IPV6_VERSION, 0);
    packet.writeUInt16BE(udpLength, 4);
    packet[6] = PROTOCOL_UDP;
    packet[7] = TTL;
    src.copy(packet, 8);
    dst.copy(packet, 24);
  }
  const segment = packet.subarray(headerLength);
  segment.writeUInt16BE(tuple.srcPort, 0);
  segment.writeUInt16BE(tuple.dstPort, 2);
  segment.writeUInt16BE(udpLength, 4);
  payload.copy(segment, UDP_HEADER_LENGTH);
  segment.writeUInt16BE(udpChecksum(src, dst, segment), UDP_CHECKSUM_OFFSET);
  return ok(packet);
}

/**
 * Pure: a complete IPv4 (20-byte header, TTL 64, DF) or IPv6 packet (hop limit 64) carrying UDP
 * with `payload`; the IPv4 header checksum and the UDP checksum computed (never left 0, also for
 * IPv4). Throws a RangeError for a tuple that cannot be a packet (see encodeUdpPacket).
 */
export function buildUdpPacket(tuple: UdpTuple, payload: Buffer): Buffer {
  const packet = encodeUdpPacket(tuple, payload);
  if (!packet.ok) throw new RangeError(`cannot build a UDP packet for ${describeTuple(tuple)}: ${packet.reason}`);
  return packet.value;
}

export function describeTuple(tuple: UdpTuple): string {
  const host = (address: string): string => (tuple.family === 6 ? `[${address}]` : address);
  return `${host(tuple.src)}:${tuple.srcPort} → ${host(tuple.dst)}:${tuple.dstPort}`;
}

export interface Injector {
  /** sends the packet built from tuple+payload through the raw socket of its family, to tuple.dst (a local address) */
  inject(tuple: UdpTuple, payload: Buffer): Result<true, string>;
  /** sends an already built IP packet as it is, to `dst` (tests use it to show what the kernel drops) */
  send(family: 4 | 6, dst: string, packet: Buffer): Result<true, string>;
  /** families whose raw socket is open */
  readonly families: ReadonlySet<4 | 6>;
  close(): void;
}

const PERMISSION_ERRORS: ReadonlySet<string> = new Set(['EPERM', 'EACCES']);

function createInjector(sockets: NativeSockets, fds: Map<4 | 6, number>): Injector {
  const send = (family: 4 | 6, dst: string, packet: Buffer): Result<true, string> => {
    const fd = fds.get(family);
    if (fd === undefined) return fail(`no raw socket for IPv${family} is open`);
    const destination = addressBytes(family, dst);
    if (destination === undefined) return fail(`${dst} is not an IPv${family} address`);
    const sent = sockets.sendTo(fd, family, destination, packet);
    if (sent < 0) return fail(`sending to ${dst} failed: ${errnoText(sent)}`);
    if (sent !== packet.length) return fail(`sending to ${dst} sent ${sent} of ${packet.length} bytes`);
    return ok(true);
  };
  return {
    families: new Set(fds.keys()),
    send,
    inject(tuple, payload) {
      const packet = encodeUdpPacket(tuple, payload);
      if (!packet.ok) return fail(`cannot build a packet for ${describeTuple(tuple)}: ${packet.reason}`);
      return send(tuple.family, tuple.dst, packet.value);
    },
    close() {
      for (const fd of fds.values()) sockets.close(fd);
      fds.clear();
    },
  };
}

/**
 * Opens IPPROTO_RAW sockets for IPv4 (IP_HDRINCL) and IPv6 (IPPROTO_RAW implies the header on
 * Linux). A family the kernel does not have (IPv6 disabled) is left out of `families`.
 * Throws ReconfigError E_INJECT_PERMISSION without CAP_NET_RAW, E_INJECT when the addon is
 * missing or neither family opens.
 */
export function openInjector(): Injector {
  const native = loadNativeSockets();
  if ('error' in native) throw new ReconfigError('E_INJECT', native.error);
  const { sockets } = native;
  const fds = new Map<4 | 6, number>();
  const failures: string[] = [];
  for (const family of [4, 6] as const) {
    const fd = sockets.openRaw(family);
    if (fd >= 0) {
      fds.set(family, fd);
      continue;
    }
    if (PERMISSION_ERRORS.has(errnoName(fd))) {
      for (const open of fds.values()) sockets.close(open);
      throw new ReconfigError(
        'E_INJECT_PERMISSION',
        `Cannot open a raw IPv${family} socket to hand packets to WireGuard: ${errnoText(fd)}; run as root or grant CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW), or pass --no-inject`,
      );
    }
    failures.push(`IPv${family}: ${errnoText(fd)}`);
  }
  if (fds.size === 0) throw new ReconfigError('E_INJECT', `Cannot open a raw IP socket (${failures.join('; ')}); if the addon is at fault, ${BUILD_HINT}`);
  return createInjector(sockets, fds);
}
