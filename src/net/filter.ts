/**
 * Capture filters (libpcap syntax), compiled into the kernel, so that only the packets a
 * daemon acts on are ever copied to user space.
 *
 * libpcap 1.10.3 cannot index a transport header behind IPv6: `udp[4:2]` and `tcp[13]` match
 * no IPv6 packet at all. Alone (`ip6 and udp[4:2] = 156`) that fails to compile with
 * "expression rejects all packets"; inside an `or` it compiles and silently drops IPv6. The
 * IPv6 clauses therefore read fixed offsets from the IPv6 header: next header at ip6[6], hop
 * limit at ip6[7], the transport header at ip6[40]. They match only packets without extension
 * headers, which is what WireGuard and traceroute send.
 */
import { ReconfigError } from '../common/errors.js';

const PROTOCOL_TCP = 6;
const PROTOCOL_UDP = 17;
/** UDP length of a handshake initiation: 8 header bytes and the 148-byte message. */
const INITIATION_UDP_LENGTH = 8 + 148;
/** Message type 1 as a little-endian u32 with its three reserved zero bytes, loaded big endian. */
const INITIATION_HEAD = '0x01000000';
/** UDP length of a handshake response: 8 header bytes and the 92-byte message. */
const RESPONSE_UDP_LENGTH = 8 + 92;
const RESPONSE_HEAD = '0x02000000';
/** Transport data: at least the 16-byte header and the 16-byte tag of an empty (keepalive) packet. */
const TRANSPORT_MIN_UDP_LENGTH = 8 + 32;
const TRANSPORT_HEAD = '0x04000000';
/** IPv4 flags and fragment offset without DF: MF and the offset are 0 in an unfragmented packet. */
const IPV4_FRAGMENT_BITS = '0x3fff';
const TCP_SYN = 0x02;
const TCP_ACK = 0x10;
/** Offsets in an IPv6 packet without extension headers: the transport header starts at 40. */
const IP6_UDP_SRC_PORT = 40;
const IP6_UDP_DST_PORT = 42;
const IP6_UDP_LENGTH = 44;
const IP6_UDP_PAYLOAD = 48;
const IP6_TCP_DST_PORT = 42;
const IP6_TCP_FLAGS = 40 + 13;

export interface KnockRange {
  readonly basePort: number;
  /** how many ports, from basePort on */
  readonly range: number;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ReconfigError('E_USAGE', `${what} must be a whole number from 1 to 65535, not ${String(port)}.`);
  }
}

export function checkKnockRange({ basePort, range }: KnockRange): void {
  checkPort(basePort, 'The knock base port (-p)');
  if (!Number.isInteger(range) || range < 1 || basePort + range - 1 > 65535) {
    throw new ReconfigError(
      'E_USAGE',
      `The knock range (--range) must be a whole number from 1 to ${65536 - basePort} with base port ${basePort}, not ${String(range)}.`,
    );
  }
}

/** UDP to `listenPort` holding exactly a WireGuard handshake initiation, over IPv4 or IPv6. */
export function initiationFilter(listenPort: number): string {
  checkPort(listenPort, 'The WireGuard listen port');
  const v4 = [
    'ip',
    `ip[6:2] & ${IPV4_FRAGMENT_BITS} = 0`,
    `udp dst port ${listenPort}`,
    `udp[4:2] = ${INITIATION_UDP_LENGTH}`,
    `udp[8:4] = ${INITIATION_HEAD}`,
  ];
  const v6 = [
    'ip6',
    `ip6[6] = ${PROTOCOL_UDP}`,
    `ip6[${IP6_UDP_DST_PORT}:2] = ${listenPort}`,
    `ip6[${IP6_UDP_LENGTH}:2] = ${INITIATION_UDP_LENGTH}`,
    `ip6[${IP6_UDP_PAYLOAD}:4] = ${INITIATION_HEAD}`,
  ];
  return `(${v4.join(' and ')}) or (${v6.join(' and ')})`;
}

/** A source to leave out of the capture: a peer's current endpoint. */
export interface ExcludedSource {
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
}

/**
 * Everything reconfig-wg looks at on the WireGuard listen port, over IPv4 and IPv6:
 * * incoming handshake initiations (to verify and hand to WireGuard);
 * * R2's own initiations and responses leaving the port (they name R2's session indices);
 * * incoming transport data, except from the peers' current endpoints (`exclude`): WireGuard
 *   already has those, so a busy tunnel's data never reaches user space; what is left is data
 *   from a new address, after a NAT remap.
 * What crosses lo also matches (reconfig-wg's own re-sent packets); the listener drops it by the
 * cooked header's link type: `ifindex 1` here would make libpcap filter everything in user space.
 * `inbound` uses the packet type Linux gives every captured frame (the SLL header on `any`, the
 * socket's packet type elsewhere), so R2's own data to a peer whose port happens to be the
 * listen port is never copied either; `outbound` on the clause for R2's own handshake messages
 * means a stranger's packet from the listen port, made to look like one, never matches it.
 */
export function wireguardFilter(listenPort: number, exclude: readonly ExcludedSource[] = []): string {
  checkPort(listenPort, 'The WireGuard listen port');
  const notFragment = `ip[6:2] & ${IPV4_FRAGMENT_BITS} = 0`;
  const v4Head = (length: number, head: string): string => `udp[4:2] = ${length} and udp[8:4] = ${head}`;
  const v6Head = (length: number, head: string): string => `ip6[${IP6_UDP_LENGTH}:2] = ${length} and ip6[${IP6_UDP_PAYLOAD}:4] = ${head}`;
  const v4Sent = `(${v4Head(INITIATION_UDP_LENGTH, INITIATION_HEAD)}) or (${v4Head(RESPONSE_UDP_LENGTH, RESPONSE_HEAD)})`;
  const v6Sent = `(${v6Head(INITIATION_UDP_LENGTH, INITIATION_HEAD)}) or (${v6Head(RESPONSE_UDP_LENGTH, RESPONSE_HEAD)})`;
  const v4Excluded = exclude
    .filter((source) => source.family === 4)
    .map((source) => ` and not (src host ${source.address} and udp src port ${source.port})`)
    .join('');
  const v6Excluded = exclude
    .filter((source) => source.family === 6)
    .map((source) => ` and not (ip6 src host ${source.address} and ip6[${IP6_UDP_SRC_PORT}:2] = ${source.port})`)
    .join('');
  const v4 = [
    `(inbound and udp dst port ${listenPort} and ${v4Head(INITIATION_UDP_LENGTH, INITIATION_HEAD)})`,
    `(outbound and udp src port ${listenPort} and (${v4Sent}))`,
    `(inbound and udp dst port ${listenPort} and udp[4:2] >= ${TRANSPORT_MIN_UDP_LENGTH} and udp[8:4] = ${TRANSPORT_HEAD}${v4Excluded})`,
  ];
  const v6 = [
    `(inbound and ip6[${IP6_UDP_DST_PORT}:2] = ${listenPort} and ${v6Head(INITIATION_UDP_LENGTH, INITIATION_HEAD)})`,
    `(outbound and ip6[${IP6_UDP_SRC_PORT}:2] = ${listenPort} and (${v6Sent}))`,
    `(inbound and ip6[${IP6_UDP_DST_PORT}:2] = ${listenPort} and ip6[${IP6_UDP_LENGTH}:2] >= ${TRANSPORT_MIN_UDP_LENGTH} and ip6[${IP6_UDP_PAYLOAD}:4] = ${TRANSPORT_HEAD}${v6Excluded})`,
  ];
  return `(ip and ${notFragment} and udp and (${v4.join(' or ')})) or (ip6 and ip6[6] = ${PROTOCOL_UDP} and (${v6.join(' or ')}))`;
}

/**
 * UDP, or TCP with SYN set and ACK clear, to ports basePort..basePort+range-1, arriving with
 * IPv4 TTL 1 or IPv6 hop limit 1: the probe of a traceroute that just reaches this host.
 */
export function knockFilter(knock: KnockRange): string {
  checkKnockRange(knock);
  const low = knock.basePort;
  const high = knock.basePort + knock.range - 1;
  const synOnly = `& ${TCP_SYN | TCP_ACK} = ${TCP_SYN}`;
  const v4 = `ip and ip[8] = 1 and (udp or (tcp and tcp[13] ${synOnly})) and dst portrange ${low}-${high}`;
  const v6Ports = (at: number): string => `ip6[${at}:2] >= ${low} and ip6[${at}:2] <= ${high}`;
  const v6Udp = `ip6[6] = ${PROTOCOL_UDP} and ${v6Ports(IP6_UDP_DST_PORT)}`;
  const v6Tcp = `ip6[6] = ${PROTOCOL_TCP} and ${v6Ports(IP6_TCP_DST_PORT)} and ip6[${IP6_TCP_FLAGS}] ${synOnly}`;
  return `(${v4}) or (ip6 and ip6[7] = 1 and ((${v6Udp}) or (${v6Tcp})))`;
}
