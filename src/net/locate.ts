/**
 * Where a captured frame's UDP payload starts, found without allocating anything: this runs
 * for every captured packet, before the cheap checks decide whether it is worth decoding
 * (decodeFrame in packet.ts makes the typed record, with addresses and a payload copy, for
 * what passes). Anything unusual (fragments, IPv6 extension headers, not UDP) gives -1 and is
 * left to decodeFrame, which says why.
 */
import {
  AF_INET,
  AF_INET6,
  ETHERNET_HEADER_LENGTH,
  ETHERNET_TYPE_OFFSET,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  MAX_VLAN_TAGS,
  NULL_HEADER_LENGTH,
  SLL2_HEADER_LENGTH,
  SLL2_PROTOCOL_OFFSET,
  SLL_HEADER_LENGTH,
  SLL_PROTOCOL_OFFSET,
  VLAN_TAG_LENGTH,
  VLAN_TPIDS,
  type LinkType,
} from './link.js';

const PROTOCOL_UDP = 17;
const IPV4_MIN_HEADER = 20;
const IPV4_PROTOCOL_OFFSET = 9;
const IPV4_FRAGMENT_OFFSET = 6;
/** MF and the fragment offset; DF may be set */
const IPV4_FRAGMENT_BITS = 0x3fff;
const IPV6_HEADER = 40;
const IPV6_NEXT_HEADER_OFFSET = 6;
const UDP_HEADER = 8;
/** UDP length, relative to the payload */
const UDP_LENGTH_FROM_PAYLOAD = -4;

/** Where the EtherType is, past up to MAX_VLAN_TAGS tags from `at` on; -1 if they run past `length`. */
function afterVlanTags(frame: Buffer, length: number, at: number): number {
  for (let tags = 0; tags < MAX_VLAN_TAGS && VLAN_TPIDS.has(frame.readUInt16BE(at)); tags++) {
    at += VLAN_TAG_LENGTH;
    if (length < at + 2) return -1;
  }
  return at;
}

/** The IP header's offset and family (4 or 6) packed as offset * 8 + family, or -1. */
function ipAt(link: LinkType, frame: Buffer, length: number): number {
  let type: number;
  let offset: number;
  switch (link) {
    case 'ethernet':
    case 'sll': {
      // libpcap re-inserts the tags the kernel stripped at the type (SLL: protocol) field.
      const at = link === 'ethernet' ? (length < ETHERNET_HEADER_LENGTH ? -1 : ETHERNET_TYPE_OFFSET) : length < SLL_HEADER_LENGTH ? -1 : SLL_PROTOCOL_OFFSET;
      const typeAt = at < 0 ? -1 : afterVlanTags(frame, length, at);
      if (typeAt < 0) return -1;
      type = frame.readUInt16BE(typeAt);
      offset = typeAt + 2;
      break;
    }
    case 'sll2':
      if (length < SLL2_HEADER_LENGTH) return -1;
      type = frame.readUInt16BE(SLL2_PROTOCOL_OFFSET);
      offset = SLL2_HEADER_LENGTH;
      break;
    case 'raw':
      if (length < 1) return -1;
      type = frame[0]! >> 4 === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4;
      offset = 0;
      break;
    case 'null': {
      if (length < NULL_HEADER_LENGTH) return -1;
      const little = frame.readUInt32LE(0);
      const family = little > 0xffff ? frame.readUInt32BE(0) : little;
      type = family === AF_INET ? ETHERTYPE_IPV4 : AF_INET6.has(family) ? ETHERTYPE_IPV6 : 0;
      offset = NULL_HEADER_LENGTH;
      break;
    }
    default:
      return -1;
  }
  if (type === ETHERTYPE_IPV4) return offset * 8 + 4;
  if (type === ETHERTYPE_IPV6) return offset * 8 + 6;
  return -1;
}

/**
 * The offset of the UDP payload in the first `length` bytes of `frame`, or -1. The payload's
 * length is then udpPayloadLength(frame, offset), to be checked against `length`.
 */
export function locateUdpPayload(link: LinkType, frame: Buffer, length: number): number {
  const ip = ipAt(link, frame, length);
  if (ip < 0) return -1;
  const at = ip >> 3;
  let udp: number;
  if ((ip & 7) === 4) {
    if (length < at + IPV4_MIN_HEADER || frame[at]! >> 4 !== 4) return -1;
    const headerLength = (frame[at]! & 0x0f) * 4;
    if (headerLength < IPV4_MIN_HEADER || frame[at + IPV4_PROTOCOL_OFFSET] !== PROTOCOL_UDP) return -1;
    if ((frame.readUInt16BE(at + IPV4_FRAGMENT_OFFSET) & IPV4_FRAGMENT_BITS) !== 0) return -1;
    udp = at + headerLength;
  } else {
    if (length < at + IPV6_HEADER || frame[at]! >> 4 !== 6 || frame[at + IPV6_NEXT_HEADER_OFFSET] !== PROTOCOL_UDP) return -1;
    udp = at + IPV6_HEADER;
  }
  if (length < udp + UDP_HEADER) return -1;
  return udp + UDP_HEADER;
}

/** The payload length the UDP header states (it may claim more than was captured). */
export function udpPayloadLength(frame: Buffer, payloadOffset: number): number {
  return frame.readUInt16BE(payloadOffset + UDP_LENGTH_FROM_PAYLOAD) - UDP_HEADER;
}

/** The destination port of the UDP datagram whose payload starts at `payloadOffset`. */
export function udpDestinationPort(frame: Buffer, payloadOffset: number): number {
  return frame.readUInt16BE(payloadOffset - UDP_HEADER + 2);
}

/** The source port of the UDP datagram whose payload starts at `payloadOffset`. */
export function udpSourcePort(frame: Buffer, payloadOffset: number): number {
  return frame.readUInt16BE(payloadOffset - UDP_HEADER);
}
