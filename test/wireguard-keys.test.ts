import { inspect } from 'node:util';
import test from 'ava';
import { dh, generatePrivateKey, parseKey, parseSecret, publicKeyOf, Secret } from '../src/wireguard/keys.js';
import { createResponder } from '../src/wireguard/responder.js';
import { LOW_ORDER_POINTS } from '../scripts/lab/initiator.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const bytes = (text: string): Buffer => Buffer.from(text, 'hex');

// RFC 7748 §6.1.
const ALICE_PRIVATE = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const ALICE_PUBLIC = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
const BOB_PRIVATE = '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb';
const BOB_PUBLIC = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
const SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

test('publicKeyOf gives the RFC 7748 public keys', (t) => {
  t.is(hex(publicKeyOf(new Secret(bytes(ALICE_PRIVATE)))), ALICE_PUBLIC);
  t.is(hex(publicKeyOf(new Secret(bytes(BOB_PRIVATE)))), BOB_PUBLIC);
});

test('dh gives the RFC 7748 shared secret from both sides', (t) => {
  const alice = dh(new Secret(bytes(ALICE_PRIVATE)), bytes(BOB_PUBLIC));
  const bob = dh(new Secret(bytes(BOB_PRIVATE)), bytes(ALICE_PUBLIC));
  t.true(alice.ok && hex(alice.value) === SHARED);
  t.true(bob.ok && hex(bob.value) === SHARED);
});

test('dh fails cleanly on every low-order point and on a wrong length', (t) => {
  const secret = generatePrivateKey();
  for (const point of LOW_ORDER_POINTS) {
    t.deepEqual(dh(secret, bytes(point)), { ok: false, reason: 'bad-ephemeral' }, point);
  }
  t.deepEqual(dh(secret, Buffer.alloc(31, 9)), { ok: false, reason: 'bad-ephemeral' });
  t.deepEqual(dh(secret, Buffer.alloc(33, 9)), { ok: false, reason: 'bad-ephemeral' });
});

test('parseKey accepts a key as wg prints it and returns its 32 bytes', (t) => {
  const parsed = parseKey('hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=');
  t.true(parsed.ok && hex(parsed.value) === ALICE_PUBLIC);
});

test('parseKey refuses anything but canonical 44-character base64 of 32 bytes', (t) => {
  const valid = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=';
  for (const text of [
    '',
    valid.slice(0, 43),
    `${valid}=`,
    `${valid}\n`,
    ` ${valid.slice(1)}`,
    valid.replace('=', 'A'),
    valid.replace('mo=', 'mp='), // non-zero padding bits: not the canonical encoding
    valid.replace('/', '_'), // base64url is not what wg prints
    Buffer.alloc(33).toString('base64').slice(0, 44),
  ]) {
    t.deepEqual(parseKey(text), { ok: false, reason: 'bad-key' }, JSON.stringify(text));
  }
});

test('parseSecret gives a private key with the expected public key', (t) => {
  const parsed = parseSecret(bytes(ALICE_PRIVATE).toString('base64'));
  t.true(parsed.ok && hex(publicKeyOf(parsed.value)) === ALICE_PUBLIC);
  t.deepEqual(parseSecret('nope'), { ok: false, reason: 'bad-key' });
});

test('generated private keys are distinct and usable', (t) => {
  const a = generatePrivateKey();
  const b = generatePrivateKey();
  t.not(hex(publicKeyOf(a)), hex(publicKeyOf(b)));
  const ab = dh(a, publicKeyOf(b));
  const ba = dh(b, publicKeyOf(a));
  t.true(ab.ok && ba.ok && ab.value.equals(ba.value));
});

test('a Secret never shows its bytes in JSON, inspect, or strings', (t) => {
  const secret = new Secret(bytes(ALICE_PRIVATE));
  const forms = [
    JSON.stringify(secret),
    JSON.stringify({ key: secret }),
    inspect(secret),
    inspect({ nested: { secret } }, { showHidden: true, depth: 10 }),
    `${secret}`,
    String(secret),
    `${[secret]}`,
  ];
  for (const form of forms) {
    t.true(form.includes('[secret]'), form);
    t.false(form.includes(ALICE_PRIVATE), form);
    t.false(form.includes(bytes(ALICE_PRIVATE).toString('base64')), form);
  }
  t.deepEqual(Object.keys(secret), []);
});

test('a Responder can be serialised without revealing its private key', (t) => {
  const responder = createResponder(new Secret(bytes(BOB_PRIVATE)));
  for (const form of [JSON.stringify(responder), inspect(responder, { showHidden: true, depth: 10 })]) {
    t.true(form.includes('[secret]'), form);
    t.false(form.includes(BOB_PRIVATE), form);
    t.false(form.includes(bytes(BOB_PRIVATE).toString('base64')), form);
  }
  t.is(hex(responder.publicKey), BOB_PUBLIC);
});
