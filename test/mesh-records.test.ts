import test from 'ava';
import fc from 'fast-check';
import { base32Key, decodePtrAnswer, decodeSrvAnswer, keyOfLabel, MAX_ALLOWED_PER_PEER, normalizeZone } from '../src/mesh/records.js';
import { fixturePeer, label, ptrAnswer, rfc4648Base32, srvAnswer } from './helpers/wgsd-answers.js';

const ZONE = 'mesh.example';

test('base32 of a key is RFC 4648 in lower case, as wgsd writes it, and reads back', (t) => {
  t.is(base32Key(Buffer.from('foobar')), 'mzxw6ytboi======');
  for (let i = 0; i < 20; i++) {
    const key = fixturePeer().key;
    t.is(base32Key(key), rfc4648Base32(key).toLowerCase());
    t.deepEqual(keyOfLabel(base32Key(key)), key);
    t.deepEqual(keyOfLabel(rfc4648Base32(key)), key, 'upper case names the same key');
  }
});

test('a base32 label that is not exactly one key in canonical form names none', (t) => {
  const good = label(fixturePeer().key);
  t.is(keyOfLabel(good.slice(0, 55)), undefined);
  t.is(keyOfLabel(`${good.slice(0, 51)}1====`), undefined, 'not in the alphabet');
  // the 52nd letter carries 4 bits of the key and 1 unused bit: set the unused one
  const last = good[51]!;
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const flipped = alphabet[alphabet.indexOf(last) ^ 1]!;
  t.is(keyOfLabel(`${good.slice(0, 51)}${flipped}====`), undefined, 'unused bits set');
});

test('a PTR answer lists the peers it names, each once, up to the limit', (t) => {
  const peers = [fixturePeer(), fixturePeer(), fixturePeer()];
  const result = decodePtrAnswer(ptrAnswer(7, ZONE, [...peers, peers[0]!]), 7, ZONE, 2);
  t.true(result.ok);
  if (!result.ok) return;
  t.deepEqual(result.value.keys, [peers[0]!.key, peers[1]!.key]);
  t.is(result.value.beyondLimit, 1);
  t.is(result.value.bad, 0);
});

test('a PTR answer for another id, question or zone is not the answer', (t) => {
  const answer = ptrAnswer(7, ZONE, [fixturePeer()]);
  t.deepEqual(decodePtrAnswer(answer, 8, ZONE, 10), { ok: false, reason: 'wrong-id' });
  t.deepEqual(decodePtrAnswer(answer, 7, 'other.example', 10), { ok: false, reason: 'wrong-question' });
});

test('PTR records that name no instance of the zone are counted and left out', (t) => {
  const good = fixturePeer();
  const other = ptrAnswer(9, 'other.example', [fixturePeer()]);
  t.truthy(other);
  const answer = ptrAnswer(9, ZONE, [good], {
    answers: [
      { type: 'PTR', name: `_wireguard._udp.${ZONE}`, ttl: 0, class: 'IN', data: `${label(good.key)}._wireguard._udp.${ZONE}` },
      { type: 'PTR', name: `_wireguard._udp.${ZONE}`, ttl: 0, class: 'IN', data: `${label(fixturePeer().key)}._wireguard._udp.evil.example` },
      { type: 'PTR', name: `_wireguard._udp.${ZONE}`, ttl: 0, class: 'IN', data: `x._wireguard._udp.${ZONE}` },
      { type: 'A', name: `_wireguard._udp.${ZONE}`, ttl: 0, class: 'IN', data: '192.0.2.1' },
    ],
  });
  const result = decodePtrAnswer(answer, 9, ZONE, 10);
  t.true(result.ok);
  if (!result.ok) return;
  t.is(result.value.keys.length, 1);
  t.is(result.value.bad, 3);
});

test('an SRV answer in wgsd layout gives the endpoint, the key and the allowed prefixes', (t) => {
  const peer = fixturePeer('192.0.2.20', 40001, ['203.0.113.20/32', '198.51.100.0/24']);
  const result = decodeSrvAnswer(srvAnswer(3, ZONE, peer), 3, peer.key, ZONE);
  t.true(result.ok);
  if (!result.ok) return;
  t.is(result.value.endpoint, '192.0.2.20:40001');
  t.is(result.value.publicKey, peer.key.toString('base64'));
  t.deepEqual(result.value.allowed.map((p) => p.text), ['203.0.113.20/32', '198.51.100.0/24']);
});

test('an IPv6 endpoint is written as wg set takes it', (t) => {
  const peer = fixturePeer('2001:db8:2:0::2', 51820, ['203.0.113.21/32']);
  const result = decodeSrvAnswer(srvAnswer(3, ZONE, peer), 3, peer.key, ZONE);
  t.true(result.ok && result.value.endpoint === '[2001:db8:2::2]:51820');
});

test('a TXT record whose pub= names another key than the name is refused', (t) => {
  const peer = fixturePeer();
  const other = fixturePeer();
  const answer = srvAnswer(3, ZONE, peer, { txt: ['txtvers=1', `pub=${other.key.toString('base64')}`, 'allowed=203.0.113.20/32'] });
  t.deepEqual(decodeSrvAnswer(answer, 3, peer.key, ZONE), { ok: false, reason: 'key-mismatch' });
});

test('hostile SRV answers are refused with their reason', (t) => {
  const peer = fixturePeer();
  const pub = `pub=${peer.key.toString('base64')}`;
  const cases: [string, Buffer, string][] = [
    ['port 0', srvAnswer(1, ZONE, peer, { port: 0 }), 'bad-srv'],
    ['a target elsewhere', srvAnswer(1, ZONE, peer, { target: 'victim.example' }), 'bad-srv'],
    ['loopback endpoint', srvAnswer(1, ZONE, peer, { address: '127.0.0.1' }), 'bad-address'],
    ['multicast endpoint', srvAnswer(1, ZONE, peer, { address: 'ff02::1' }), 'bad-address'],
    ['unspecified endpoint', srvAnswer(1, ZONE, peer, { address: '0.0.0.0' }), 'bad-address'],
    ['two addresses', srvAnswer(1, ZONE, peer, { extraHosts: 1 }), 'bad-address'],
    ['no TXT', srvAnswer(1, ZONE, peer, { noTxt: true }), 'no-txt'],
    ['no txtvers', srvAnswer(1, ZONE, peer, { txt: [pub, 'allowed=203.0.113.20/32'] }), 'bad-txt'],
    ['txtvers=2', srvAnswer(1, ZONE, peer, { txt: ['txtvers=2', pub, 'allowed='] }), 'bad-txt'],
    ['pub twice', srvAnswer(1, ZONE, peer, { txt: ['txtvers=1', pub, pub, 'allowed='] }), 'bad-txt'],
    ['a key that is not a key', srvAnswer(1, ZONE, peer, { txt: ['txtvers=1', 'pub=AAAA', 'allowed='] }), 'bad-txt'],
    ['too many prefixes', srvAnswer(1, ZONE, peer, { txt: ['txtvers=1', pub, `allowed=${Array.from({ length: MAX_ALLOWED_PER_PEER + 1 }, () => '::/128').join(',')}`] }), 'bad-allowed'],
  ];
  for (const [what, answer, reason] of cases) t.deepEqual(decodeSrvAnswer(answer, 1, peer.key, ZONE), { ok: false, reason }, what);
});

test('prefixes in allowed= that are not prefixes are left out and counted; verified= is ignored', (t) => {
  const peer = fixturePeer();
  const answer = srvAnswer(1, ZONE, peer, { txt: ['txtvers=1', `pub=${peer.key.toString('base64')}`, 'allowed=203.0.113.20/32,203.0.113.21/24,nonsense,2001:db8::/129', 'verified=1'] });
  const result = decodeSrvAnswer(answer, 1, peer.key, ZONE);
  t.true(result.ok);
  if (!result.ok) return;
  t.deepEqual(result.value.allowed.map((p) => p.text), ['203.0.113.20/32']);
  t.is(result.value.badPrefixes, 3);
});

test('zones are compared in lower case without the final dot; bad ones are refused', (t) => {
  t.deepEqual(normalizeZone('Mesh.Example.'), { ok: true, value: 'mesh.example' });
  t.false(normalizeZone('').ok);
  t.false(normalizeZone('a..b').ok);
  t.false(normalizeZone('a b').ok);
});

test('random and mutated bytes never throw, and never make a peer out of nothing', (t) => {
  const peer = fixturePeer();
  const good = srvAnswer(5, ZONE, peer);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), (random, flips) => {
      decodePtrAnswer(Buffer.from(random), 5, ZONE, 8);
      const mutated = Buffer.from(good);
      for (const [at, value] of flips) mutated[at % mutated.length] = value;
      const result = decodeSrvAnswer(mutated, 5, peer.key, ZONE);
      // whatever survives the checks still names this peer's key
      return !result.ok || result.value.publicKey === peer.key.toString('base64');
    }),
    { seed: 15, numRuns: 2000 },
  );
  t.pass();
});
