/**
 * UDP and TCP decoders: ports, lengths, flags, data offset.
 */
import test from 'ava';
import { TCP_ACK, TCP_SYN, decodeTcp } from '../src/net/tcp.js';
import { decodeUdp } from '../src/net/udp.js';
import { ACK, FIN, SYN, tcp, udp } from './helpers/net-frames.js';

test('UDP: ports, length and where the payload lies', (t) => {
  const datagram = Buffer.concat([Buffer.alloc(2), udp(51820, 40000, Buffer.from('abc'))]);
  t.deepEqual(decodeUdp(datagram, 2), { ok: true, value: { srcPort: 51820, dstPort: 40000, length: 11, payloadOffset: 10, payloadEnd: 13 } });
});

test('UDP: a length below the header or beyond the packet is bad-udp; shorter than the packet is fine', (t) => {
  t.deepEqual(decodeUdp(udp(1, 2, Buffer.alloc(4), 7), 0), { ok: false, reason: 'bad-udp' });
  t.deepEqual(decodeUdp(udp(1, 2, Buffer.alloc(4), 13), 0), { ok: false, reason: 'bad-udp' });
  const short = decodeUdp(udp(1, 2, Buffer.alloc(4), 10), 0);
  t.true(short.ok && short.value.payloadEnd === 10);
});

test('TCP: ports, flags, and the data offset with options', (t) => {
  const segment = tcp(40000, 19000, SYN, Buffer.from('x'), Buffer.alloc(12, 1));
  t.deepEqual(decodeTcp(segment, 0), { ok: true, value: { srcPort: 40000, dstPort: 19000, flags: TCP_SYN, headerLength: 32, payloadOffset: 32 } });
  const synAck = decodeTcp(tcp(1, 2, SYN | ACK), 0);
  t.true(synAck.ok && synAck.value.flags === (TCP_SYN | TCP_ACK));
  const fin = decodeTcp(tcp(1, 2, FIN | ACK), 0);
  t.true(fin.ok && fin.value.flags === (FIN | ACK));
});

test('TCP: a data offset below 5 or beyond the packet is bad-tcp', (t) => {
  const small = tcp(1, 2, SYN);
  small[12] = 4 << 4;
  t.deepEqual(decodeTcp(small, 0), { ok: false, reason: 'bad-tcp' });
  const large = tcp(1, 2, SYN);
  large[12] = 6 << 4;
  t.deepEqual(decodeTcp(large, 0), { ok: false, reason: 'bad-tcp' });
});

test('UDP and TCP decoders never throw on any cut, and say truncated below their header', (t) => {
  const datagram = udp(1, 2, Buffer.alloc(20));
  const segment = tcp(1, 2, SYN, Buffer.alloc(5), Buffer.alloc(8));
  for (let length = 0; length < 8; length++) t.deepEqual(decodeUdp(datagram.subarray(0, length), 0), { ok: false, reason: 'truncated' });
  for (let length = 0; length < 20; length++) t.deepEqual(decodeTcp(segment.subarray(0, length), 0), { ok: false, reason: 'truncated' });
  for (let length = 0; length <= datagram.length; length++) t.notThrows(() => decodeUdp(datagram.subarray(0, length), 0));
  for (let length = 0; length <= segment.length; length++) t.notThrows(() => decodeTcp(segment.subarray(0, length), 0));
  t.notThrows(() => decodeUdp(datagram, 1000));
  t.notThrows(() => decodeTcp(segment, 1000));
});
