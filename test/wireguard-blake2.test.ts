import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import test from 'ava';
import { hash, hmac, kdf1, kdf2, mac } from '../src/wireguard/blake2.js';
import { Mac16Key } from '../src/wireguard/blake2s-mac.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const range = (length: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => i & 0xff));

test('HASH of the empty string is the published BLAKE2s-256 digest', (t) => {
  // RFC 7693 reference implementation / blake2s-kat.txt.
  t.is(hex(hash()), '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9');
  t.is(hex(hash(Buffer.alloc(0), Buffer.alloc(0))), hex(hash()));
});

test('HASH of several parts equals HASH of their concatenation', (t) => {
  t.is(hex(hash(Buffer.from('mac1----'), range(32))), hex(hash(Buffer.concat([Buffer.from('mac1----'), range(32)]))));
});

test('MAC is keyed BLAKE2s with a 16-byte digest, matching Python hashlib', (t) => {
  // hashlib.blake2s(bytes(range(64)), key=bytes(range(32)), digest_size=16).hexdigest()
  t.is(hex(mac(range(32), range(64))), 'f1efa90d2547036841ecd3627fafbc36');
});

test('HMAC matches OpenSSL HMAC-BLAKE2s for short, block-sized and long keys', (t) => {
  for (const keyLength of [0, 16, 32, 64, 65, 100]) {
    for (const inputLength of [0, 1, 33, 200]) {
      const key = range(keyLength);
      const input = range(inputLength).reverse();
      const expected = createHmac('blake2s256', key).update(input).digest('hex');
      t.is(hex(hmac(key, input)), expected, `key ${keyLength}, input ${inputLength}`);
    }
  }
});

test('KDF2 is HKDF-BLAKE2s with the key as salt and an empty info (RFC 5869)', (t) => {
  const key = range(32);
  const input = Buffer.from('ephemeral or DH output');
  const [t1, t2] = kdf2(key, input);
  const expected = Buffer.from(hkdfSync('blake2s256', input, key, Buffer.alloc(0), 64));
  t.is(hex(Buffer.concat([t1, t2])), hex(expected));
});

test('KDF1 is the first output of KDF2', (t) => {
  const key = range(32).reverse();
  const input = range(32);
  t.is(hex(kdf1(key, input)), hex(kdf2(key, input)[0]));
});

test('the prepared mac1 key computes keyed BLAKE2s-128 as the reference MAC does, for every length', (t) => {
  for (const keyLength of [1, 16, 32]) {
    const key = randomBytes(keyLength);
    const prepared = new Mac16Key(key);
    for (const length of [0, 1, 63, 64, 65, 116, 128, 129, 200]) {
      const input = randomBytes(length);
      t.is(hex(prepared.mac(input)), hex(mac(key, input)), `key ${keyLength}, input ${length}`);
    }
  }
  // hashlib.blake2s(bytes(range(64)), key=bytes(range(32)), digest_size=16).hexdigest()
  t.is(hex(new Mac16Key(range(32)).mac(range(64))), 'f1efa90d2547036841ecd3627fafbc36');
});

test('the prepared mac1 key verifies a MAC in place and refuses every one-bit change', (t) => {
  const key = randomBytes(32);
  const prepared = new Mac16Key(key);
  const msg = randomBytes(148);
  mac(key, msg.subarray(0, 116)).copy(msg, 116);
  t.true(prepared.verify(msg, 0, 116, 116));
  const framed = Buffer.concat([randomBytes(42), msg]);
  t.true(prepared.verify(framed, 42, 42 + 116, 42 + 116), 'in place, at an offset');
  for (const bit of [0, 8 * 50 + 3, 8 * 115 + 7, 8 * 116, 8 * 131 + 7]) {
    const flipped = Buffer.from(msg);
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    t.false(prepared.verify(flipped, 0, 116, 116), `bit ${bit}`);
  }
  t.false(prepared.verify(msg.subarray(0, 120), 0, 116, 116), 'too short for the MAC field');
});
