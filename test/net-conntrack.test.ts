/**
 * The ctnetlink messages, decoded back attribute by attribute (lengths, 4-octet alignment,
 * nesting, byte order), and the parser of the kernel's answers. The kernel's own verdict on
 * these messages is in e2e-inject.test.ts.
 */
import { endianness } from 'node:os';
import test from 'ava';
import fc from 'fast-check';
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
  CTA_STATUS,
  CTA_TIMEOUT,
  CTA_TUPLE_IP,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_PROTO,
  CTA_TUPLE_REPLY,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_GET,
  IPCTNL_MSG_CT_NEW,
  IPS_CONFIRMED,
  IPS_SEEN_REPLY,
  NFNL_SUBSYS_CTNETLINK,
  NLA_F_NESTED,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  buildDeleteMessage,
  buildGetMessage,
  buildPinholeMessage,
  encodePinholeMessage,
  parseNetlinkAnswer,
} from '../src/net/conntrack.js';
import type { UdpTuple } from '../src/net/inject.js';

const LE = endianness() === 'LE';
const u16 = (buf: Buffer, at: number): number => (LE ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
const u32 = (buf: Buffer, at: number): number => (LE ? buf.readUInt32LE(at) : buf.readUInt32BE(at));

interface Attr {
  readonly type: number;
  readonly nested: boolean;
  readonly value: Buffer;
}

/** Reads attributes the way the kernel's nla_parse does, checking lengths and padding. */
function attributes(buf: Buffer): Attr[] {
  const out: Attr[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at % 4 !== 0) throw new Error(`attribute at ${at} is not 4-aligned`);
    const length = u16(buf, at);
    const type = u16(buf, at + 2);
    if (length < 4 || at + length > buf.length) throw new Error(`bad attribute length ${length} at ${at}`);
    const padded = (length + 3) & ~3;
    if (at + padded > buf.length || buf.subarray(at + length, at + padded).some((b) => b !== 0)) throw new Error('padding missing or not zero');
    out.push({ type: type & ~NLA_F_NESTED, nested: (type & NLA_F_NESTED) !== 0, value: buf.subarray(at + 4, at + length) });
    at += padded;
  }
  return out;
}

function only(attrs: Attr[], type: number): Attr {
  const found = attrs.filter((a) => a.type === type);
  if (found.length !== 1) throw new Error(`expected one attribute ${type}, found ${found.length}`);
  return found[0]!;
}

function decodeTuple(attr: Attr, family: 4 | 6): { src: string; dst: string; protocol: number; srcPort: number; dstPort: number } {
  const children = attributes(attr.value);
  const ip = only(children, CTA_TUPLE_IP);
  const proto = only(children, CTA_TUPLE_PROTO);
  const ipAttrs = attributes(ip.value);
  const [srcType, dstType] = family === 4 ? [CTA_IP_V4_SRC, CTA_IP_V4_DST] : [CTA_IP_V6_SRC, CTA_IP_V6_DST];
  const hex = (type: number): string => only(ipAttrs, type).value.toString('hex');
  const protoAttrs = attributes(proto.value);
  return {
    src: hex(srcType),
    dst: hex(dstType),
    protocol: only(protoAttrs, CTA_PROTO_NUM).value.readUInt8(0),
    srcPort: only(protoAttrs, CTA_PROTO_SRC_PORT).value.readUInt16BE(0),
    dstPort: only(protoAttrs, CTA_PROTO_DST_PORT).value.readUInt16BE(0),
  };
}

const tuple4: UdpTuple = { family: 4, src: '198.51.100.7', srcPort: 40000, dst: '192.0.2.1', dstPort: 51820 };
const tuple6: UdpTuple = { family: 6, src: '2001:db8:5::7', srcPort: 40000, dst: '2001:db8::1', dstPort: 51820 };
const hex4 = { src: 'c6336407', dst: 'c0000201' };
const hex6 = { src: '20010db8000500000000000000000007', dst: '20010db8000000000000000000000001' };

for (const [tuple, addresses] of [[tuple4, hex4], [tuple6, hex6]] as const) {
  test(`IPv${tuple.family}: an unreplied entry of our own is updated to SEEN_REPLY in its own direction, never created`, (t) => {
    const message = buildPinholeMessage(tuple, 2, 7, 'update-unreplied');
    t.is(u16(message, 6), NLM_F_REQUEST | NLM_F_ACK);
    const top = attributes(message.subarray(20));
    t.deepEqual(decodeTuple(only(top, CTA_TUPLE_ORIG), tuple.family), { src: addresses.src, dst: addresses.dst, protocol: 17, srcPort: 40000, dstPort: 51820 });
    t.is(only(top, CTA_STATUS).value.readUInt32BE(0), IPS_SEEN_REPLY | IPS_CONFIRMED);
  });

  test(`IPv${tuple.family}: the delete message is CT_DELETE for the flow's tuple`, (t) => {
    const message = buildDeleteMessage(tuple, 9);
    t.is(u16(message, 4), (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE);
    t.is(u16(message, 6), NLM_F_REQUEST | NLM_F_ACK);
    const top = attributes(message.subarray(20));
    t.deepEqual(top.map((a) => a.type), [CTA_TUPLE_ORIG]);
    t.deepEqual(decodeTuple(only(top, CTA_TUPLE_ORIG), tuple.family), { src: addresses.src, dst: addresses.dst, protocol: 17, srcPort: 40000, dstPort: 51820 });
  });

  test(`IPv${tuple.family}: the pinhole message is CT_NEW, create only (EXCL), R2 → source as the original direction, never answered yet`, (t) => {
    const message = buildPinholeMessage(tuple, 30, 0x01020304);
    t.is(message.length % 4, 0);
    t.is(u32(message, 0), message.length, 'nlmsg_len covers the whole message');
    t.is(u16(message, 4), (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW);
    const flags = u16(message, 6);
    t.is(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 'NLM_F_EXCL: a live flow\'s entry is never changed by a new pinhole');
    t.is(u32(message, 8), 0x01020304);
    t.is(u32(message, 12), 0, 'addressed to the kernel');
    t.is(message[16], tuple.family === 4 ? AF_INET : AF_INET6);
    t.is(message[17], 0, 'NFNETLINK_V0');
    t.is(message.readUInt16BE(18), 0, 'res_id');

    const top = attributes(message.subarray(20));
    t.deepEqual(top.map((a) => a.type), [CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_TIMEOUT]);
    t.true(only(top, CTA_TUPLE_ORIG).nested && only(top, CTA_TUPLE_REPLY).nested);
    // The re-sent packet is the entry's reply: `established` to a firewall, yet not SEEN_REPLY
    // (nor ASSURED) until it passes, and assured only by more traffic (WireGuard's answer).
    t.deepEqual(decodeTuple(only(top, CTA_TUPLE_ORIG), tuple.family), { src: addresses.dst, dst: addresses.src, protocol: 17, srcPort: 51820, dstPort: 40000 });
    t.deepEqual(decodeTuple(only(top, CTA_TUPLE_REPLY), tuple.family), { src: addresses.src, dst: addresses.dst, protocol: 17, srcPort: 40000, dstPort: 51820 });
    const status = only(top, CTA_STATUS).value;
    t.is(status.length, 4);
    t.is(status.readUInt32BE(0), IPS_CONFIRMED, 'network byte order; neither SEEN_REPLY nor ASSURED');
    const timeout = only(top, CTA_TIMEOUT).value;
    t.is(timeout.length, 4);
    t.is(timeout.readUInt32BE(0), 30);
  });
}

test('the message sizes add up attribute by attribute (header, nfgenmsg, padded attributes) for IPv4 and IPv6', (t) => {
  // tuple: nest(4) + ip nest(4 + 2 × (4 + addr)) + proto nest(4 + 8 + 8 + 8)
  const tuple = (addr: number): number => 4 + (4 + 2 * (4 + addr)) + (4 + 8 + 8 + 8);
  const total = (addr: number): number => 16 + 4 + 2 * tuple(addr) + 8 + 8;
  t.is(buildPinholeMessage(tuple4, 30, 1).length, total(4));
  t.is(buildPinholeMessage(tuple6, 30, 1).length, total(16));
  t.is(total(4), 140);
});

test('the self-test query is CT_GET for one original tuple, with an ACK asked for', (t) => {
  const message = buildGetMessage(tuple4, 7);
  t.is(u16(message, 4), (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET);
  t.is(u16(message, 6), NLM_F_REQUEST | NLM_F_ACK);
  const top = attributes(message.subarray(20));
  t.deepEqual(top.map((a) => a.type), [CTA_TUPLE_ORIG]);
  t.deepEqual(decodeTuple(top[0]!, 4), { ...hex4, protocol: 17, srcPort: 40000, dstPort: 51820 });
});

test('a tuple or timeout that cannot be sent is a reason, never a message', (t) => {
  t.deepEqual(encodePinholeMessage({ ...tuple4, src: 'nope' }, 30, 1), { ok: false, reason: 'bad-src' });
  t.deepEqual(encodePinholeMessage({ ...tuple6, dst: '192.0.2.1' }, 30, 1), { ok: false, reason: 'bad-dst' });
  t.deepEqual(encodePinholeMessage({ ...tuple4, dstPort: 0 }, 30, 1), { ok: false, reason: 'bad-port' });
  for (const timeout of [0, -1, 1.5, 86_401, Number.NaN]) t.deepEqual(encodePinholeMessage(tuple4, timeout, 1), { ok: false, reason: 'bad-timeout' });
  t.throws(() => buildPinholeMessage(tuple4, 0, 1), { instanceOf: RangeError });
});

/** An NLMSG_ERROR message as the kernel writes it: header, error, then the request's header. */
function errorMessage(sequence: number, error: number): Buffer {
  const buf = Buffer.alloc(16 + 4 + 16);
  const w32 = (v: number, at: number): number => (LE ? buf.writeUInt32LE(v, at) : buf.writeUInt32BE(v, at));
  w32(buf.length, 0);
  if (LE) buf.writeUInt16LE(NLMSG_ERROR, 4);
  else buf.writeUInt16BE(NLMSG_ERROR, 4);
  w32(sequence, 8);
  if (LE) buf.writeInt32LE(error, 16);
  else buf.writeInt32BE(error, 16);
  return buf;
}

test('the kernel answer: error 0 is the ACK, a negative error is the errno, another sequence is not ours', (t) => {
  t.deepEqual(parseNetlinkAnswer(errorMessage(5, 0), 5), { ok: true, value: { kind: 'ack' } });
  t.deepEqual(parseNetlinkAnswer(errorMessage(5, -1), 5), { ok: true, value: { kind: 'error', errno: 1 } });
  t.deepEqual(parseNetlinkAnswer(errorMessage(5, -17), 5), { ok: true, value: { kind: 'error', errno: 17 } });
  t.deepEqual(parseNetlinkAnswer(errorMessage(4, -1), 5), { ok: true, value: { kind: 'other' } });
  // A data message (as CT_GET answers before its ACK), then the ACK, in one datagram.
  const data = buildPinholeMessage(tuple4, 30, 5);
  t.deepEqual(parseNetlinkAnswer(Buffer.concat([data, errorMessage(5, 0)]), 5), { ok: true, value: { kind: 'ack' } });
  t.deepEqual(parseNetlinkAnswer(data, 5), { ok: true, value: { kind: 'other' } });
  t.deepEqual(parseNetlinkAnswer(errorMessage(0xffffffff, -2), -1), { ok: true, value: { kind: 'error', errno: 2 } }, 'sequences compare as 32-bit unsigned');
});

test('a short or inconsistent answer is a reason, and random bytes never throw (seeded)', (t) => {
  t.deepEqual(parseNetlinkAnswer(Buffer.alloc(8), 1), { ok: false, reason: 'truncated' });
  const long = errorMessage(1, 0);
  long.writeUInt32LE(400, 0);
  if (LE) t.deepEqual(parseNetlinkAnswer(long, 1), { ok: false, reason: 'bad-length' });
  t.deepEqual(parseNetlinkAnswer(errorMessage(1, 0).subarray(0, 18), 1), { ok: false, reason: 'bad-length' });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (bytes, sequence) => typeof parseNetlinkAnswer(Buffer.from(bytes), sequence).ok === 'boolean'),
    { seed: 3549, numRuns: 3000 },
  );
});
