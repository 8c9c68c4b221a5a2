/**
 * Conntrack entries through netlink (NETLINK_NETFILTER, the ctnetlink subsystem), without the
 * `conntrack` tool. Where R2's firewall does not accept `lo`, an injected packet passes OUTPUT
 * and then INPUT on `lo` as a new flow and is dropped; an entry for its exact 5-tuple with
 * SEEN_REPLY, inserted just before, makes it `established`. Entries simply time out: nothing
 * here deletes one.
 *
 * Message layout: include/uapi/linux/netlink.h (nlmsghdr, nlattr), netfilter/nfnetlink.h
 * (nfgenmsg), netfilter/nfnetlink_conntrack.h (CTA_*), netfilter/nf_conntrack_common.h (IPS_*).
 * Netlink headers and attribute headers are in host byte order; the conntrack values inside
 * (addresses, ports, status, timeout) are in network byte order, as the kernel reads them.
 */
import { endianness } from 'node:os';
import { ReconfigError } from '../common/errors.js';
import { fail, ok, type Result } from '../common/result.js';
import { addressBytes } from './address.js';
import type { UdpTuple } from './inject.js';
import { errnoName, errnoText, loadNativeSockets, type NativeSockets } from './native.js';

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const NFGENMSG_LEN = 4;
export const NLMSG_ERROR = 2;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
/** Without NLM_F_EXCL the kernel updates an entry that exists (ctnetlink_new_conntrack). */
export const NLM_F_CREATE = 0x400;
export const NLM_F_EXCL = 0x200;
export const NLA_F_NESTED = 0x8000;
export const NFNL_SUBSYS_CTNETLINK = 1;
export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;
export const IPCTNL_MSG_CT_DELETE = 2;
export const NFNETLINK_V0 = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const CTA_TUPLE_ORIG = 1;
export const CTA_TUPLE_REPLY = 2;
export const CTA_STATUS = 3;
export const CTA_TIMEOUT = 7;
export const CTA_TUPLE_IP = 1;
export const CTA_TUPLE_PROTO = 2;
export const CTA_IP_V4_SRC = 1;
export const CTA_IP_V4_DST = 2;
export const CTA_IP_V6_SRC = 3;
export const CTA_IP_V6_DST = 4;
export const CTA_PROTO_NUM = 1;
export const CTA_PROTO_SRC_PORT = 2;
export const CTA_PROTO_DST_PORT = 3;
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
/**
 * What a new pinhole asks for: an entry as if R2 had sent first (original direction R2 → the
 * source), nothing seen back yet. The packet re-sent from the source is then its first reply,
 * which a firewall sees `established`; that reply marks it SEEN_REPLY but not ASSURED (only
 * more traffic does: WireGuard's own answer). The kernel refuses (EBUSY) a status that differs
 * from the entry's in CONFIRMED, and marks an entry it creates CONFIRMED before comparing
 * (ctnetlink_create_conntrack, nf_ct_change_status_common).
 */
export const PINHOLE_STATUS = IPS_CONFIRMED;
/**
 * What an entry an earlier injection left (original direction from the source, unreplied: the
 * firewall dropped that packet) is updated to: SEEN_REPLY makes it `established`. The kernel
 * lets ctnetlink set ASSURED but never clear it, so a live, assured flow refuses this (EBUSY)
 * and is left as it is.
 */
export const UNREPLIED_UPDATE_STATUS = IPS_CONFIRMED | IPS_SEEN_REPLY;
const PROTOCOL_UDP = 17;
/** Well beyond any pinhole; the kernel takes a 32-bit count of seconds. */
export const MAX_TIMEOUT_SECONDS = 24 * 60 * 60;

const LITTLE = endianness() === 'LE';
const writeU16 = (buf: Buffer, value: number, at: number): number => (LITTLE ? buf.writeUInt16LE(value, at) : buf.writeUInt16BE(value, at));
const writeU32 = (buf: Buffer, value: number, at: number): number => (LITTLE ? buf.writeUInt32LE(value, at) : buf.writeUInt32BE(value, at));
const readU16 = (buf: Buffer, at: number): number => (LITTLE ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
const readU32 = (buf: Buffer, at: number): number => (LITTLE ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
const readI32 = (buf: Buffer, at: number): number => (LITTLE ? buf.readInt32LE(at) : buf.readInt32BE(at));

/** NLA_ALIGN / NLMSG_ALIGN: everything in netlink starts on a 4-octet boundary. */
export const align4 = (length: number): number => (length + 3) & ~3;

/** One attribute: header, value, zero padding to the boundary. */
function attribute(type: number, value: Buffer): Buffer {
  const length = NLA_HDRLEN + value.length;
  const attr = Buffer.alloc(align4(length));
  writeU16(attr, length, 0);
  writeU16(attr, type, 2);
  value.copy(attr, NLA_HDRLEN);
  return attr;
}

/** A nested attribute: its length covers the (already padded) children. */
function nested(type: number, children: readonly Buffer[]): Buffer {
  return attribute(type | NLA_F_NESTED, Buffer.concat(children));
}

const u8 = (value: number): Buffer => Buffer.from([value]);
const be16 = (value: number): Buffer => {
  const buf = Buffer.alloc(2);
  buf.writeUInt16BE(value, 0);
  return buf;
};
const be32 = (value: number): Buffer => {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(value >>> 0, 0);
  return buf;
};

function tupleAttribute(type: number, family: 4 | 6, src: Buffer, dst: Buffer, srcPort: number, dstPort: number): Buffer {
  return nested(type, [
    nested(CTA_TUPLE_IP, [attribute(family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, src), attribute(family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, dst)]),
    nested(CTA_TUPLE_PROTO, [attribute(CTA_PROTO_NUM, u8(PROTOCOL_UDP)), attribute(CTA_PROTO_SRC_PORT, be16(srcPort)), attribute(CTA_PROTO_DST_PORT, be16(dstPort))]),
  ]);
}

function message(messageType: number, flags: number, sequence: number, family: 4 | 6, attributes: readonly Buffer[]): Buffer {
  const header = Buffer.alloc(NLMSG_HDRLEN + NFGENMSG_LEN);
  const body = Buffer.concat(attributes);
  writeU32(header, header.length + body.length, 0);
  writeU16(header, (NFNL_SUBSYS_CTNETLINK << 8) | messageType, 4);
  writeU16(header, flags, 6);
  writeU32(header, sequence >>> 0, 8);
  // nlmsg_pid 0: addressed to the kernel. nfgenmsg: family, version, res_id 0.
  header[NLMSG_HDRLEN] = family === 4 ? AF_INET : AF_INET6;
  header[NLMSG_HDRLEN + 1] = NFNETLINK_V0;
  return Buffer.concat([header, body]);
}

export type PinholeReason = 'bad-family' | 'bad-src' | 'bad-dst' | 'bad-port' | 'bad-timeout';

function tupleBytes(tuple: UdpTuple): Result<{ src: Buffer; dst: Buffer }, PinholeReason> {
  if (tuple.family !== 4 && tuple.family !== 6) return fail('bad-family');
  const src = addressBytes(tuple.family, tuple.src);
  if (src === undefined) return fail('bad-src');
  const dst = addressBytes(tuple.family, tuple.dst);
  if (dst === undefined) return fail('bad-dst');
  const port = (value: number): boolean => Number.isInteger(value) && value >= 1 && value <= 0xffff;
  if (!port(tuple.srcPort) || !port(tuple.dstPort)) return fail('bad-port');
  return ok({ src, dst });
}

/** Which pinhole message: a new entry R2 → source (never over an existing one), or the update of an unreplied source → R2 entry. */
export type PinholeKind = 'create' | 'update-unreplied';

/** buildPinholeMessage as a Result: why a tuple cannot make a message, instead of an exception. */
export function encodePinholeMessage(tuple: UdpTuple, timeoutSeconds: number, sequence: number, kind: PinholeKind = 'create'): Result<Buffer, PinholeReason> {
  const bytes = tupleBytes(tuple);
  if (!bytes.ok) return bytes;
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > MAX_TIMEOUT_SECONDS) return fail('bad-timeout');
  const { src, dst } = bytes.value;
  const fromSource = tupleAttribute(CTA_TUPLE_ORIG, tuple.family, src, dst, tuple.srcPort, tuple.dstPort);
  const toSource = tupleAttribute(CTA_TUPLE_REPLY, tuple.family, dst, src, tuple.dstPort, tuple.srcPort);
  if (kind === 'update-unreplied') {
    return ok(
      message(IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_ACK, sequence, tuple.family, [
        fromSource,
        toSource,
        attribute(CTA_STATUS, be32(UNREPLIED_UPDATE_STATUS)),
        attribute(CTA_TIMEOUT, be32(timeoutSeconds)),
      ]),
    );
  }
  return ok(
    message(IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, sequence, tuple.family, [
      // Original direction R2 → source: the re-sent packet is the reply.
      tupleAttribute(CTA_TUPLE_ORIG, tuple.family, dst, src, tuple.dstPort, tuple.srcPort),
      tupleAttribute(CTA_TUPLE_REPLY, tuple.family, src, dst, tuple.srcPort, tuple.dstPort),
      attribute(CTA_STATUS, be32(PINHOLE_STATUS)),
      attribute(CTA_TIMEOUT, be32(timeoutSeconds)),
    ]),
  );
}

/**
 * Pure: the nfnetlink IPCTNL_MSG_CT_NEW message for `tuple` (the packet's own src → dst):
 * `create` makes a new entry R2 → source with NLM_F_EXCL (EEXIST if any entry for the flow
 * exists); `update-unreplied` marks an existing source → R2 entry SEEN_REPLY. Timeout in seconds.
 * Throws a RangeError for a tuple or timeout that cannot be sent (see encodePinholeMessage).
 */
export function buildPinholeMessage(tuple: UdpTuple, timeoutSeconds: number, sequence: number, kind: PinholeKind = 'create'): Buffer {
  const built = encodePinholeMessage(tuple, timeoutSeconds, sequence, kind);
  if (!built.ok) throw new RangeError(`cannot build a conntrack message for ${tuple.src}:${tuple.srcPort} → ${tuple.dst}:${tuple.dstPort}: ${built.reason}`);
  return built.value;
}

/** IPCTNL_MSG_CT_DELETE for the entry of one flow (found by either direction's tuple). */
export function buildDeleteMessage(tuple: UdpTuple, sequence: number): Buffer {
  const bytes = tupleBytes(tuple);
  if (!bytes.ok) throw new RangeError(`cannot build a conntrack delete: ${bytes.reason}`);
  const { src, dst } = bytes.value;
  return message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, sequence, tuple.family, [
    tupleAttribute(CTA_TUPLE_ORIG, tuple.family, src, dst, tuple.srcPort, tuple.dstPort),
  ]);
}

/** IPCTNL_MSG_CT_GET for one tuple: asks without changing anything (openPinholer's self-test). */
export function buildGetMessage(tuple: UdpTuple, sequence: number): Buffer {
  const bytes = tupleBytes(tuple);
  if (!bytes.ok) throw new RangeError(`cannot build a conntrack query: ${bytes.reason}`);
  const { src, dst } = bytes.value;
  return message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_ACK, sequence, tuple.family, [
    tupleAttribute(CTA_TUPLE_ORIG, tuple.family, src, dst, tuple.srcPort, tuple.dstPort),
  ]);
}

/** What one datagram from the kernel says about request `sequence`. */
export type NetlinkAnswer =
  | { readonly kind: 'ack' }
  /** errno is positive (EEXIST is 17) */
  | { readonly kind: 'error'; readonly errno: number }
  /** nothing about this request's outcome in this datagram (data, or another sequence) */
  | { readonly kind: 'other' };

export type AnswerReason = 'truncated' | 'bad-length';

/**
 * Walks the netlink messages in one datagram and finds the NLMSG_ERROR for `sequence`: error 0
 * is the ACK, a negative number is -errno. Never throws.
 */
export function parseNetlinkAnswer(datagram: Buffer, sequence: number): Result<NetlinkAnswer, AnswerReason> {
  if (datagram.length < NLMSG_HDRLEN) return fail('truncated');
  for (let at = 0; at + NLMSG_HDRLEN <= datagram.length; ) {
    const length = readU32(datagram, at);
    if (length < NLMSG_HDRLEN || at + length > datagram.length) return fail('bad-length');
    const type = readU16(datagram, at + 4);
    const seq = readU32(datagram, at + 8);
    if (type === NLMSG_ERROR && seq === sequence >>> 0) {
      if (length < NLMSG_HDRLEN + 4) return fail('truncated');
      const error = readI32(datagram, at + NLMSG_HDRLEN);
      return ok(error === 0 ? { kind: 'ack' } : { kind: 'error', errno: -error });
    }
    at += align4(length);
  }
  return ok({ kind: 'other' });
}

/** `opened`: an entry this process made (or took over from its own earlier injection); `exists`: a live flow's, left alone. */
export type PinholeOutcome = 'opened' | 'exists';

export interface Pinholer {
  /** sends, reads the kernel's ACK; never throws */
  open(tuple: UdpTuple, timeoutSeconds: number): Result<PinholeOutcome, string>;
  /** removes the entry of the flow `tuple` names, if there is one; never throws */
  remove(tuple: UdpTuple): Result<true, string>;
  close(): void;
}

/** How long to wait for the kernel's answer, and how many unrelated datagrams to skip. */
const ANSWER_TIMEOUT_MS = 100;
const MAX_DATAGRAMS = 8;

/** Sends `request` and waits for its answer: -errno on a socket failure, else the answer. */
function request(sockets: NativeSockets, fd: number, build: (sequence: number) => Buffer, next: () => number): number | NetlinkAnswer {
  const sequence = next();
  const sent = sockets.netlinkSend(fd, build(sequence));
  if (sent < 0) return sent;
  const deadline = Date.now() + ANSWER_TIMEOUT_MS;
  for (let i = 0; i < MAX_DATAGRAMS; i++) {
    const datagram = sockets.netlinkReceive(fd, Math.max(0, deadline - Date.now()));
    if (typeof datagram === 'number') return datagram;
    const answer = parseNetlinkAnswer(datagram, sequence);
    if (answer.ok && answer.value.kind !== 'other') return answer.value;
  }
  return -110; // ETIMEDOUT: only unrelated datagrams came
}

const errnoOf = (answer: number | NetlinkAnswer): number | undefined =>
  typeof answer === 'number' ? answer : answer.kind === 'error' ? -answer.errno : undefined;

/**
 * Opens a NETLINK_NETFILTER socket and checks, with a harmless query, that the kernel lets this
 * process change conntrack here. Throws ReconfigError E_PINHOLE_PERMISSION (no CAP_NET_ADMIN) or
 * E_PINHOLE (addon missing, no conntrack netlink in the kernel).
 */
export function openPinholer(): Pinholer {
  const native = loadNativeSockets();
  if ('error' in native) throw new ReconfigError('E_PINHOLE', native.error);
  const { sockets } = native;
  const opened = sockets.openNetlinkNetfilter();
  if (opened < 0) {
    throw new ReconfigError('E_PINHOLE', `Cannot open a netfilter netlink socket for conntrack pinholes: ${errnoText(opened)}; the kernel needs nfnetlink (CONFIG_NETFILTER_NETLINK), or pass --pinhole never`);
  }
  let fd = opened;
  let sequence = Math.floor(Math.random() * 0x7fffffff);
  const next = (): number => (sequence = (sequence + 1) >>> 0);

  // A tuple that cannot be live (ports 1 → 1 between the same documentation address): the
  // kernel answers ENOENT when this process may use ctnetlink, EPERM when it may not.
  const probe: UdpTuple = { family: 4, src: '192.0.2.0', srcPort: 1, dst: '192.0.2.0', dstPort: 1 };
  const answer = errnoOf(request(sockets, fd, (seq) => buildGetMessage(probe, seq), next));
  if (answer !== undefined && errnoName(answer) !== 'ENOENT') {
    sockets.close(fd);
    if (errnoName(answer) === 'EPERM' || errnoName(answer) === 'EACCES') {
      throw new ReconfigError('E_PINHOLE_PERMISSION', `The kernel refuses conntrack changes: ${errnoText(answer)}; run as root or grant CAP_NET_ADMIN, or pass --pinhole never`);
    }
    throw new ReconfigError('E_PINHOLE', `Conntrack netlink does not answer as expected: ${errnoText(answer)}; the kernel needs nf_conntrack_netlink (modprobe nf_conntrack_netlink), or pass --pinhole never`);
  }

  return {
    open(tuple, timeoutSeconds) {
      if (fd < 0) return fail('the pinhole socket is closed');
      const flow = `${tuple.src}:${tuple.srcPort} → ${tuple.dst}:${tuple.dstPort}`;
      const valid = encodePinholeMessage(tuple, timeoutSeconds, 0);
      if (!valid.ok) return fail(`cannot build a conntrack entry for ${flow}: ${valid.reason}`);
      const ask = (kind: PinholeKind): number | undefined =>
        errnoOf(request(sockets, fd, (seq) => buildPinholeMessage(tuple, timeoutSeconds, seq, kind), next));
      let error = ask('create');
      if (error === undefined) return ok('opened');
      if (errnoName(error) !== 'EEXIST') return fail(`conntrack entry for ${flow} refused: ${errnoText(error)}`);
      // An entry for the flow exists: the one an earlier injection of ours left unreplied (the
      // firewall dropped that packet), made established; or a live, assured flow, which refuses
      // the update (EBUSY) and is left as it is: the packet gets in on it anyway.
      error = ask('update-unreplied');
      if (error === undefined) return ok('opened');
      return errnoName(error) === 'EBUSY' ? ok('exists') : fail(`conntrack entry for ${flow} refused: ${errnoText(error)}`);
    },
    remove(tuple) {
      if (fd < 0) return fail('the pinhole socket is closed');
      let error: number | undefined;
      try {
        error = errnoOf(request(sockets, fd, (seq) => buildDeleteMessage(tuple, seq), next));
      } catch (thrown) {
        return fail((thrown as Error).message);
      }
      // ENOENT: gone already (timed out, or never confirmed)
      return error === undefined || errnoName(error) === 'ENOENT' ? ok(true) : fail(`conntrack entry could not be removed: ${errnoText(error)}`);
    },
    close() {
      if (fd >= 0) sockets.close(fd);
      fd = -1;
    },
  };
}
