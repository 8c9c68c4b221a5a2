/**
 * The allocation-free locator agrees with the full decoder wherever it answers, and leaves
 * every unusual frame (-1) to the decoder; random bytes never make it throw.
 */
import { randomBytes } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import { locateUdpPayload, udpDestinationPort, udpPayloadLength } from '../src/net/locate.js';
import { decodeFrame } from '../src/net/packet.js';
import { ethernet, ipv4, ipv6, LINK_TYPES, tcp, udp, WRAP } from './helpers/net-frames.js';

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
