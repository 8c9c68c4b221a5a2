/**
 * Link layers: where the IP packet starts in a captured frame, and which IP version it is.
 * Ethernet and Linux cooked capture v1 (SLL, what libpcap gives for `any`), each with up to two
 * VLAN tags; cooked v2 (SLL2, what tcpdump asks for on `any`); raw IP (tun devices such as
 * wireguard-go); BSD loopback (NULL).
 */
import { fail, ok, type Result } from '../common/result.js';

export type LinkType = 'ethernet' | 'sll' | 'sll2' | 'raw' | 'null';
export type LinkReason = 'truncated' | 'not-ip';

export interface LinkFrame {
  readonly family: 4 | 6;
  /** offset of the IP header in the frame */
  readonly offset: number;
  /** VLAN ids of the tags passed on the way, outermost first */
  readonly vlans: readonly number[];
}

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
/** 802.1Q customer tag, 802.1ad service tag, and the pre-standard QinQ value still in use */
export const VLAN_TPIDS: ReadonlySet<number> = new Set([0x8100, 0x88a8, 0x9100]);
export const VLAN_TAG_LENGTH = 4;
const VLAN_ID_MASK = 0x0fff;
export const MAX_VLAN_TAGS = 2;

export const ETHERNET_HEADER_LENGTH = 14;
export const ETHERNET_TYPE_OFFSET = 12;
/** SLL (LINKTYPE_LINUX_SLL): packet type, ARPHRD, address length, 8 address bytes, protocol. */
export const SLL_HEADER_LENGTH = 16;
export const SLL_PROTOCOL_OFFSET = 14;
/** SLL2 (LINKTYPE_LINUX_SLL2): protocol, reserved, ifindex, ARPHRD, packet type, address. */
export const SLL2_HEADER_LENGTH = 20;
export const SLL2_PROTOCOL_OFFSET = 0;
/** NULL: a 4-byte address family in the byte order of the host that captured. */
export const NULL_HEADER_LENGTH = 4;
export const AF_INET = 2;
/** AF_INET6 differs by system: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30. */
export const AF_INET6: ReadonlySet<number> = new Set([10, 24, 28, 30]);

/**
 * Reads the EtherType at `typeOffset`, steps over VLAN tags (libpcap re-inserts the tags the
 * kernel stripped, in Ethernet and cooked frames alike), and says where IP starts.
 */
function afterEthertype(buf: Buffer, typeOffset: number): Result<LinkFrame, LinkReason> {
  const vlans: number[] = [];
  let at = typeOffset;
  for (;;) {
    if (buf.length < at + 2) return fail('truncated');
    const type = buf.readUInt16BE(at);
    if (type === ETHERTYPE_IPV4) return ok({ family: 4, offset: at + 2, vlans });
    if (type === ETHERTYPE_IPV6) return ok({ family: 6, offset: at + 2, vlans });
    if (!VLAN_TPIDS.has(type) || vlans.length === MAX_VLAN_TAGS) return fail('not-ip');
    if (buf.length < at + 2 + VLAN_TAG_LENGTH) return fail('truncated');
    vlans.push(buf.readUInt16BE(at + 2) & VLAN_ID_MASK);
    at += VLAN_TAG_LENGTH;
  }
}

export function decodeEthernet(buf: Buffer, offset: number): Result<LinkFrame, LinkReason> {
  if (buf.length < offset + ETHERNET_HEADER_LENGTH) return fail('truncated');
  return afterEthertype(buf, offset + ETHERNET_TYPE_OFFSET);
}

export function decodeSll(buf: Buffer, offset: number): Result<LinkFrame, LinkReason> {
  if (buf.length < offset + SLL_HEADER_LENGTH) return fail('truncated');
  return afterEthertype(buf, offset + SLL_PROTOCOL_OFFSET);
}

export function decodeSll2(buf: Buffer, offset: number): Result<LinkFrame, LinkReason> {
  if (buf.length < offset + SLL2_HEADER_LENGTH) return fail('truncated');
  const protocol = buf.readUInt16BE(offset + SLL2_PROTOCOL_OFFSET);
  if (protocol === ETHERTYPE_IPV4) return ok({ family: 4, offset: offset + SLL2_HEADER_LENGTH, vlans: [] });
  if (protocol === ETHERTYPE_IPV6) return ok({ family: 6, offset: offset + SLL2_HEADER_LENGTH, vlans: [] });
  return fail('not-ip');
}

/** Raw IP has no header: the version nibble says which IP it is. */
export function decodeRaw(buf: Buffer, offset: number): Result<LinkFrame, LinkReason> {
  const first = buf[offset];
  if (first === undefined) return fail('truncated');
  if (first >> 4 === 4) return ok({ family: 4, offset, vlans: [] });
  if (first >> 4 === 6) return ok({ family: 6, offset, vlans: [] });
  return fail('not-ip');
}

export function decodeNull(buf: Buffer, offset: number): Result<LinkFrame, LinkReason> {
  if (buf.length < offset + NULL_HEADER_LENGTH) return fail('truncated');
  // Families are small numbers, so a value above 0xffff was written in the other byte order.
  const little = buf.readUInt32LE(offset);
  const family = little > 0xffff ? buf.readUInt32BE(offset) : little;
  if (family === AF_INET) return ok({ family: 4, offset: offset + NULL_HEADER_LENGTH, vlans: [] });
  if (AF_INET6.has(family)) return ok({ family: 6, offset: offset + NULL_HEADER_LENGTH, vlans: [] });
  return fail('not-ip');
}

export const LINK_DECODERS: Readonly<Record<LinkType, (buf: Buffer, offset: number) => Result<LinkFrame, LinkReason>>> = {
  ethernet: decodeEthernet,
  sll: decodeSll,
  sll2: decodeSll2,
  raw: decodeRaw,
  null: decodeNull,
};

/** ARPHRD_LOOPBACK: the link type Linux gives lo. */
const ARPHRD_LOOPBACK = 772;
const SLL_HATYPE_OFFSET = 2;
const SLL2_HATYPE_OFFSET = 8;

/**
 * True if a Linux cooked frame (what `any` gives) was captured on lo. A capture filter could
 * say this (`ifindex 1`) only by filtering in user space, which libpcap then does for every
 * packet on every interface: checked here instead, before any decoding.
 */
export function capturedOnLoopback(link: LinkType, frame: Buffer): boolean {
  if (link === 'sll') return frame.length >= SLL_HEADER_LENGTH && frame.readUInt16BE(SLL_HATYPE_OFFSET) === ARPHRD_LOOPBACK;
  if (link === 'sll2') return frame.length >= SLL2_HEADER_LENGTH && frame.readUInt16BE(SLL2_HATYPE_OFFSET) === ARPHRD_LOOPBACK;
  return false;
}

/** Which way a frame went, as far as the frame itself says. */
export type FrameDirection = 'incoming' | 'outgoing' | 'unknown';

/** PACKET_OUTGOING (linux/if_packet.h): the packet type the kernel gives what this host sent. */
const PACKET_OUTGOING = 4;
const SLL_PACKET_TYPE_OFFSET = 0;
const SLL2_PACKET_TYPE_OFFSET = 10;

/**
 * The direction a Linux cooked frame (what `any` gives) records: every packet this host sent
 * is PACKET_OUTGOING, everything received is one of the other types. Other link types carry no
 * direction; there the capture filter's `inbound`/`outbound` (the kernel's own packet type)
 * is what decides.
 */
export function frameDirection(link: LinkType, frame: Buffer): FrameDirection {
  let type: number;
  if (link === 'sll' && frame.length >= SLL_HEADER_LENGTH) type = frame.readUInt16BE(SLL_PACKET_TYPE_OFFSET);
  else if (link === 'sll2' && frame.length >= SLL2_HEADER_LENGTH) type = frame[SLL2_PACKET_TYPE_OFFSET]!;
  else return 'unknown';
  return type === PACKET_OUTGOING ? 'outgoing' : 'incoming';
}
