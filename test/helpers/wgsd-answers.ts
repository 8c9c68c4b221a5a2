/**
 * Registry answers in wgsd's layout, built with dns-packet, as fixtures for the mesh client's
 * decoder and client tests. `base32` here is written independently of src/mesh/records.ts
 * (RFC 4648 by the table), so the tests check one against the other.
 */
import { randomBytes } from 'node:crypto';
import dnsPacket from 'dns-packet';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function rfc4648Base32(bytes: Buffer): string {
  let bitString = '';
  for (const byte of bytes) bitString += byte.toString(2).padStart(8, '0');
  while (bitString.length % 5 !== 0) bitString += '0';
  let out = '';
  for (let i = 0; i < bitString.length; i += 5) out += ALPHABET[Number.parseInt(bitString.slice(i, i + 5), 2)];
  while (out.length % 8 !== 0) out += '=';
  return out;
}

export interface FixturePeer {
  key: Buffer;
  address: string;
  port: number;
  allowed: string[];
}

export function fixturePeer(address = '192.0.2.20', port = 40000, allowed = ['203.0.113.20/32']): FixturePeer {
  return { key: randomBytes(32), address, port, allowed };
}

/** wgsd lower-cases the base32 label */
export function label(key: Buffer): string {
  return rfc4648Base32(key).toLowerCase();
}

export function ptrAnswer(id: number, zone: string, peers: readonly FixturePeer[], extra: Partial<dnsPacket.Packet> = {}): Buffer {
  const name = `_wireguard._udp.${zone}`;
  return dnsPacket.encode({
    type: 'response',
    id,
    flags: dnsPacket.AUTHORITATIVE_ANSWER,
    questions: [{ type: 'PTR', name, class: 'IN' }],
    answers: peers.map((peer) => ({ type: 'PTR', name, ttl: 0, class: 'IN', data: `${label(peer.key)}._wireguard._udp.${zone}` })),
    ...extra,
  });
}

export interface SrvTweaks {
  port?: number;
  target?: string;
  txt?: string[];
  address?: string;
  addressType?: 'A' | 'AAAA';
  extraHosts?: number;
  noTxt?: boolean;
}

export function srvAnswer(id: number, zone: string, peer: FixturePeer, tweaks: SrvTweaks = {}): Buffer {
  const name = `${label(peer.key)}._wireguard._udp.${zone}`;
  const address = tweaks.address ?? peer.address;
  const type = tweaks.addressType ?? (address.includes(':') ? 'AAAA' : 'A');
  const txt = tweaks.txt ?? ['txtvers=1', `pub=${peer.key.toString('base64')}`, `allowed=${peer.allowed.join(',')}`];
  const host = { type, name: tweaks.target ?? name, ttl: 0, class: 'IN', data: address } as dnsPacket.Answer;
  const additionals: dnsPacket.Answer[] = [host];
  for (let i = 0; i < (tweaks.extraHosts ?? 0); i++) additionals.push({ ...host, data: '192.0.2.99' } as dnsPacket.Answer);
  if (!tweaks.noTxt) additionals.push({ type: 'TXT', name, ttl: 0, class: 'IN', data: txt.map((s) => Buffer.from(s)) });
  return dnsPacket.encode({
    type: 'response',
    id,
    flags: dnsPacket.AUTHORITATIVE_ANSWER,
    questions: [{ type: 'SRV', name, class: 'IN' }],
    answers: [{ type: 'SRV', name, ttl: 0, class: 'IN', data: { priority: 0, weight: 0, port: tweaks.port ?? peer.port, target: tweaks.target ?? name } }],
    additionals,
  });
}
