/**
 * The allocation-free locator agrees with the full decoder wherever it answers, and leaves
 * every unusual frame (-1) to the decoder; random bytes never make it throw.
 */
import { randomBytes } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import { locateUdpPayload, udpDestinationPort, udpPayloadLength, udpSourcePort } from '../src/net/locate.js';
import { decodeFrame } from '../src/net/packet.js';
import { MAX_VLAN_TAGS } from '../src/net/link.js';
import { ethernet, ipv4, ipv6, LINK_TYPES, sllTagged, tcp, udp, WRAP } from './helpers/net-frames.js';

const payload = randomBytes(148);
const packets = {
  'IPv4/UDP': ipv4(udp(40000, 51820, payload), { src: '192.0.2.7', dst: '192.0.2.1' }),
  'IPv4 with options/UDP': ipv4(udp(40000, 51820, payload), { src: '192.0.2.7', dst: '192.0.2.1', options: Buffer.alloc(8) }),
  'IPv6/UDP': ipv6(udp(40000, 51820, payload), { src: '2001:db8::7', dst: '2001:db8::1' }),
};

for (const link of LINK_TYPES) {
  for (const [name, packet] of Object.entries(packets)) {
    test(`${link} ${name}: the payload is where decodeFrame finds it`, (t) => {
      const frame = WRAP[link](packet);
      const at = locateUdpPayload(link, frame, frame.length);
      const decoded = decodeFrame(link, frame);
      t.true(decoded.ok);
      if (!decoded.ok) return;
      t.true(at > 0);
      t.is(udpDestinationPort(frame, at), decoded.value.dstPort);
      t.is(udpPayloadLength(frame, at), decoded.value.payload.length);
      t.deepEqual(frame.subarray(at, at + udpPayloadLength(frame, at)), decoded.value.payload);
    });
  }
}

test('VLAN-tagged Ethernet is stepped over', (t) => {
  const frame = ethernet(packets['IPv4/UDP'], [{ tpid: 0x8100, id: 7 }, { tpid: 0x88a8, id: 9 }]);
  const at = locateUdpPayload('ethernet', frame, frame.length);
  t.deepEqual(frame.subarray(at, at + 148), payload);
});

test('fragments, IPv6 extension headers, TCP and truncated frames are left to the decoder', (t) => {
  const unusual = [
    WRAP.raw(ipv4(udp(40000, 51820, payload), { flags: 0x2000 })),
    WRAP.raw(ipv6(udp(40000, 51820, payload), { extensions: [{ type: 60 }] })),
    WRAP.raw(ipv4(tcp(40000, 51820, 0x02), { protocol: 6 })),
    WRAP.sll(packets['IPv4/UDP']).subarray(0, 30),
  ];
  for (const frame of unusual) t.is(locateUdpPayload(frame[0]! >> 4 === 6 || frame[0]! >> 4 === 4 ? 'raw' : 'sll', frame, frame.length), -1);
});

test('random and cut frames never throw and never point past the captured bytes', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...LINK_TYPES), fc.uint8Array({ maxLength: 300 }), fc.nat(300), (link, bytes, cut) => {
      const frame = Buffer.from(bytes);
      const length = Math.min(cut, frame.length);
      const at = locateUdpPayload(link, frame, length);
      return at === -1 || (at >= 8 && at <= length);
    }),
    { seed: 8, numRuns: 5000 },
  );
  t.pass();
});

test('VLAN tags in a cooked (SLL) frame, where libpcap re-inserts them, are stepped over', (t) => {
  for (const vlans of [[{ tpid: 0x8100, id: 10 }], [{ tpid: 0x88a8, id: 9 }, { tpid: 0x8100, id: 10 }]]) {
    const frame = sllTagged(packets['IPv6/UDP'], vlans);
    const at = locateUdpPayload('sll', frame, frame.length);
    t.deepEqual(frame.subarray(at, at + 148), payload);
    const decoded = decodeFrame('sll', frame);
    t.true(decoded.ok && decoded.value.payload.equals(payload));
  }
});

/** Frames the capture can deliver: every link type, tagged where tags occur, then maybe mutated and cut. */
const frames = fc
  .record({
    link: fc.constantFrom(...LINK_TYPES),
    family: fc.constantFrom(4, 6),
    options: fc.constantFrom(0, 4, 8, 40),
    vlans: fc.array(fc.record({ tpid: fc.constantFrom(0x8100, 0x88a8, 0x9100), id: fc.nat(4095) }), { maxLength: 3 }),
    size: fc.nat(200),
    mutations: fc.array(fc.record({ at: fc.nat(300), value: fc.nat(255) }), { maxLength: 3 }),
    cut: fc.option(fc.nat(300)),
  })
  .map(({ link, family, options, vlans, size, mutations, cut }) => {
    const body = udp(40000, 51820, Buffer.alloc(size, 0x5a));
    const packet = family === 4 ? ipv4(body, { options: Buffer.alloc(options, 1) }) : ipv6(body);
    let frame = link === 'ethernet' ? ethernet(packet, vlans) : link === 'sll' ? sllTagged(packet, vlans) : WRAP[link](packet);
    frame = Buffer.from(frame);
    for (const { at, value } of mutations) if (at < frame.length) frame[at] = value;
    const tags = link === 'ethernet' || link === 'sll' ? vlans.length : 0;
    return { link, frame, tags, length: cut === null ? frame.length : Math.min(cut, frame.length), mutated: mutations.length > 0 || cut !== null };
  });

test('the screen\'s locator and the full decoder agree on every frame: same payload, same ports, or the locator leaves it to the decoder', (t) => {
  fc.assert(
    fc.property(frames, ({ link, frame, tags, length, mutated }) => {
      const captured = frame.subarray(0, length);
      const at = locateUdpPayload(link, frame, length);
      const decoded = decodeFrame(link, captured);
      // A clean frame: both place it, or (more tags than are stepped over) both refuse it.
      if (!mutated && (decoded.ok && at > 0) !== tags <= MAX_VLAN_TAGS) return false;
      if (!mutated && !decoded.ok && at >= 0) return false;
      if (at < 0) return true; // left to the decoder, which checks everything itself
      // Whatever the locator places, the decoder places at the same bytes, with the same ports.
      if (!decoded.ok || decoded.value.protocol !== 'udp') return udpPayloadLength(frame, at) < 0 || at + udpPayloadLength(frame, at) > length || !decoded.ok;
      return (
        udpDestinationPort(frame, at) === decoded.value.dstPort &&
        udpSourcePort(frame, at) === decoded.value.srcPort &&
        frame.subarray(at, at + decoded.value.payload.length).equals(decoded.value.payload)
      );
    }),
    { seed: 13, numRuns: 20_000 },
  );
  t.pass();
});
