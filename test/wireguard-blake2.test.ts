import { createHmac, hkdfSync } from 'node:crypto';
import test from 'ava';
import { hash, hmac, kdf1, kdf2, mac } from '../src/wireguard/blake2.js';

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
