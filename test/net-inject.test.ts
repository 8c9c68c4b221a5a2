/**
 * buildUdpPacket: what it builds decodes back, through the project's own decoder, to the same
 * tuple and payload, with the header fields the kernel expects and checksums that verify; a
 * seeded property test over random tuples and payloads. Sending is in e2e-inject.test.ts.
 */
import { isIPv6 } from 'node:net';
import test from 'ava';
import fc from 'fast-check';
import { ipv6Bytes, ipv4Bytes } from '../src/net/address.js';
import { verifyUdpChecksum } from '../src/net/checksum.js';
import { buildUdpPacket, encodeUdpPacket, type UdpTuple } from '../src/net/inject.js';
import { decodeFrame } from '../src/net/packet.js';
import { formatIpv6 } from '../src/net/ipv6.js';

const tuple4: UdpTuple = { family: 4, src: '198.51.100.7', srcPort: 40000, dst: '192.0.2.1', dstPort: 51820 };
const tuple6: UdpTuple = { family: 6, src: '2001:db8:5::7', srcPort: 40000, dst: '2001:db8::1', dstPort: 51820 };
const payload = Buffer.from('01000000', 'hex');

for (const tuple of [tuple4, tuple6]) {
  test(`IPv${tuple.family}: the built packet decodes as a raw frame to the same tuple and payload`, (t) => {
    const packet = buildUdpPacket(tuple, payload);
    const decoded = decodeFrame('raw', packet);
    if (!decoded.ok) return t.fail(decoded.reason);
    const { family, src, srcPort, dst, dstPort, protocol, ttl } = decoded.value;
    t.deepEqual({ family, src, srcPort, dst, dstPort }, tuple);
    t.is(protocol, 'udp');
    t.is(ttl, 64);
    t.deepEqual(decoded.value.payload, payload);
    t.deepEqual(verifyUdpChecksum(packet), { ok: true, value: true });
  });
}

test('IPv4: a 20-octet header with DF, TTL 64, protocol UDP and the total length', (t) => {
  const packet = buildUdpPacket(tuple4, payload);
  t.is(packet.length, 20 + 8 + payload.length);
  t.is(packet[0], 0x45);
  t.is(packet.readUInt16BE(2), packet.length);
  t.is(packet.readUInt16BE(6), 0x4000, 'DF set, no fragment offset');
  t.is(packet[8], 64);
  t.is(packet[9], 17);
  t.is(packet.readUInt16BE(20 + 4), 8 + payload.length, 'UDP length');
  t.not(packet.readUInt16BE(26), 0, 'the UDP checksum is never left out');
});

test('IPv6: version 6, payload length, next header UDP, hop limit 64', (t) => {
  const packet = buildUdpPacket(tuple6, payload);
  t.is(packet.length, 40 + 8 + payload.length);
  t.is(packet.readUInt32BE(0), 0x60000000);
  t.is(packet.readUInt16BE(4), 8 + payload.length);
  t.is(packet[6], 17);
  t.is(packet[7], 64);
});

test('an empty payload and an odd-length one build packets that verify', (t) => {
  for (const tuple of [tuple4, tuple6]) {
    for (const body of [Buffer.alloc(0), Buffer.from('abc')]) t.deepEqual(verifyUdpChecksum(buildUdpPacket(tuple, body)), { ok: true, value: true });
  }
});

test('a tuple that cannot be a packet is a reason from encodeUdpPacket and a RangeError from buildUdpPacket', (t) => {
  const cases: [UdpTuple, string][] = [
    [{ ...tuple4, src: '2001:db8::7' }, 'bad-src'],
    [{ ...tuple4, dst: '192.0.2.256' }, 'bad-dst'],
    [{ ...tuple6, src: '198.51.100.7' }, 'bad-src'],
    [{ ...tuple6, dst: 'fe80::1%eth0' }, 'bad-dst'],
    [{ ...tuple4, srcPort: 0 }, 'bad-port'],
    [{ ...tuple4, dstPort: 65536 }, 'bad-port'],
    [{ ...tuple4, srcPort: 1.5 }, 'bad-port'],
    [{ ...tuple4, family: 5 as 4 }, 'bad-family'],
  ];
  for (const [tuple, reason] of cases) {
    t.deepEqual(encodeUdpPacket(tuple, payload), { ok: false, reason }, JSON.stringify(tuple));
    t.throws(() => buildUdpPacket(tuple, payload), { instanceOf: RangeError });
  }
  t.deepEqual(encodeUdpPacket(tuple4, Buffer.alloc(65536 - 28)), { ok: false, reason: 'too-long' });
  t.true(encodeUdpPacket(tuple4, Buffer.alloc(65535 - 28)).ok);
});

test('address text becomes header bytes in every RFC 4291 form', (t) => {
  t.deepEqual(ipv4Bytes('192.0.2.1'), Buffer.from([192, 0, 2, 1]));
  t.is(ipv4Bytes('192.0.2'), undefined);
  const hex = (text: string): string | undefined => ipv6Bytes(text)?.toString('hex');
  t.is(hex('2001:db8::1'), '20010db8000000000000000000000001');
  t.is(hex('::'), '00000000000000000000000000000000');
  t.is(hex('::1'), '00000000000000000000000000000001');
  t.is(hex('2001:db8::'), '20010db8000000000000000000000000');
  t.is(hex('2001:db8:0:0:1:0:0:1'), '20010db8000000000001000000000001');
  t.is(hex('::ffff:192.0.2.1'), '00000000000000000000ffffc0000201');
  t.is(hex('64:ff9b::198.51.100.7'), '0064ff9b0000000000000000c6336407');
  t.is(hex('2001:DB8::A'), '20010db800000000000000000000000a');
  for (const bad of ['2001:db8::1::2', '12345::', '192.0.2.1', '', 'fe80::1%eth0', '1:2:3:4:5:6:7:8:9']) t.is(ipv6Bytes(bad), undefined, bad);
});

test('random IPv6 addresses survive text → bytes → text, and random text never throws (seeded)', (t) => {
  fc.assert(
    fc.property(fc.ipV6(), (text) => {
      const bytes = ipv6Bytes(text);
      if (bytes === undefined) return false;
      const back = formatIpv6(bytes, 0);
      return isIPv6(back) && ipv6Bytes(back)!.equals(bytes);
    }),
    { seed: 4291, numRuns: 1000 },
  );
  // and any text at all gives bytes or undefined, never an exception
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%x '.split('')), maxLength: 45 }), (text) => {
      const bytes = ipv6Bytes(text);
      return bytes === undefined || bytes.length === 16;
    }),
    { seed: 4292, numRuns: 5000 },
  );
  t.pass();
});

const tuples = fc.oneof(
  fc.record({ family: fc.constant(4 as const), src: fc.ipV4(), srcPort: fc.integer({ min: 1, max: 65535 }), dst: fc.ipV4(), dstPort: fc.integer({ min: 1, max: 65535 }) }),
  fc.record({ family: fc.constant(6 as const), src: fc.ipV6(), srcPort: fc.integer({ min: 1, max: 65535 }), dst: fc.ipV6(), dstPort: fc.integer({ min: 1, max: 65535 }) }),
);

test('random tuples and payloads always build packets whose checksums verify and that decode back (seeded)', (t) => {
  fc.assert(
    fc.property(tuples, fc.uint8Array({ maxLength: 1500 }), (tuple, bytes) => {
      const body = Buffer.from(bytes);
      const packet = buildUdpPacket(tuple, body);
      if (!verifyUdpChecksum(packet).ok) return false;
      const decoded = decodeFrame('raw', packet);
      if (!decoded.ok) return false;
      const bytesOf = (text: string): Buffer => (tuple.family === 4 ? ipv4Bytes(text)! : ipv6Bytes(text)!);
      return (
        decoded.value.srcPort === tuple.srcPort &&
        decoded.value.dstPort === tuple.dstPort &&
        bytesOf(decoded.value.src).equals(bytesOf(tuple.src)) &&
        bytesOf(decoded.value.dst).equals(bytesOf(tuple.dst)) &&
        decoded.value.payload.equals(body)
      );
    }),
    { seed: 768, numRuns: 1000 },
  );
  t.pass();
});
