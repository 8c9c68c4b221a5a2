import test from 'ava';
import { INITIATION_MAC1_OFFSET, INITIATION_MAC2_OFFSET, INITIATION_SIZE } from '../src/wireguard/constants.js';
import { consumeInitiation } from '../src/wireguard/initiation.js';
import { generatePrivateKey, publicKeyOf, Secret } from '../src/wireguard/keys.js';
import { checkMac1 } from '../src/wireguard/mac1.js';
import { createResponder } from '../src/wireguard/responder.js';
import { timestampFromDate, timestampToDate } from '../src/wireguard/tai64n.js';
import { createInitiation, LOW_ORDER_POINTS, writeMac1 } from '../scripts/lab/initiator.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

const responderKey = generatePrivateKey();
const responder = createResponder(responderKey);
const initiatorKey = generatePrivateKey();
const initiatorPublic = publicKeyOf(initiatorKey);
const timestamp = timestampFromDate(new Date('2030-01-02T03:04:05.678Z'));

function genuine(): Buffer {
  return createInitiation({
    initiatorPrivateKey: initiatorKey,
    responderPublicKey: responder.publicKey,
    timestamp,
    sender: 0xdeadbeef,
  });
}

// A handshake initiation sent by wireguard-go 0.0.20220316 to a peer, captured off the wire:
// initiator private key = RFC 7748 Alice, responder (peer) private key = RFC 7748 Bob.
const WIREGUARD_GO_INITIATION =
  '010000001f963650d7fe48ea3fe80810286ac4aefc23b2b9650898fbba2f449eaa45680b32a1dc4291a6bb5661' +
  '082976dadc5799565d205efc951a847b705da7e64b2138edf72a06dbd3d5ca88a7d5ffe50e6ef8acf4e9c5bc82' +
  '09b1673c693bb0b431c561ff7d6f36a51f02ffac61eafdb38d659d4f0b4b4edc511bf77493608cbd2ab9000000' +
  '00000000000000000000000000';

test('an initiation captured from wireguard-go is accepted and names its sender', (t) => {
  const bobPrivate = '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb';
  const bob = createResponder(new Secret(Buffer.from(bobPrivate, 'hex')));
  const result = consumeInitiation(bob, Buffer.from(WIREGUARD_GO_INITIATION, 'hex'));
  if (!result.ok) return t.fail(result.reason);
  t.is(hex(result.value.staticKey), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  t.is(result.value.sender, 0x5036961f);
  // The capturing machine's clock read 2026-11-23 07:28:24 UTC; wireguard-go rounds the
  // nanoseconds down to a multiple of 2^24 so the timestamp does not leak a fine clock.
  t.is(hex(result.value.timestamp), '400000006b03eb222a000000');
  const sent = timestampToDate(result.value.timestamp);
  t.true(sent.ok && sent.value.toISOString() === '2026-11-23T07:28:24.704Z');
});

test('a genuine initiation is accepted with the initiator key, timestamp and sender', (t) => {
  const result = consumeInitiation(responder, genuine());
  if (!result.ok) return t.fail(result.reason);
  t.true(result.value.staticKey.equals(initiatorPublic));
  t.true(result.value.timestamp.equals(timestamp));
  t.is(result.value.sender, 0xdeadbeef);
});

test('the verified fields are copies, not views of the packet', (t) => {
  const msg = genuine();
  const result = consumeInitiation(responder, msg);
  msg.fill(0);
  t.true(result.ok && result.value.staticKey.equals(initiatorPublic) && result.value.timestamp.equals(timestamp));
});

test('an initiation for another server fails mac1', (t) => {
  const other = createResponder(generatePrivateKey());
  t.false(checkMac1(other, genuine()));
  t.deepEqual(consumeInitiation(other, genuine()), { ok: false, reason: 'bad-mac1' });
});

test('an initiation for another server, given our mac1, fails decryption', (t) => {
  const other = createResponder(generatePrivateKey());
  const msg = writeMac1(genuine(), other.publicKey);
  t.true(checkMac1(other, msg));
  t.deepEqual(consumeInitiation(other, msg), { ok: false, reason: 'decrypt-failed' });
});

test('claiming a peer static key without its private key fails decryption', (t) => {
  const forger = generatePrivateKey();
  const msg = createInitiation({
    initiatorPrivateKey: forger,
    responderPublicKey: responder.publicKey,
    claimedStaticKey: initiatorPublic,
  });
  t.deepEqual(consumeInitiation(responder, msg), { ok: false, reason: 'decrypt-failed' });
});

test('claiming a low-order static key is rejected', (t) => {
  for (const point of LOW_ORDER_POINTS) {
    const msg = createInitiation({
      initiatorPrivateKey: generatePrivateKey(),
      responderPublicKey: responder.publicKey,
      claimedStaticKey: Buffer.from(point, 'hex'),
    });
    t.deepEqual(consumeInitiation(responder, msg), { ok: false, reason: 'decrypt-failed' }, point);
  }
});

test('a low-order ephemeral with a correct mac1 is rejected without throwing', (t) => {
  for (const point of LOW_ORDER_POINTS) {
    const msg = genuine();
    Buffer.from(point, 'hex').copy(msg, 8);
    writeMac1(msg, responder.publicKey);
    t.deepEqual(consumeInitiation(responder, msg), { ok: false, reason: 'bad-ephemeral' }, point);
  }
});

test('every single-byte change before mac1 is rejected', (t) => {
  const original = genuine();
  for (let index = 0; index < INITIATION_MAC1_OFFSET; index++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const msg = Buffer.from(original);
      msg[index] = (msg[index] ?? 0) ^ mask;
      const expected = index < 4 ? 'bad-type' : 'bad-mac1';
      t.deepEqual(consumeInitiation(responder, msg), { ok: false, reason: expected }, `byte ${index}`);
    }
  }
});

test('every single-byte change to the ephemeral, static or timestamp fails even with mac1 forged', (t) => {
  const original = genuine();
  for (let index = 8; index < INITIATION_MAC1_OFFSET; index++) {
    const msg = Buffer.from(original);
    msg[index] = (msg[index] ?? 0) ^ 0x01;
    writeMac1(msg, responder.publicKey);
    const result = consumeInitiation(responder, msg);
    t.false(result.ok, `byte ${index}`);
    if (!result.ok) t.true(result.reason === 'decrypt-failed' || result.reason === 'bad-ephemeral');
  }
});

test('the sender index is authenticated by mac1 only, not by the Noise steps', (t) => {
  const msg = genuine();
  msg.writeUInt32LE(7, 4);
  t.deepEqual(consumeInitiation(responder, msg), { ok: false, reason: 'bad-mac1' });
  const result = consumeInitiation(responder, writeMac1(msg, responder.publicKey));
  t.true(result.ok && result.value.sender === 7 && result.value.staticKey.equals(initiatorPublic));
});

test('a changed mac1 is rejected', (t) => {
  const msg = genuine();
  msg[INITIATION_MAC1_OFFSET + 15] = (msg[INITIATION_MAC1_OFFSET + 15] ?? 0) ^ 0x01;
  t.deepEqual(consumeInitiation(responder, msg), { ok: false, reason: 'bad-mac1' });
});

test('mac2 is not checked: it only matters to a responder under load (paper §5.4.7)', (t) => {
  const msg = genuine();
  msg.fill(0xaa, INITIATION_MAC2_OFFSET);
  const result = consumeInitiation(responder, msg);
  t.true(result.ok && result.value.timestamp.equals(timestamp));
});

test('truncated and extended initiations are the wrong size', (t) => {
  const msg = genuine();
  for (const candidate of [
    Buffer.alloc(0),
    msg.subarray(0, 1),
    msg.subarray(0, INITIATION_SIZE - 1),
    Buffer.concat([msg, Buffer.alloc(1)]),
    Buffer.concat([msg, msg]),
  ]) {
    t.deepEqual(consumeInitiation(responder, candidate), { ok: false, reason: 'bad-size' }, `${candidate.length}`);
  }
});

test('other message types and non-zero reserved bytes are the wrong type', (t) => {
  for (const [index, value] of [[0, 0], [0, 2], [0, 3], [0, 4], [0, 0x81], [1, 1], [2, 1], [3, 0x80]] as const) {
    const msg = genuine();
    msg[index] = value;
    writeMac1(msg, responder.publicKey);
    t.deepEqual(consumeInitiation(responder, msg), { ok: false, reason: 'bad-type' }, `byte ${index} = ${value}`);
  }
});
