/**
 * Link-layer decoders: where IP starts, for every link type libpcap hands us.
 */
import test from 'ava';
import { LINK_DECODERS, decodeEthernet, decodeNull, decodeRaw, decodeSll, decodeSll2 } from '../src/net/link.js';
import { LINK_TYPES, WRAP, ethernet, ipv4, ipv6, nullLink, sll, sll2, udp } from './helpers/net-frames.js';

const v4 = ipv4(udp(1, 2, Buffer.from('hi')));
const v6 = ipv6(udp(1, 2, Buffer.from('hi')));

test('Ethernet: IPv4 and IPv6 start after the 14-byte header', (t) => {
  t.deepEqual(decodeEthernet(ethernet(v4), 0), { ok: true, value: { family: 4, offset: 14, vlans: [] } });
  t.deepEqual(decodeEthernet(ethernet(v6), 0), { ok: true, value: { family: 6, offset: 14, vlans: [] } });
});

test('Ethernet: one 802.1Q tag and an 802.1ad + 802.1Q pair are stepped over, their ids kept', (t) => {
  const one = decodeEthernet(ethernet(v4, [{ tpid: 0x8100, id: 0x2064 }]), 0);
  t.deepEqual(one, { ok: true, value: { family: 4, offset: 18, vlans: [100] } });
  const two = decodeEthernet(ethernet(v6, [{ tpid: 0x88a8, id: 10 }, { tpid: 0x8100, id: 20 }]), 0);
  t.deepEqual(two, { ok: true, value: { family: 6, offset: 22, vlans: [10, 20] } });
});

test('Ethernet: a third VLAN tag, ARP and a tag cut short are not IP', (t) => {
  const tag = { tpid: 0x8100, id: 1 };
  t.deepEqual(decodeEthernet(ethernet(v4, [tag, tag, tag]), 0), { ok: false, reason: 'not-ip' });
  t.deepEqual(decodeEthernet(ethernet(Buffer.alloc(28), [], 0x0806), 0), { ok: false, reason: 'not-ip' });
  const tagged = ethernet(v4, [tag]);
  t.deepEqual(decodeEthernet(tagged.subarray(0, 16), 0), { ok: false, reason: 'truncated' });
});

test('Linux cooked v1 (SLL): IP starts at 16, a VLAN tag libpcap re-inserted is stepped over', (t) => {
  t.deepEqual(decodeSll(sll(v4), 0), { ok: true, value: { family: 4, offset: 16, vlans: [] } });
  t.deepEqual(decodeSll(sll(v6), 0), { ok: true, value: { family: 6, offset: 16, vlans: [] } });
  const tag = Buffer.from([0x00, 0x07, 0x86, 0xdd]);
  t.deepEqual(decodeSll(sll(Buffer.concat([tag, v6]), 0x8100), 0), { ok: true, value: { family: 6, offset: 20, vlans: [7] } });
});

test('Linux cooked v2 (SLL2): the protocol comes first and IP starts at 20', (t) => {
  t.deepEqual(decodeSll2(sll2(v4), 0), { ok: true, value: { family: 4, offset: 20, vlans: [] } });
  t.deepEqual(decodeSll2(sll2(v6), 0), { ok: true, value: { family: 6, offset: 20, vlans: [] } });
  t.deepEqual(decodeSll2(sll2(v4, 0x0806), 0), { ok: false, reason: 'not-ip' });
});

test('raw IP: the version nibble decides', (t) => {
  t.deepEqual(decodeRaw(v4, 0), { ok: true, value: { family: 4, offset: 0, vlans: [] } });
  t.deepEqual(decodeRaw(v6, 0), { ok: true, value: { family: 6, offset: 0, vlans: [] } });
  t.deepEqual(decodeRaw(Buffer.from([0x50]), 0), { ok: false, reason: 'not-ip' });
  t.deepEqual(decodeRaw(Buffer.alloc(0), 0), { ok: false, reason: 'truncated' });
});

test('BSD loopback: AF_INET and every AF_INET6 value, in either byte order', (t) => {
  t.deepEqual(decodeNull(nullLink(v4, 2), 0), { ok: true, value: { family: 4, offset: 4, vlans: [] } });
  t.deepEqual(decodeNull(nullLink(v4, 2, true), 0), { ok: true, value: { family: 4, offset: 4, vlans: [] } });
  for (const family of [10, 24, 28, 30]) {
    t.deepEqual(decodeNull(nullLink(v6, family), 0), { ok: true, value: { family: 6, offset: 4, vlans: [] } });
    t.deepEqual(decodeNull(nullLink(v6, family, true), 0), { ok: true, value: { family: 6, offset: 4, vlans: [] } });
  }
  t.deepEqual(decodeNull(nullLink(v4, 7), 0), { ok: false, reason: 'not-ip' });
});

test('every link decoder honours its offset argument', (t) => {
  for (const link of LINK_TYPES) {
    const frame = WRAP[link](v4);
    const at = LINK_DECODERS[link](Buffer.concat([Buffer.alloc(5), frame]), 5);
    const plain = LINK_DECODERS[link](frame, 0);
    t.true(at.ok && plain.ok && at.value.offset === plain.value.offset + 5, link);
  }
});

/** Raw IP has no header of its own, but needs the version nibble. */
const HEADER_LENGTHS = { ethernet: 14, sll: 16, sll2: 20, raw: 1, null: 4 } as const;

test('every link decoder says truncated, never throws, for every cut of its header', (t) => {
  for (const link of LINK_TYPES) {
    const frame = WRAP[link](v4);
    for (let length = 0; length < HEADER_LENGTHS[link]; length++) {
      t.deepEqual(LINK_DECODERS[link](frame.subarray(0, length), 0), { ok: false, reason: 'truncated' }, `${link} cut at ${length}`);
    }
    t.notThrows(() => LINK_DECODERS[link](frame, frame.length + 10));
  }
});

