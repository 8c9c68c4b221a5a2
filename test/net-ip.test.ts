/**
 * IPv4 and IPv6 decoders: header fields, lengths, fragments, extension headers, and RFC 5952
 * address text.
 */
import test from 'ava';
import fc from 'fast-check';
import { decodeIpv4 } from '../src/net/ipv4.js';
import { decodeIpv6, formatIpv6 } from '../src/net/ipv6.js';
import { addressBytes, ipv4, ipv6, udp } from './helpers/net-frames.js';

const datagram = udp(40000, 51820, Buffer.from('payload'));

test('IPv4: addresses, TTL, protocol, and the payload bounds from IHL and total length', (t) => {
  const packet = ipv4(datagram, { src: '203.0.113.7', dst: '192.0.2.1', ttl: 1 });
  const padded = Buffer.concat([Buffer.alloc(3), packet, Buffer.alloc(6)]);
  t.deepEqual(decodeIpv4(padded, 3), {
    ok: true,
    value: { src: '203.0.113.7', dst: '192.0.2.1', ttl: 1, protocol: 17, moreFragments: false, payloadOffset: 23, end: 3 + packet.length },
  });
});

test('IPv4: header options move the payload (IHL 6)', (t) => {
  const decoded = decodeIpv4(ipv4(datagram, { options: Buffer.from([1, 1, 1, 0]) }), 0);
  t.true(decoded.ok && decoded.value.payloadOffset === 24);
});

test('IPv4: a wrong version, IHL below 5 or total length below the header are bad-ipv4', (t) => {
  const packet = ipv4(datagram);
  const version6 = Buffer.from(packet);
  version6[0] = 0x65;
  const shortIhl = Buffer.from(packet);
  shortIhl[0] = 0x44;
  const shortTotal = Buffer.from(packet);
  shortTotal.writeUInt16BE(19, 2);
  for (const bad of [version6, shortIhl, shortTotal]) t.deepEqual(decodeIpv4(bad, 0), { ok: false, reason: 'bad-ipv4' });
});

test('IPv4: a total length beyond the captured bytes is truncated', (t) => {
  const packet = ipv4(datagram);
  t.deepEqual(decodeIpv4(packet.subarray(0, packet.length - 1), 0), { ok: false, reason: 'truncated' });
});

test('IPv4: a non-first fragment is refused, a first fragment is marked, DF alone is fine', (t) => {
  t.deepEqual(decodeIpv4(ipv4(datagram, { flags: 0x0001 }), 0), { ok: false, reason: 'fragment' });
  t.deepEqual(decodeIpv4(ipv4(datagram, { flags: 0x2010 }), 0), { ok: false, reason: 'fragment' });
  const first = decodeIpv4(ipv4(datagram, { flags: 0x2000 }), 0);
  t.true(first.ok && first.value.moreFragments);
  const whole = decodeIpv4(ipv4(datagram, { flags: 0x4000 }), 0);
  t.true(whole.ok && !whole.value.moreFragments);
});

test('IPv6: addresses in RFC 5952 form, hop limit, next header, payload bounds', (t) => {
  const packet = ipv6(datagram, { src: '2001:db8:0:0:1:0:0:1', dst: '2001:db8::1', hopLimit: 1 });
  t.deepEqual(decodeIpv6(Buffer.concat([packet, Buffer.alloc(4)]), 0), {
    ok: true,
    value: { src: '2001:db8::1:0:0:1', dst: '2001:db8::1', hopLimit: 1, protocol: 17, extensionHeaders: 0, payloadOffset: 40, end: packet.length },
  });
});

test('IPv6: hop-by-hop, routing and destination options headers are stepped over', (t) => {
  const packet = ipv6(datagram, { extensions: [{ type: 0 }, { type: 60, units: 1 }, { type: 43, units: 2 }, { type: 60 }] });
  const decoded = decodeIpv6(packet, 0);
  t.true(decoded.ok);
  if (!decoded.ok) return;
  t.is(decoded.value.protocol, 17);
  t.is(decoded.value.extensionHeaders, 4);
  t.is(decoded.value.payloadOffset, 40 + 8 + 16 + 24 + 8);
  t.deepEqual(packet.subarray(decoded.value.payloadOffset), datagram);
});

test('IPv6: a fragment header, first or after others, is refused', (t) => {
  t.deepEqual(decodeIpv6(ipv6(datagram, { extensions: [{ type: 44 }] }), 0), { ok: false, reason: 'fragment' });
  t.deepEqual(decodeIpv6(ipv6(datagram, { extensions: [{ type: 0 }, { type: 44 }] }), 0), { ok: false, reason: 'fragment' });
});

test('IPv6: an extension header that claims more than the payload is bad-ipv6, a short capture truncated', (t) => {
  const packet = ipv6(Buffer.alloc(0), { extensions: [{ type: 0 }], protocol: 59 });
  packet[41] = 4;
  t.deepEqual(decodeIpv6(packet, 0), { ok: false, reason: 'bad-ipv6' });
  const whole = ipv6(datagram);
  t.deepEqual(decodeIpv6(whole.subarray(0, whole.length - 1), 0), { ok: false, reason: 'truncated' });
  const version4 = Buffer.from(whole);
  version4[0] = 0x45;
  t.deepEqual(decodeIpv6(version4, 0), { ok: false, reason: 'bad-ipv6' });
});

test('IPv6: a chain of more extension headers than any real packet has is bad-ipv6', (t) => {
  const packet = ipv6(datagram, { extensions: Array.from({ length: 9 }, () => ({ type: 60 })) });
  t.deepEqual(decodeIpv6(packet, 0), { ok: false, reason: 'bad-ipv6' });
});

test('IPv6 text follows RFC 5952 §4', (t) => {
  const cases: [string, string][] = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['2001:DB8:ABCD:0012:0:0:0:0', '2001:db8:abcd:12::'],
  ];
  for (const [input, expected] of cases) t.is(formatIpv6(addressBytes(input), 0), expected, input);
});

test('IPv6 text matches the WHATWG URL serializer on random addresses with zero runs', (t) => {
  const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
      const bytes = Buffer.alloc(16);
      groups.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
      const text = formatIpv6(bytes, 0);
      return new URL(`http://[${text}]/`).hostname === `[${text}]`;
    }),
    { seed: 42, numRuns: 2000 },
  );
  t.pass();
});

test('IPv4 and IPv6 decoders never throw on any cut of a packet, and say truncated', (t) => {
  const packets = [
    [ipv4(datagram, { options: Buffer.alloc(8, 1) }), decodeIpv4],
    [ipv6(datagram, { extensions: [{ type: 0 }, { type: 43, units: 1 }] }), decodeIpv6],
  ] as const;
  for (const [packet, decode] of packets) {
    for (let length = 0; length < packet.length; length++) {
      t.deepEqual(decode(packet.subarray(0, length), 0), { ok: false, reason: 'truncated' }, `cut at ${length}`);
    }
  }
});
