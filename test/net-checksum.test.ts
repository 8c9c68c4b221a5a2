/**
 * The Internet checksum: RFC 1071's own example, a textbook IPv4 header, odd lengths, and real
 * captures whose UDP checksum is the partial one that checksum offload leaves (the reason an
 * injected packet is built afresh). What the kernel itself accepts is in e2e-inject.test.ts.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import fc from 'fast-check';
import { readPcapFile } from '../scripts/lab/pcapfile.js';
import { finish, internetChecksum, ipv4HeaderChecksum, sum16, verifyUdpChecksum } from '../src/net/checksum.js';
import { decodeFrame } from '../src/net/packet.js';
import { buildUdpPacket } from '../src/net/inject.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url));

/** A plain reference: 32-bit words of the padded data summed with BigInt, folded at the end. */
function referenceChecksum(data: Buffer): number {
  const padded = data.length % 2 === 0 ? data : Buffer.concat([data, Buffer.alloc(1)]);
  let sum = 0n;
  for (let at = 0; at < padded.length; at += 2) sum += BigInt(padded.readUInt16BE(at));
  while (sum > 0xffffn) sum = (sum & 0xffffn) + (sum >> 16n);
  return Number(~sum & 0xffffn);
}

test('RFC 1071 §3 example: the octets 00 01 f2 03 f4 f5 f6 f7 sum to ddf2, checksum 220d', (t) => {
  const data = Buffer.from('0001f203f4f5f6f7', 'hex');
  t.is(sum16(data, 0, data.length) % 0xffff, 0xddf2);
  t.is(internetChecksum(data), 0x220d);
});

test('an odd length is summed as if padded with one zero octet', (t) => {
  t.is(internetChecksum(Buffer.from('0001f203f4f5f6', 'hex')), internetChecksum(Buffer.from('0001f203f4f5f600', 'hex')));
  t.is(internetChecksum(Buffer.from('ff', 'hex')), 0x00ff);
  t.is(internetChecksum(Buffer.alloc(0)), 0xffff);
});

test('the IPv4 header checksum of a textbook header is b861, and its own field is ignored', (t) => {
  const header = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  t.is(ipv4HeaderChecksum(header), 0xb861);
  header.writeUInt16BE(0x1234, 10);
  t.is(ipv4HeaderChecksum(header), 0xb861);
  header.writeUInt16BE(0xb861, 10);
  t.is(finish(sum16(header, 0, 20)), 0, 'a receiver summing the whole header gets zero');
});

test('the checksum agrees with a plain BigInt reference for any data (seeded)', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => internetChecksum(Buffer.from(bytes)) === referenceChecksum(Buffer.from(bytes))),
    { seed: 1071, numRuns: 500 },
  );
  t.pass();
});

for (const family of [4, 6] as const) {
  test(`IPv${family}: a UDP checksum that comes out 0 is sent as ffff, and that verifies`, (t) => {
    const tuple = family === 4
      ? { family, src: '198.51.100.7', srcPort: 40000, dst: '192.0.2.1', dstPort: 51820 }
      : { family, src: '2001:db8:5::7', srcPort: 40000, dst: '2001:db8::1', dstPort: 51820 };
    const at = (family === 4 ? 20 : 40) + 6;
    // Two payload octets equal to the checksum over zeros make the whole sum ffff: complement 0.
    const first = buildUdpPacket(tuple, Buffer.alloc(2));
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(first.readUInt16BE(at), 0);
    const packet = buildUdpPacket(tuple, payload);
    t.is(packet.readUInt16BE(at), 0xffff);
    t.deepEqual(verifyUdpChecksum(packet), { ok: true, value: true });
  });
}

for (const [name, family] of [['knock-udp4.pcap', 4], ['knock-udp6.pcap', 6]] as const) {
  test(`real IPv${family} probes captured on a veth carry only the partial (pseudo-header) checksum; rebuilt, they verify`, (t) => {
    const frames = readPcapFile(fixture(name)).frames;
    t.true(frames.length > 0);
    for (const frame of frames) {
      const packet = frame.subarray(14);
      t.deepEqual(verifyUdpChecksum(packet), { ok: false, reason: 'bad-udp-checksum' });
      const headerLength = family === 4 ? 20 : 40;
      const src = family === 4 ? packet.subarray(12, 16) : packet.subarray(8, 24);
      const dst = family === 4 ? packet.subarray(16, 20) : packet.subarray(24, 40);
      const segment = packet.subarray(headerLength, headerLength + packet.readUInt16BE(headerLength + 4));
      const pseudo = sum16(src, 0, src.length) + sum16(dst, 0, dst.length) + 17 + segment.length;
      t.is(segment.readUInt16BE(6), ~finish(pseudo) & 0xffff, 'the field holds the folded pseudo-header sum, as offload leaves it');

      const datagram = decodeFrame('ethernet', frame);
      if (!datagram.ok) return t.fail(datagram.reason);
      const { src: from, srcPort, dst: to, dstPort, payload } = datagram.value;
      const rebuilt = buildUdpPacket({ family, src: from, srcPort, dst: to, dstPort }, payload);
      t.deepEqual(verifyUdpChecksum(rebuilt), { ok: true, value: true });
    }
  });
}

test('verifyUdpChecksum names what is wrong and never throws on random bytes (seeded)', (t) => {
  const good = buildUdpPacket({ family: 4, src: '198.51.100.7', srcPort: 40000, dst: '192.0.2.1', dstPort: 51820 }, Buffer.from('hello'));
  const badIp = Buffer.from(good);
  badIp[8] = 63;
  t.deepEqual(verifyUdpChecksum(badIp), { ok: false, reason: 'bad-ip-checksum' });
  const noUdp = Buffer.from(good);
  noUdp.writeUInt16BE(0, 26);
  t.deepEqual(verifyUdpChecksum(noUdp), { ok: false, reason: 'no-udp-checksum' });
  t.deepEqual(verifyUdpChecksum(good.subarray(0, 27)), { ok: false, reason: 'truncated' });
  t.deepEqual(verifyUdpChecksum(Buffer.alloc(0)), { ok: false, reason: 'truncated' });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
      const result = verifyUdpChecksum(Buffer.from(bytes));
      return typeof result.ok === 'boolean';
    }),
    { seed: 768, numRuns: 2000 },
  );
});
