/**
 * A captured frame → the one datagram the daemons look at: addresses, TTL or hop limit,
 * transport ports and flags, and a copy of the payload. Never throws: a frame that is not such
 * a datagram gives a reason to count.
 */
import { fail, ok, type Result } from '../common/result.js';
import { decodeIpv4 } from './ipv4.js';
import { decodeIpv6 } from './ipv6.js';
import { LINK_DECODERS, type LinkType } from './link.js';
import { decodeTcp } from './tcp.js';
import { decodeUdp } from './udp.js';

export type { LinkType } from './link.js';

export type DecodeReason =
  | 'truncated'
  | 'not-ip'
  | 'bad-ipv4'
  | 'bad-ipv6'
  | 'fragment'
  | 'not-udp-or-tcp'
  | 'bad-udp'
  | 'bad-tcp';

export interface Datagram {
  readonly family: 4 | 6;
  readonly src: string;
  readonly dst: string;
  /** IPv4 TTL or IPv6 hop limit */
  readonly ttl: number;
  readonly protocol: 'udp' | 'tcp';
  readonly srcPort: number;
  readonly dstPort: number;
  /** TCP control bits (octet 13); 0 for UDP */
  readonly tcpFlags: number;
  /** a copy, safe to keep: capture buffers are reused for the next packet */
  readonly payload: Buffer;
}

const PROTOCOL_TCP = 6;
const PROTOCOL_UDP = 17;

/** node_pcap's names for the link types decoded here; it names SLL2 (276) only by number. */
const PCAP_LINK_TYPES: ReadonlyMap<string, LinkType> = new Map([
  ['LINKTYPE_ETHERNET', 'ethernet'],
  ['LINKTYPE_LINUX_SLL', 'sll'],
  ['Unknown linktype 276', 'sll2'],
  ['LINKTYPE_RAW', 'raw'],
  ['LINKTYPE_NULL', 'null'],
]);

export function linkTypeFromPcap(name: string): Result<LinkType, 'unsupported-link'> {
  const link = PCAP_LINK_TYPES.get(name);
  return link === undefined ? fail('unsupported-link') : ok(link);
}

interface Network {
  readonly family: 4 | 6;
  readonly src: string;
  readonly dst: string;
  readonly ttl: number;
  readonly protocol: number;
  readonly payloadOffset: number;
  readonly end: number;
}

function decodeNetwork(family: 4 | 6, frame: Buffer, offset: number): Result<Network, DecodeReason> {
  if (family === 6) {
    const ip = decodeIpv6(frame, offset);
    return ip.ok ? ok({ family, ...ip.value, ttl: ip.value.hopLimit }) : ip;
  }
  const ip = decodeIpv4(frame, offset);
  if (!ip.ok) return ip;
  // A first fragment has the ports but only part of the payload: not a datagram to act on.
  if (ip.value.moreFragments) return fail('fragment');
  return ok({ family, ...ip.value });
}

export function decodeFrame(link: LinkType, frame: Buffer): Result<Datagram, DecodeReason> {
  const decodeLink = LINK_DECODERS[link] as (typeof LINK_DECODERS)[LinkType] | undefined;
  if (decodeLink === undefined) return fail('not-ip');
  const linkFrame = decodeLink(frame, 0);
  if (!linkFrame.ok) return linkFrame;
  const ip = decodeNetwork(linkFrame.value.family, frame, linkFrame.value.offset);
  if (!ip.ok) return ip;
  const { family, src, dst, ttl, protocol, payloadOffset, end } = ip.value;
  // Transport decoders see the packet only, never the link layer's padding after it.
  const packet = frame.subarray(0, end);
  if (protocol === PROTOCOL_UDP) {
    const udp = decodeUdp(packet, payloadOffset);
    if (!udp.ok) return udp;
    const { srcPort, dstPort, payloadOffset: from, payloadEnd } = udp.value;
    return ok({ family, src, dst, ttl, protocol: 'udp', srcPort, dstPort, tcpFlags: 0, payload: Buffer.from(packet.subarray(from, payloadEnd)) });
  }
  if (protocol === PROTOCOL_TCP) {
    const tcp = decodeTcp(packet, payloadOffset);
    if (!tcp.ok) return tcp;
    const { srcPort, dstPort, flags, payloadOffset: from } = tcp.value;
    return ok({ family, src, dst, ttl, protocol: 'tcp', srcPort, dstPort, tcpFlags: flags, payload: Buffer.from(packet.subarray(from)) });
  }
  return fail('not-udp-or-tcp');
}
