/**
 * The kernel WireGuard's peers and their endpoints, asked over generic netlink as `wg show`
 * asks (WG_CMD_GET_DEVICE, a dump), without starting a process: a confirmation reads this
 * after every roam, and starting `wg` from a daemon of this size stalls its event loop for
 * milliseconds each time (the fork), holding up every packet captured meanwhile.
 *
 * Only each peer's public key and endpoint are kept. The dump also carries the interface's
 * private key and the peers' preshared keys: those attributes are skipped unread, and nothing
 * from a message ever goes into an error text. Every length is checked before it is used; a
 * message this does not understand is an error, never a throw.
 *
 * Layouts: include/uapi/linux/netlink.h, genetlink.h and wireguard.h.
 */
import { fail, ok, type Result } from '../common/result.js';
import { formatIpv6 } from '../net/ipv6.js';
import type { NativeSockets } from '../net/native.js';

const NLMSG_HEADER = 16;
const GENL_HEADER = 4;
const NLA_HEADER = 4;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLA_TYPE_MASK = 0x3fff;

const GENL_ID_CTRL = 0x10;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR_FAMILY_ID = 1;
const CTRL_ATTR_FAMILY_NAME = 2;

const WG_GENL_NAME = 'wireguard';
const WG_GENL_VERSION = 1;
const WG_CMD_GET_DEVICE = 0;
const WGDEVICE_A_IFNAME = 2;
const WGDEVICE_A_PEERS = 8;
const WGPEER_A_PUBLIC_KEY = 1;
const WGPEER_A_ENDPOINT = 4;

const AF_INET = 2;
const AF_INET6 = 10;
const WG_KEY_LEN = 32;
/** IFNAMSIZ - 1 */
const MAX_IFNAME = 15;

/** How long one answer may take (the kernel answers while handling the send), and how many datagrams a dump may take. */
const ANSWER_TIMEOUT_MS = 200;
const MAX_DATAGRAMS = 4096;

const align4 = (n: number): number => (n + 3) & ~3;

function attribute(type: number, value: Buffer): Buffer {
  const out = Buffer.alloc(align4(NLA_HEADER + value.length));
  out.writeUInt16LE(NLA_HEADER + value.length, 0);
  out.writeUInt16LE(type, 2);
  value.copy(out, NLA_HEADER);
  return out;
}

/** A generic netlink request: netlink header, genl header (cmd, version), attributes. */
export function buildGenlRequest(family: number, flags: number, sequence: number, command: number, version: number, attributes: readonly Buffer[]): Buffer {
  const body = Buffer.concat(attributes);
  const out = Buffer.alloc(NLMSG_HEADER + GENL_HEADER + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(family, 4);
  out.writeUInt16LE(NLM_F_REQUEST | flags, 6);
  out.writeUInt32LE(sequence >>> 0, 8);
  out.writeUInt32LE(0, 12);
  out.writeUInt8(command, 16);
  out.writeUInt8(version, 17);
  body.copy(out, NLMSG_HEADER + GENL_HEADER);
  return out;
}

const cString = (text: string): Buffer => Buffer.concat([Buffer.from(text, 'utf8'), Buffer.alloc(1)]);

/** The request for the id of the `wireguard` family. */
export function buildFamilyRequest(sequence: number): Buffer {
  return buildGenlRequest(GENL_ID_CTRL, NLM_F_ACK, sequence, CTRL_CMD_GETFAMILY, 1, [attribute(CTRL_ATTR_FAMILY_NAME, cString(WG_GENL_NAME))]);
}

/** The dump request for one interface's device and peers. */
export function buildGetDeviceRequest(family: number, iface: string, sequence: number): Buffer {
  return buildGenlRequest(family, NLM_F_DUMP | NLM_F_ACK, sequence, WG_CMD_GET_DEVICE, WG_GENL_VERSION, [attribute(WGDEVICE_A_IFNAME, cString(iface))]);
}

/** Each attribute in buf[from, to): its type (flags masked off) and value bounds; false if one overruns. */
function eachAttribute(buf: Buffer, from: number, to: number, visit: (type: number, start: number, end: number) => boolean): boolean {
  let at = from;
  while (at + NLA_HEADER <= to) {
    const length = buf.readUInt16LE(at);
    if (length < NLA_HEADER || at + length > to) return false;
    if (!visit(buf.readUInt16LE(at + 2) & NLA_TYPE_MASK, at + NLA_HEADER, at + length)) return false;
    at += align4(length);
  }
  return true;
}

/** One netlink message of a datagram: its type, sequence, and payload bounds. */
interface Message {
  readonly type: number;
  readonly sequence: number;
  readonly start: number;
  readonly end: number;
}

function messages(buf: Buffer): Message[] | undefined {
  const out: Message[] = [];
  let at = 0;
  while (at + NLMSG_HEADER <= buf.length) {
    const length = buf.readUInt32LE(at);
    if (length < NLMSG_HEADER || at + length > buf.length) return undefined;
    out.push({ type: buf.readUInt16LE(at + 4), sequence: buf.readUInt32LE(at + 8), start: at + NLMSG_HEADER, end: at + length });
    at += align4(length);
  }
  return at >= buf.length ? out : undefined;
}

/** NLMSG_ERROR's errno (0 for an ACK), as a negative number; undefined when it is cut short. */
function errorOf(buf: Buffer, message: Message): number | undefined {
  return message.end - message.start >= 4 ? buf.readInt32LE(message.start) : undefined;
}

/** The family id from CTRL_CMD_GETFAMILY's answer message, if it carries one. */
function familyIdOf(buf: Buffer, message: Message): number | undefined {
  let id: number | undefined;
  const fine = eachAttribute(buf, message.start + GENL_HEADER, message.end, (type, start, end) => {
    if (type === CTRL_ATTR_FAMILY_ID && end - start >= 2) id = buf.readUInt16LE(start);
    return true;
  });
  return fine ? id : undefined;
}

/** `192.0.2.7:51820` / `[2001:db8::7]:51820` from a sockaddr_in/in6, as wg prints it; undefined for anything else. */
export function formatSockaddr(buf: Buffer, start: number, end: number): string | undefined {
  if (end - start < 4) return undefined;
  const family = buf.readUInt16LE(start);
  const port = buf.readUInt16BE(start + 2);
  if (family === AF_INET && end - start >= 8) {
    return `${buf[start + 4]}.${buf[start + 5]}.${buf[start + 6]}.${buf[start + 7]}:${port}`;
  }
  if (family === AF_INET6 && end - start >= 24) return `[${formatIpv6(buf, start + 8)}]:${port}`;
  return undefined;
}

/** Adds the peers of one WG_CMD_GET_DEVICE message to `into`; false if it is malformed. */
function peersOf(buf: Buffer, message: Message, into: Map<string, string | undefined>): boolean {
  return eachAttribute(buf, message.start + GENL_HEADER, message.end, (type, start, end) => {
    if (type !== WGDEVICE_A_PEERS) return true;
    return eachAttribute(buf, start, end, (_index, peerStart, peerEnd) => {
      let key: string | undefined;
      let endpoint: string | undefined;
      const fine = eachAttribute(buf, peerStart, peerEnd, (peerType, valueStart, valueEnd) => {
        if (peerType === WGPEER_A_PUBLIC_KEY) {
          if (valueEnd - valueStart !== WG_KEY_LEN) return false;
          key = buf.subarray(valueStart, valueEnd).toString('base64');
        } else if (peerType === WGPEER_A_ENDPOINT) endpoint = formatSockaddr(buf, valueStart, valueEnd);
        return true;
      });
      if (!fine || key === undefined) return false;
      // A peer split over two messages (many allowed IPs) comes again with its key: keep what is known.
      into.set(key, endpoint ?? into.get(key));
      return true;
    });
  });
}

export type GenetlinkSockets = Pick<NativeSockets, 'netlinkSend' | 'netlinkReceive'>;

/**
 * Reads over one NETLINK_GENERIC socket (NativeSockets.openNetlinkGeneric). The family id is
 * asked once and kept; every call is a send and a few reads, each bounded by ANSWER_TIMEOUT_MS.
 */
export class WireGuardGenetlink {
  private family: number | undefined;
  private sequence = Math.floor(Math.random() * 0x7fffffff);

  constructor(
    private readonly sockets: GenetlinkSockets,
    private readonly fd: number,
  ) {}

  private next(): number {
    this.sequence = (this.sequence + 1) >>> 0;
    return this.sequence;
  }

  /** The `wireguard` family id; an error when the kernel has no WireGuard (module not loaded). */
  familyId(): Result<number, string> {
    if (this.family !== undefined) return ok(this.family);
    const sequence = this.next();
    const sent = this.sockets.netlinkSend(this.fd, buildFamilyRequest(sequence));
    if (sent < 0) return fail(`errno ${-sent}`);
    let id: number | undefined;
    const done = this.collect(sequence, (buf, message) => {
      id = familyIdOf(buf, message) ?? id;
      return true;
    });
    if (!done.ok) return done;
    if (id === undefined) return fail('no wireguard family');
    this.family = id;
    return ok(id);
  }

  /** Every peer of `iface` (base64 public key) with its endpoint (undefined when it has none). */
  endpoints(iface: string): Result<Map<string, string | undefined>, string> {
    if (iface.length === 0 || Buffer.byteLength(iface) > MAX_IFNAME) return fail('not an interface name');
    const family = this.familyId();
    if (!family.ok) return family;
    const sequence = this.next();
    const sent = this.sockets.netlinkSend(this.fd, buildGetDeviceRequest(family.value, iface, sequence));
    if (sent < 0) return fail(`errno ${-sent}`);
    const peers = new Map<string, string | undefined>();
    const done = this.collect(sequence, (buf, message) => message.type !== family.value || peersOf(buf, message, peers));
    return done.ok ? ok(peers) : done;
  }

  /**
   * Reads the answers to `sequence` until NLMSG_DONE or the ACK, passing every other message of
   * ours to `take` (false: malformed). Datagrams of other sequences are skipped.
   */
  private collect(sequence: number, take: (buf: Buffer, message: Message) => boolean): Result<true, string> {
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (let i = 0; i < MAX_DATAGRAMS; i++) {
      const datagram = this.sockets.netlinkReceive(this.fd, Math.max(0, deadline - Date.now()));
      if (typeof datagram === 'number') return fail(`errno ${-datagram}`);
      const parsed = messages(datagram);
      if (parsed === undefined) return fail('a malformed netlink datagram');
      for (const message of parsed) {
        if (message.sequence !== sequence) continue;
        if (message.type === NLMSG_DONE) return ok(true);
        if (message.type === NLMSG_ERROR) {
          const errno = errorOf(datagram, message);
          if (errno === undefined) return fail('a malformed netlink error');
          // 0 is the ACK: after a dump's NLMSG_DONE none comes, after a plain request it ends it
          return errno === 0 ? ok(true) : fail(`errno ${-errno}`);
        }
        if (!take(datagram, message)) return fail('a malformed WireGuard answer');
      }
    }
    return fail('too many datagrams');
  }
}
