/**
 * Conntrack's destroy events (ctnetlink's NFNLGRP_CONNTRACK_DESTROY multicast group): which
 * UDP flows of one port the kernel just forgot (timed out, flushed, deleted, evicted).
 *
 * The kernel cannot filter these by port for us, and a flush of a full table sends one message
 * per entry, so the parser looks at the ports first and at the addresses only for flows of the
 * port; the reader takes a bounded batch per wake-up. When the socket's buffer overflowed the
 * kernel says so once (ENOBUFS): events were lost, any entry may be gone.
 *
 * Message layout as in conntrack.ts: nlmsghdr and nlattr in host byte order, the tuple's
 * addresses and ports in network byte order (include/uapi/linux/netfilter/nfnetlink_conntrack.h).
 */
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { ReconfigError } from '../common/errors.js';
import {
  AF_INET,
  AF_INET6,
  CTA_IP_V4_DST,
  CTA_IP_V4_SRC,
  CTA_IP_V6_DST,
  CTA_IP_V6_SRC,
  CTA_PROTO_DST_PORT,
  CTA_PROTO_NUM,
  CTA_PROTO_SRC_PORT,
  CTA_TUPLE_IP,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_PROTO,
  IPCTNL_MSG_CT_DELETE,
  NFGENMSG_LEN,
  NFNL_SUBSYS_CTNETLINK,
  NLA_HDRLEN,
  NLMSG_HDRLEN,
  align4,
} from './conntrack.js';
import { formatIpv4 } from './ipv4.js';
import { formatIpv6 } from './ipv6.js';
import { errnoText, loadNativeSockets, type NativeSockets, type WatchHandle } from './native.js';

/** Multicast group 3 (NFNLGRP_CONNTRACK_DESTROY) as a bind mask: bit N-1 for group N. */
export const DESTROY_GROUP_MASK = 1 << 2;
/** nla_type without NLA_F_NESTED and NLA_F_NET_BYTEORDER. */
const NLA_TYPE_MASK = 0x3fff;
const PROTOCOL_UDP = 17;
/** Messages looked at per datagram: an event datagram carries one; anything past this is skipped. */
export const MAX_MESSAGES_PER_DATAGRAM = 16;
/** Datagrams read per wake-up: a flush of 100k entries is read over many turns of the loop. */
export const EVENT_BATCH = 64;

const ENOBUFS = -105;
const ETIMEDOUT = -110;
const EAGAIN = -11;

const LITTLE = endianness() === 'LE';
const readU16 = (buf: Buffer, at: number): number => (LITTLE ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
const readU32 = (buf: Buffer, at: number): number => (LITTLE ? buf.readUInt32LE(at) : buf.readUInt32BE(at));

/** A forgotten flow's original direction, addresses as the packet decoders write them. */
export interface ConntrackFlow {
  readonly family: 4 | 6;
  readonly src: string;
  readonly srcPort: number;
  readonly dst: string;
  readonly dstPort: number;
}

export interface ParsedEvents {
  /** UDP flows with `port` at either end whose entry was destroyed */
  readonly destroyed: ConntrackFlow[];
  /** messages that could not be read (counted, skipped) */
  readonly malformed: number;
}

/** Finds attribute `type` among the attributes in [from, to); -1 if absent, -2 if malformed. */
function findAttribute(buf: Buffer, from: number, to: number, type: number): number {
  for (let at = from; at + NLA_HDRLEN <= to; ) {
    const length = readU16(buf, at);
    if (length < NLA_HDRLEN || at + length > to) return -2;
    if ((readU16(buf, at + 2) & NLA_TYPE_MASK) === type) return at;
    at += align4(length);
  }
  return -1;
}

/** The value of attribute `type` in [from, to) if it is exactly `size` bytes; -1 absent, -2 bad. */
function valueOf(buf: Buffer, from: number, to: number, type: number, size: number): number {
  const at = findAttribute(buf, from, to, type);
  if (at < 0) return at;
  return readU16(buf, at) === NLA_HDRLEN + size ? at + NLA_HDRLEN : -2;
}

/** The nested attribute's value range, or undefined (absent or malformed: `bad` says which). */
function nestedRange(buf: Buffer, from: number, to: number, type: number): { from: number; to: number } | 'absent' | 'bad' {
  const at = findAttribute(buf, from, to, type);
  if (at === -1) return 'absent';
  if (at < 0) return 'bad';
  return { from: at + NLA_HDRLEN, to: at + readU16(buf, at) };
}

/**
 * One ctnetlink DELETE message's original tuple, if it is UDP with `port` at either end:
 * a flow, 'other' (another protocol or port), or 'bad'.
 */
function destroyedFlow(buf: Buffer, at: number, length: number, port: number): ConntrackFlow | 'other' | 'bad' {
  if (length < NLMSG_HDRLEN + NFGENMSG_LEN) return 'bad';
  const familyByte = buf[at + NLMSG_HDRLEN];
  const family = familyByte === AF_INET ? 4 : familyByte === AF_INET6 ? 6 : undefined;
  if (family === undefined) return 'other';
  const end = at + length;
  const tuple = nestedRange(buf, at + NLMSG_HDRLEN + NFGENMSG_LEN, end, CTA_TUPLE_ORIG);
  if (typeof tuple === 'string') return 'bad';
  // The ports first: most destroyed entries on a router are of other flows.
  const proto = nestedRange(buf, tuple.from, tuple.to, CTA_TUPLE_PROTO);
  if (typeof proto === 'string') return 'bad';
  const num = valueOf(buf, proto.from, proto.to, CTA_PROTO_NUM, 1);
  if (num < 0) return 'bad';
  if (buf[num] !== PROTOCOL_UDP) return 'other';
  const sport = valueOf(buf, proto.from, proto.to, CTA_PROTO_SRC_PORT, 2);
  const dport = valueOf(buf, proto.from, proto.to, CTA_PROTO_DST_PORT, 2);
  if (sport < 0 || dport < 0) return 'bad';
  const srcPort = buf.readUInt16BE(sport);
  const dstPort = buf.readUInt16BE(dport);
  if (srcPort !== port && dstPort !== port) return 'other';
  const ip = nestedRange(buf, tuple.from, tuple.to, CTA_TUPLE_IP);
  if (typeof ip === 'string') return 'bad';
  const size = family === 4 ? 4 : 16;
  const src = valueOf(buf, ip.from, ip.to, family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, size);
  const dst = valueOf(buf, ip.from, ip.to, family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, size);
  if (src < 0 || dst < 0) return 'bad';
  const format = family === 4 ? formatIpv4 : formatIpv6;
  return { family, src: format(buf, src), srcPort, dst: format(buf, dst), dstPort };
}

/**
 * Pure: the destroyed UDP flows of `port` in one datagram from the destroy group. Other
 * messages (other subsystems, other types) are skipped; unreadable ones are counted. Never throws.
 */
export function parseDestroyEvents(datagram: Buffer, port: number): ParsedEvents {
  const destroyed: ConntrackFlow[] = [];
  let malformed = 0;
  let at = 0;
  for (let n = 0; n < MAX_MESSAGES_PER_DATAGRAM && at + NLMSG_HDRLEN <= datagram.length; n++) {
    const length = readU32(datagram, at);
    // A length that does not fit leaves nothing after it readable.
    if (length < NLMSG_HDRLEN || at + length > datagram.length) return { destroyed, malformed: malformed + 1 };
    const type = readU16(datagram, at + 4);
    if (type >> 8 === NFNL_SUBSYS_CTNETLINK && (type & 0xff) === IPCTNL_MSG_CT_DELETE) {
      const flow = destroyedFlow(datagram, at, length, port);
      if (flow === 'bad') malformed++;
      else if (flow !== 'other') destroyed.push(flow);
    }
    at += align4(length);
  }
  // Bytes left over too short for a header: a cut datagram.
  if (at < datagram.length && datagram.length - at < NLMSG_HDRLEN) malformed++;
  return { destroyed, malformed };
}

/** One datagram from the destroy group, parsed and told to `handlers`. Never throws. */
export function dispatchDestroyEvents(datagram: Buffer, port: number, handlers: DestroyHandlers): void {
  const parsed = parseDestroyEvents(datagram, port);
  if (parsed.malformed > 0) handlers.malformed(parsed.malformed);
  for (const flow of parsed.destroyed) handlers.destroyed(flow);
}

/** What the kernel's `net.netfilter.nf_conntrack_events` says (0 off, 1 on, 2 on while someone listens), or undefined. */
export function conntrackEventsSetting(read = (): string => readFileSync('/proc/sys/net/netfilter/nf_conntrack_events', 'utf8')): number | undefined {
  try {
    const value = Number(read().trim());
    return Number.isInteger(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export interface DestroyHandlers {
  /** a UDP flow of the port was destroyed */
  readonly destroyed: (flow: ConntrackFlow) => void;
  /** events were lost (the socket's buffer overflowed): any entry may be gone */
  readonly lost: () => void;
  /** unreadable messages, counted */
  readonly malformed: (count: number) => void;
  /** the socket failed (other than overflow); said by the caller, rate-limited */
  readonly failed: (message: string) => void;
}

/** The source of destroy events, as the listener uses it (tests pass a stand-in). */
export interface DestroyEvents {
  /** Calls the handlers for flows of `port()` (read at each wake-up) until close(). */
  follow(port: () => number | undefined, handlers: DestroyHandlers): void;
  close(): void;
}

/**
 * Joins the destroy group on a non-blocking NETLINK_NETFILTER socket. Throws a ReconfigError
 * (E_SOCKET) when it cannot (addon missing, no CAP_NET_ADMIN, no ctnetlink).
 */
export function openDestroyEvents(): DestroyEvents {
  const native = loadNativeSockets();
  if ('error' in native) throw new ReconfigError('E_SOCKET', native.error);
  const fd = native.sockets.openNetlinkNetfilter(DESTROY_GROUP_MASK);
  if (fd < 0) {
    throw new ReconfigError(
      'E_SOCKET',
      `Cannot follow conntrack's destroy events: ${errnoText(fd)}; this needs CAP_NET_ADMIN and nf_conntrack_netlink (modprobe nf_conntrack_netlink)`,
    );
  }
  return new DestroyEventSocket(native.sockets, fd);
}

class DestroyEventSocket implements DestroyEvents {
  private handle: WatchHandle | undefined;
  private closed = false;

  constructor(
    private readonly sockets: NativeSockets,
    private readonly fd: number,
  ) {}

  follow(port: () => number | undefined, handlers: DestroyHandlers): void {
    if (this.handle !== undefined || this.closed) return;
    const handle = this.sockets.watch(this.fd, (status) => {
      if (status < 0) return handlers.failed(`watching the conntrack event socket failed (${status})`);
      this.readBatch(port(), handlers);
    });
    if (typeof handle === 'number') throw new ReconfigError('E_SOCKET', `Cannot watch the conntrack event socket: ${errnoText(handle)}`);
    this.handle = handle;
  }

  /** At most EVENT_BATCH datagrams; the watch is level-triggered, so the rest come next turn. */
  private readBatch(port: number | undefined, handlers: DestroyHandlers): void {
    for (let i = 0; i < EVENT_BATCH && !this.closed; i++) {
      const got = this.sockets.netlinkReceive(this.fd, 0);
      if (typeof got === 'number') {
        if (got === ENOBUFS) {
          handlers.lost();
          continue;
        }
        if (got !== ETIMEDOUT && got !== EAGAIN) handlers.failed(errnoText(got));
        return;
      }
      // Read even without a port, so the socket drains.
      if (port !== undefined) dispatchDestroyEvents(got, port, handlers);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handle !== undefined) this.sockets.unwatch(this.handle);
    this.handle = undefined;
    this.sockets.close(this.fd);
  }
}
