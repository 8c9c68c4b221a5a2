/**
 * decodeFrame: the whole path from a captured frame to a Datagram, for every link type, and a
 * seeded property test that it never throws on random or mutated frames.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import test from 'ava';
import fc from 'fast-check';
import { readPcapFile } from '../scripts/lab/pcapfile.js';
import { decodeFrame, linkTypeFromPcap, type Datagram, type LinkType } from '../src/net/packet.js';
import { ACK, LINK_TYPES, SYN, WRAP, ethernet, ipv4, ipv6, tcp, udp } from './helpers/net-frames.js';

const payload = Buffer.from('a WireGuard message would be here');
const udp4 = ipv4(udp(40001, 51820, payload), { src: '203.0.113.5', dst: '192.0.2.1', ttl: 57 });
const udp6 = ipv6(udp(40001, 51820, payload), { src: '2001:db8:1::5', dst: '2001:db8::1', hopLimit: 1, extensions: [{ type: 0 }, { type: 60 }] });
const syn4 = ipv4(tcp(33000, 19004, SYN, Buffer.alloc(0), Buffer.alloc(20, 1)), { protocol: 6, ttl: 1 });
const synAck6 = ipv6(tcp(33000, 19004, SYN | ACK, Buffer.from('data')), { protocol: 6 });

const expected4: Datagram = { family: 4, src: '203.0.113.5', dst: '192.0.2.1', ttl: 57, protocol: 'udp', srcPort: 40001, dstPort: 51820, tcpFlags: 0, payload };
const expected6: Datagram = { ...expected4, family: 6, src: '2001:db8:1::5', dst: '2001:db8::1', ttl: 1 };

test('linkTypeFromPcap maps node_pcap names, SLL2 included by its number', (t) => {
  const names: [string, LinkType][] = [
    ['LINKTYPE_ETHERNET', 'ethernet'],
    ['LINKTYPE_LINUX_SLL', 'sll'],
    ['Unknown linktype 276', 'sll2'],
    ['LINKTYPE_RAW', 'raw'],
    ['LINKTYPE_NULL', 'null'],
  ];
  for (const [name, link] of names) t.deepEqual(linkTypeFromPcap(name), { ok: true, value: link });
  for (const name of ['LINKTYPE_IEEE802_11_RADIO', 'Unknown linktype 147', '']) t.deepEqual(linkTypeFromPcap(name), { ok: false, reason: 'unsupported-link' });
});

for (const link of LINK_TYPES) {
  test(`${link}: UDP over IPv4 and over IPv6 with extension headers decode to the same fields`, (t) => {
    t.deepEqual(decodeFrame(link, WRAP[link](udp4)), { ok: true, value: expected4 });
    t.deepEqual(decodeFrame(link, WRAP[link](udp6)), { ok: true, value: expected6 });
  });
}

test('TCP: flags and payload come through, over IPv4 and IPv6', (t) => {
  const syn = decodeFrame('ethernet', ethernet(syn4));
  t.true(syn.ok);
  if (syn.ok) t.like(syn.value, { protocol: 'tcp', srcPort: 33000, dstPort: 19004, ttl: 1, tcpFlags: SYN, payload: Buffer.alloc(0) });
  const synAck = decodeFrame('raw', synAck6);
  t.true(synAck.ok);
  if (synAck.ok) t.like(synAck.value, { family: 6, protocol: 'tcp', tcpFlags: SYN | ACK, payload: Buffer.from('data') });
});

test('Ethernet padding after a short packet is not part of the payload', (t) => {
  const frame = ethernet(ipv4(udp(1, 2, Buffer.from('x'))));
  t.is(frame.length, 60);
  const decoded = decodeFrame('ethernet', frame);
  t.true(decoded.ok && decoded.value.payload.equals(Buffer.from('x')));
});

test('the payload is a copy: the capture buffer may be reused at once', (t) => {
  const frame = ethernet(udp4);
  const decoded = decodeFrame('ethernet', frame);
  frame.fill(0);
  t.true(decoded.ok && decoded.value.payload.equals(payload));
});

test('every reason, from a frame that has it', (t) => {
  const icmp = ipv4(Buffer.alloc(8), { protocol: 1 });
  const badIpv4 = Buffer.from(udp4);
  badIpv4[0] = 0x43;
  const badIpv6 = Buffer.from(udp6);
  badIpv6.writeUInt16BE(2, 4);
  const cases: [LinkType, Buffer, string][] = [
    ['ethernet', ethernet(udp4).subarray(0, 20), 'truncated'],
    ['ethernet', ethernet(Buffer.alloc(28), [], 0x0806), 'not-ip'],
    ['raw', badIpv4, 'bad-ipv4'],
    ['raw', badIpv6, 'bad-ipv6'],
    ['raw', ipv4(udp(1, 2, payload), { flags: 0x2000 }), 'fragment'],
    ['raw', ipv4(Buffer.alloc(16), { flags: 0x0002 }), 'fragment'],
    ['raw', ipv6(udp(1, 2, payload), { extensions: [{ type: 44 }] }), 'fragment'],
    ['raw', icmp, 'not-udp-or-tcp'],
    ['raw', ipv6(Buffer.alloc(8), { protocol: 58 }), 'not-udp-or-tcp'],
    ['raw', ipv4(udp(1, 2, payload, 8 + payload.length + 1)), 'bad-udp'],
    ['raw', ipv4(tcp(1, 2, SYN).fill(0x40, 12, 13), { protocol: 6 }), 'bad-tcp'],
  ];
  for (const [link, frame, reason] of cases) t.deepEqual(decodeFrame(link, frame), { ok: false, reason } as never, reason);
});

test('every cut of a frame, for every link type, is truncated and never throws', (t) => {
  for (const link of LINK_TYPES) {
    for (const packet of [udp4, udp6, syn4, synAck6]) {
      const frame = link === 'ethernet' ? Buffer.concat([ethernet(packet).subarray(0, 14), packet]) : WRAP[link](packet);
      for (let length = 0; length < frame.length; length++) {
        const decoded = decodeFrame(link, frame.subarray(0, length));
        if (decoded.ok || decoded.reason !== 'truncated') t.fail(`${link} cut at ${length}: ${JSON.stringify(decoded)}`);
      }
      t.true(decodeFrame(link, frame).ok, link);
    }
  }
});

/** Real traceroute probes, as tcpdump recorded them on an Ethernet device, re-framed for every link. */
const realPackets: Buffer[] = ['knock-udp4.pcap', 'knock-udp6.pcap', 'knock-tcp4.pcap'].flatMap((name) =>
  readPcapFile(readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url))).frames.map((frame) => frame.subarray(14)),
);
const handBuilt = [udp4, udp6, syn4, synAck6];

function checkDatagram(result: ReturnType<typeof decodeFrame>): boolean {
  if (!result.ok) return typeof result.reason === 'string';
  const d = result.value;
  return isIP(d.src) === d.family && isIP(d.dst) === d.family && d.ttl >= 0 && d.ttl <= 255 && d.srcPort <= 65535 && d.dstPort <= 65535 && Buffer.isBuffer(d.payload);
}

test('decodeFrame never throws on random bytes, for every link type (seeded)', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...LINK_TYPES), fc.uint8Array({ maxLength: 160 }), (link, bytes) => checkDatagram(decodeFrame(link, Buffer.from(bytes)))),
    { seed: 42, numRuns: 5000 },
  );
  t.pass();
});

test('decodeFrame never throws on mutated real frames, for every link type (seeded)', (t) => {
  const mutation = fc.record({
    packet: fc.constantFrom(...realPackets, ...handBuilt),
    link: fc.constantFrom(...LINK_TYPES),
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
    cut: fc.option(fc.nat(), { nil: undefined }),
    tail: fc.uint8Array({ maxLength: 12 }),
  });
  fc.assert(
    fc.property(mutation, ({ packet, link, flips, cut, tail }) => {
      const frame = Buffer.concat([WRAP[link](packet), tail]);
      for (const [at, value] of flips) frame[at % frame.length] = value;
      const mutated = cut === undefined ? frame : frame.subarray(0, cut % (frame.length + 1));
      return checkDatagram(decodeFrame(link, mutated));
    }),
    { seed: 42, numRuns: 5000 },
  );
  t.pass();
});

test('the real probes decode on every link type', (t) => {
  for (const link of LINK_TYPES) {
    for (const packet of realPackets) t.true(decodeFrame(link, WRAP[link](packet)).ok, link);
  }
});
