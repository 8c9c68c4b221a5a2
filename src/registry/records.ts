/**
 * The registry's records, in wgsd's DNS-SD layout (RFC 6763 over RFC 2782 SRV), so that `dig`,
 * wgsd-client and the mesh client read them alike:
 *
 *   _wireguard._udp.ZONE         PTR  <b32>._wireguard._udp.ZONE      one per peer with an endpoint
 *   <b32>._wireguard._udp.ZONE   SRV  0 0 PORT <b32>._wireguard._udp.ZONE.
 *                                A / AAAA  the endpoint's address
 *                                TXT  "txtvers=1" "pub=<base64 key>" "allowed=<prefix,prefix>" ["verified=<unix s>"]
 *
 * <b32> is the public key in RFC 4648 base32 (with its `====` padding), lower case: DNS names
 * are case-insensitive, base64 is not. A SRV answer carries the A/AAAA and then the TXT record
 * in its additional section (wgsd-client reads the address from the first additional record).
 * TTL 0 everywhere: an endpoint can move at any moment. `verified=` is an addition of ours:
 * wgsd-client reads no TXT key, and RFC 6763 §6.4 tells clients to ignore keys they do not know.
 * Pure: the same peers and question always give the same records.
 */
import type { ParsedEndpoint } from '../reconfig/endpoint.js';

/** One peer as the registry serves it (never a pre-shared or private key: there is no field for one). */
export interface RegistryPeer {
  /** base64, as wg prints it */
  readonly publicKey: string;
  /** undefined: the peer has no endpoint, and is not served */
  readonly endpoint: ParsedEndpoint | undefined;
  readonly allowedIps: readonly string[];
  /** unix seconds when the endpoint was last seen proved (a handshake, or a confirmed move); undefined: never */
  readonly verifiedAt: number | undefined;
}

export const SERVICE = '_wireguard._udp';
/** RFC 6763 §6.7: the first key says which layout the rest follows. */
export const TXT_VERSION = 'txtvers=1';
/** RFC 1035 §3.3: one character-string is at most 255 bytes. */
const TXT_STRING_MAX = 255;

export type Rcode = 'NOERROR' | 'NXDOMAIN' | 'REFUSED';

export interface SoaData {
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minimum: number;
}

export type Rr =
  | { readonly name: string; readonly type: 'PTR'; readonly data: string }
  | { readonly name: string; readonly type: 'SRV'; readonly data: { readonly priority: number; readonly weight: number; readonly port: number; readonly target: string } }
  | { readonly name: string; readonly type: 'A' | 'AAAA'; readonly data: string }
  | { readonly name: string; readonly type: 'TXT'; readonly data: readonly string[] }
  | { readonly name: string; readonly type: 'SOA'; readonly data: SoaData };

export interface Lookup {
  readonly rcode: Rcode;
  readonly answers: readonly Rr[];
  readonly authorities: readonly Rr[];
  readonly additionals: readonly Rr[];
}

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 §6 base32, upper case, padded with `=` to a multiple of 8 characters. */
export function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  return out.padEnd(Math.ceil(out.length / 8) * 8, '=');
}

/** The label that names a peer: its public key in lower-case padded base32 (56 characters). */
export function peerLabel(publicKey: string): string {
  return base32(Buffer.from(publicKey, 'base64')).toLowerCase();
}

/** A zone as compared: lower case, no trailing dot. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * `allowed=` with as many whole prefixes as fit in one TXT string (RFC 6763 §6.4: a key
 * appearing twice is read once, so the list cannot go on in a second string); what did not
 * fit is counted in `more=N`, so a client knows the list is partial.
 */
export function allowedStrings(allowedIps: readonly string[]): string[] {
  let text = 'allowed=';
  let shown = 0;
  for (const prefix of allowedIps) {
    const next = `${text}${shown === 0 ? '' : ','}${prefix}`;
    if (Buffer.byteLength(next) > TXT_STRING_MAX) break;
    text = next;
    shown++;
  }
  return shown === allowedIps.length ? [text] : [text, `more=${allowedIps.length - shown}`];
}

export function txtOf(peer: RegistryPeer): string[] {
  const strings = [TXT_VERSION, `pub=${peer.publicKey}`, ...allowedStrings(peer.allowedIps)];
  if (peer.verifiedAt !== undefined) strings.push(`verified=${Math.floor(peer.verifiedAt)}`);
  return strings;
}

/** The peers of one moment, indexed by their labels, answering questions about one zone. */
export class Directory {
  /** lower case, no trailing dot */
  readonly zone: string;
  private readonly service: string;
  private readonly served: readonly { readonly label: string; readonly peer: RegistryPeer & { readonly endpoint: ParsedEndpoint } }[];
  private readonly byLabel = new Map<string, RegistryPeer & { readonly endpoint: ParsedEndpoint }>();

  constructor(zone: string, peers: readonly RegistryPeer[]) {
    this.zone = canonicalName(zone);
    this.service = `${SERVICE}.${this.zone}`;
    const served: { label: string; peer: RegistryPeer & { endpoint: ParsedEndpoint } }[] = [];
    for (const peer of peers) {
      if (peer.endpoint === undefined) continue;
      const withEndpoint = { ...peer, endpoint: peer.endpoint };
      const label = peerLabel(peer.publicKey);
      served.push({ label, peer: withEndpoint });
      this.byLabel.set(label, withEndpoint);
    }
    this.served = served;
  }

  /** How many peers are served (those with an endpoint). */
  get size(): number {
    return this.served.length;
  }

  /** Whether `name` is in the zone (the zone itself or below it). */
  inZone(name: string): boolean {
    const n = canonicalName(name);
    return n === this.zone || n.endsWith(`.${this.zone}`);
  }

  /** The SOA of the zone, in the authority section of every negative answer (RFC 2308 §3). */
  soa(): Rr {
    // TTL 0 and minimum 0: a name that is missing now may exist a moment later
    return { name: this.zone, type: 'SOA', data: { mname: this.zone, rname: `hostmaster.${this.zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 0 } };
  }

  /** The answer to one question of class IN (`type` as dns-packet names types). */
  lookup(qname: string, type: string): Lookup {
    const name = canonicalName(qname);
    const none = (rcode: Rcode): Lookup => ({ rcode, answers: [], authorities: rcode === 'REFUSED' ? [] : [this.soa()], additionals: [] });
    if (!this.inZone(name)) return none('REFUSED');
    if (name === this.zone) return type === 'SOA' ? { rcode: 'NOERROR', answers: [this.soa()], authorities: [], additionals: [] } : none('NOERROR');
    if (name === this.service) {
      if (type !== 'PTR') return none('NOERROR');
      return { rcode: 'NOERROR', answers: this.served.map(({ label }) => ({ name: this.service, type: 'PTR', data: `${label}.${this.service}` })), authorities: [], additionals: [] };
    }
    // `_udp.ZONE` exists as the parent of the service name (RFC 8020: an empty non-terminal is no NXDOMAIN)
    if (name === `_udp.${this.zone}`) return none('NOERROR');
    const suffix = `.${this.service}`;
    if (!name.endsWith(suffix)) return none('NXDOMAIN');
    const label = name.slice(0, -suffix.length);
    const peer = this.byLabel.get(label);
    if (peer === undefined) return none('NXDOMAIN');
    const owner = `${label}.${this.service}`;
    const host: Rr = { name: owner, type: peer.endpoint.family === 4 ? 'A' : 'AAAA', data: peer.endpoint.address };
    const txt: Rr = { name: owner, type: 'TXT', data: txtOf(peer) };
    switch (type) {
      case 'SRV':
        return { rcode: 'NOERROR', answers: [{ name: owner, type: 'SRV', data: { priority: 0, weight: 0, port: peer.endpoint.port, target: owner } }], authorities: [], additionals: [host, txt] };
      case 'A':
      case 'AAAA':
        return host.type === type ? { rcode: 'NOERROR', answers: [host], authorities: [], additionals: [] } : none('NOERROR');
      case 'TXT':
        return { rcode: 'NOERROR', answers: [txt], authorities: [], additionals: [] };
      default:
        return none('NOERROR');
    }
  }
}
