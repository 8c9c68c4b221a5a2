/**
 * The registry's answers in wgsd's layout (DNS-SD, RFC 6763), decoded and checked. Pure: bytes
 * from the network in, a typed result out, never an exception. An answer drives `wg set`, so
 * every field is checked against what wgsd writes and bounded:
 *
 *   PTR  _wireguard._udp.ZONE                 → <base32(key)>._wireguard._udp.ZONE, one per peer
 *   SRV  <base32(key)>._wireguard._udp.ZONE   → 0 0 PORT <the same name>      (answer)
 *   A or AAAA <the same name>                 → the peer's endpoint address  (additional)
 *   TXT  <the same name>                      → "txtvers=1" "pub=<base64 key>" "allowed=<prefixes>"
 *
 * The key is named twice (the base32 label and pub=): both must agree. TTLs are 0 (the data is
 * live); other TXT keys (verified=…) are allowed and ignored.
 */
import dnsPacket from 'dns-packet';
import { addressClass } from '../net/martian.js';
import { fail, ok, type Result } from '../common/result.js';
import { canonicalAddress, parsePrefix, type Prefix } from './prefix.js';

export const SERVICE = '_wireguard._udp';
/** Bytes a registry answer may have; more is not read (a UDP answer without EDNS is 512). */
export const MAX_ANSWER_BYTES = 4096;
/** Allowed prefixes taken from one peer's TXT record; more makes the record refused. */
export const MAX_ALLOWED_PER_PEER = 32;
/** 32 bytes in RFC 4648 base32, padded: 52 letters and four '='. */
const INSTANCE_LABEL = /^[a-z2-7]{52}====$/;
const KEY_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

export type RecordReason =
  | 'undecodable'
  | 'not-a-response'
  | 'wrong-id'
  | 'wrong-question'
  | 'truncated'
  | 'error-rcode'
  | 'bad-instance-name'
  | 'no-srv'
  | 'bad-srv'
  | 'no-address'
  | 'bad-address'
  | 'no-txt'
  | 'bad-txt'
  | 'key-mismatch'
  | 'bad-allowed';

/** One peer as the registry describes it, every field checked. */
export interface RegistryPeer {
  /** base64, as wg prints it */
  readonly publicKey: string;
  /** the address as `wg set … endpoint` takes it: `a.b.c.d:port` or `[v6]:port` */
  readonly endpoint: string;
  readonly address: string;
  readonly port: number;
  readonly allowed: readonly Prefix[];
  /** prefixes in allowed= that were not valid prefixes (they are left out) */
  readonly badPrefixes: number;
}

/** A zone as the user gives it (`mesh.example.` or `mesh.example`) → lower case, no final dot. */
export function normalizeZone(zone: string): Result<string> {
  const name = zone.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > 200) return fail('must be a DNS name of 1 to 200 characters');
  if (!name.split('.').every((label) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label))) return fail('must be a DNS name (letters, digits, - and _ between dots)');
  return ok(name);
}

export function serviceName(zone: string): string {
  return `${SERVICE}.${zone}`;
}

/** base32 (RFC 4648, padded, lower case as wgsd writes it) of a 32-byte key. */
export function base32Key(key: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of key) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out.padEnd(Math.ceil(out.length / 8) * 8, '=');
}

/** The 32-byte key a base32 instance label names, if it is exactly one in canonical form. */
export function keyOfLabel(label: string): Buffer | undefined {
  const lower = label.toLowerCase();
  if (!INSTANCE_LABEL.test(lower)) return undefined;
  let bits = 0;
  let value = 0;
  const bytes: number[] = [];
  for (const char of lower.slice(0, 52)) {
    value = ((value << 5) | B32.indexOf(char)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  const key = Buffer.from(bytes);
  // the last letter's unused bits must be zero, or two labels would name one key
  return key.length === 32 && base32Key(key) === lower ? key : undefined;
}

export function instanceName(key: Buffer, zone: string): string {
  return `${base32Key(key)}.${serviceName(zone)}`;
}

export function encodeQuery(id: number, name: string, type: 'PTR' | 'SRV'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
}

/** dns-packet's decoded form; its types leave out `rcode`, which it sets. */
type Decoded = ReturnType<typeof dnsPacket.decode> & { readonly rcode?: string };

/** The answer to our query `id` for `name`/`type`, decoded, or why it is not one. */
function decodeAnswer(bytes: Buffer, id: number, name: string, type: 'PTR' | 'SRV'): Result<Decoded, RecordReason> {
  if (bytes.length > MAX_ANSWER_BYTES || bytes.length < 12) return fail('undecodable');
  let packet: Decoded;
  try {
    packet = dnsPacket.decode(bytes);
  } catch {
    return fail('undecodable');
  }
  if (packet.type !== 'response') return fail('not-a-response');
  if (packet.id !== id) return fail('wrong-id');
  const question = packet.questions?.[0];
  if (packet.questions?.length !== 1 || question === undefined || question.type !== type || question.name.toLowerCase() !== name) return fail('wrong-question');
  if (packet.flag_tc === true) return fail('truncated');
  return ok(packet);
}

/** What the query id of an answer is, to match it to its query before anything else. */
export function answerId(bytes: Buffer): number | undefined {
  return bytes.length >= 2 ? bytes.readUInt16BE(0) : undefined;
}

export interface PtrResult {
  /** the peers' keys (32 bytes each), at most `limit`, each once, in the registry's order */
  readonly keys: readonly Buffer[];
  /** PTR records that named no instance of this zone in canonical form */
  readonly bad: number;
  /** valid names beyond `limit` */
  readonly beyondLimit: number;
}

/** The PTR answer: which peers the registry lists. NXDOMAIN is an empty list. */
export function decodePtrAnswer(bytes: Buffer, id: number, zone: string, limit: number): Result<PtrResult, RecordReason> {
  const service = serviceName(zone);
  const decoded = decodeAnswer(bytes, id, service, 'PTR');
  if (!decoded.ok) return decoded;
  const packet = decoded.value;
  if (packet.rcode === 'NXDOMAIN') return ok({ keys: [], bad: 0, beyondLimit: 0 });
  if (packet.rcode !== 'NOERROR') return fail('error-rcode');
  const keys: Buffer[] = [];
  const seen = new Set<string>();
  let bad = 0;
  let beyondLimit = 0;
  for (const answer of packet.answers ?? []) {
    if (answer.type !== 'PTR' || answer.name.toLowerCase() !== service) {
      bad++;
      continue;
    }
    const target = String(answer.data).toLowerCase();
    const suffix = `.${service}`;
    const key = target.endsWith(suffix) ? keyOfLabel(target.slice(0, -suffix.length)) : undefined;
    if (key === undefined) {
      bad++;
      continue;
    }
    const hex = key.toString('hex');
    if (seen.has(hex)) continue;
    seen.add(hex);
    if (keys.length >= limit) beyondLimit++;
    else keys.push(key);
  }
  return ok({ keys, bad, beyondLimit });
}

function txtStrings(data: unknown): string[] | undefined {
  const parts = Array.isArray(data) ? data : [data];
  const strings: string[] = [];
  for (const part of parts) {
    if (Buffer.isBuffer(part)) strings.push(part.toString('latin1'));
    else if (typeof part === 'string') strings.push(part);
    else return undefined;
  }
  return strings;
}

/** The TXT record's keys: txtvers first and 1, pub= and allowed= once each, nothing oversized. */
function readTxt(strings: readonly string[]): Result<{ pub: string; allowed: string }, RecordReason> {
  if (strings.length === 0 || strings.length > 16 || strings[0] !== 'txtvers=1') return fail('bad-txt');
  const values = new Map<string, string>();
  for (const text of strings.slice(1)) {
    const eq = text.indexOf('=');
    if (eq <= 0) continue;
    const key = text.slice(0, eq).toLowerCase();
    if (values.has(key)) return fail('bad-txt');
    values.set(key, text.slice(eq + 1));
  }
  const pub = values.get('pub');
  const allowed = values.get('allowed');
  if (pub === undefined || allowed === undefined) return fail('bad-txt');
  return ok({ pub, allowed });
}

/** The SRV answer for one peer, with its address and TXT record: the peer, or why not. */
export function decodeSrvAnswer(bytes: Buffer, id: number, key: Buffer, zone: string): Result<RegistryPeer, RecordReason> {
  const name = instanceName(key, zone);
  const decoded = decodeAnswer(bytes, id, name, 'SRV');
  if (!decoded.ok) return decoded;
  const packet = decoded.value;
  if (packet.rcode !== 'NOERROR') return fail(packet.rcode === 'NXDOMAIN' ? 'no-srv' : 'error-rcode');
  const srv = packet.answers?.[0];
  if (srv === undefined || srv.type !== 'SRV') return fail('no-srv');
  if (srv.name.toLowerCase() !== name) return fail('bad-srv');
  const port = srv.data.port;
  const target = srv.data.target.toLowerCase();
  if (!Number.isInteger(port) || port < 1 || port > 65_535 || target !== name) return fail('bad-srv');
  const extra = packet.additionals ?? [];
  const hosts = extra.filter((record) => (record.type === 'A' || record.type === 'AAAA') && record.name.toLowerCase() === target);
  if (hosts.length === 0) return fail('no-address');
  // one endpoint per peer: two addresses would leave the choice to whoever wrote the answer
  if (hosts.length > 1) return fail('bad-address');
  const host = hosts[0]! as { type: string; data?: unknown };
  const family = host.type === 'A' ? 4 : 6;
  const address = typeof host.data === 'string' ? canonicalAddress(host.data) : undefined;
  if (address === undefined || address.includes(':') !== (family === 6) || addressClass(family, address) !== undefined) return fail('bad-address');
  const txts = extra.filter((record) => record.type === 'TXT' && record.name.toLowerCase() === name);
  if (txts.length !== 1) return fail('no-txt');
  const strings = txtStrings((txts[0]! as { data?: unknown }).data);
  if (strings === undefined) return fail('bad-txt');
  const txt = readTxt(strings);
  if (!txt.ok) return txt;
  if (!KEY_BASE64.test(txt.value.pub)) return fail('bad-txt');
  const publicKey = txt.value.pub;
  if (!Buffer.from(publicKey, 'base64').equals(key)) return fail('key-mismatch');
  const entries = txt.value.allowed === '' ? [] : txt.value.allowed.split(',');
  if (entries.length > MAX_ALLOWED_PER_PEER) return fail('bad-allowed');
  const allowed: Prefix[] = [];
  let badPrefixes = 0;
  for (const entry of entries) {
    const prefix = parsePrefix(entry.trim());
    if (prefix.ok) allowed.push(prefix.value);
    else badPrefixes++;
  }
  const endpoint = family === 4 ? `${address}:${port}` : `[${address}]:${port}`;
  return ok({ publicKey, endpoint, address, port, allowed, badPrefixes });
}
