/**
 * Conntrack destroy events built with the kernel's layout (ctnetlink_conntrack_event: nlmsghdr,
 * nfgenmsg, the original and reply tuples, status, id), for the parser's tests and the
 * listener's stand-in event source.
 */
import { endianness } from 'node:os';
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
  CTA_TUPLE_IP,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_PROTO,
  CTA_TUPLE_REPLY,
  IPCTNL_MSG_CT_DELETE,
  NFNL_SUBSYS_CTNETLINK,
} from '../../src/net/conntrack.js';
import { addressBytes } from '../../src/net/address.js';
import { dispatchDestroyEvents, type ConntrackFlow, type DestroyEvents, type DestroyHandlers } from '../../src/net/conntrack-events.js';

export const LE = endianness() === 'LE';
const PORT = 51820;
const NESTED = 0x8000;
const NET_BYTEORDER = 0x4000;
const CTA_ID = 12;

export function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  if (LE) b.writeUInt16LE(value);
  else b.writeUInt16BE(value);
  return b;
}

function attr(type: number, value: Buffer): Buffer {
  const length = 4 + value.length;
  const padded = Buffer.alloc((length + 3) & ~3);
  u16(length).copy(padded, 0);
  u16(type).copy(padded, 2);
  value.copy(padded, 4);
  return padded;
}

const be16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff]);
const be32 = (v: number): Buffer => Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);

function tuple(type: number, f: ConntrackFlow, protocol = 17): Buffer {
  const v4 = f.family === 4;
  return attr(type | NESTED, Buffer.concat([
    attr(CTA_TUPLE_IP | NESTED, Buffer.concat([
      attr(v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, addressBytes(f.family, f.src)!),
      attr(v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, addressBytes(f.family, f.dst)!),
    ])),
    attr(CTA_TUPLE_PROTO | NESTED, Buffer.concat([
      attr(CTA_PROTO_NUM, Buffer.from([protocol])),
      attr(CTA_PROTO_SRC_PORT | NET_BYTEORDER, be16(f.srcPort)),
      attr(CTA_PROTO_DST_PORT | NET_BYTEORDER, be16(f.dstPort)),
    ])),
  ]));
}

/** A destroy event as the kernel multicasts it. */
export function event(f: ConntrackFlow, options: { protocol?: number; messageType?: number; family?: number } = {}): Buffer {
  const reply: ConntrackFlow = { family: f.family, src: f.dst, srcPort: f.dstPort, dst: f.src, dstPort: f.srcPort };
  const body = Buffer.concat([
    tuple(CTA_TUPLE_ORIG, f, options.protocol),
    tuple(CTA_TUPLE_REPLY, reply, options.protocol),
    attr(CTA_STATUS | NET_BYTEORDER, be32(0x18e)),
    attr(CTA_ID | NET_BYTEORDER, be32(0x12345678)),
  ]);
  const header = Buffer.alloc(20);
  const length = header.length + body.length;
  if (LE) header.writeUInt32LE(length, 0);
  else header.writeUInt32BE(length, 0);
  u16((NFNL_SUBSYS_CTNETLINK << 8) | (options.messageType ?? IPCTNL_MSG_CT_DELETE)).copy(header, 4);
  header[16] = options.family ?? (f.family === 4 ? AF_INET : AF_INET6);
  return Buffer.concat([header, body]);
}


/** A stand-in event source: what a test emits goes through the real parser to the listener. */
export class FakeDestroyEvents implements DestroyEvents {
  private port: () => number | undefined = () => undefined;
  private handlers: DestroyHandlers | undefined;
  closed = false;

  follow(port: () => number | undefined, handlers: DestroyHandlers): void {
    this.port = port;
    this.handlers = handlers;
  }

  emit(...flows: ConntrackFlow[]): void {
    const port = this.port();
    if (this.handlers === undefined || port === undefined) return;
    for (const flow of flows) dispatchDestroyEvents(event(flow), port, this.handlers);
  }

  lose(): void {
    this.handlers?.lost();
  }

  close(): void {
    this.closed = true;
  }
}
