import { createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { chooseBackend, hash, hmac, kdf1, kdf2, mac, NOBLE_BACKEND, OPENSSL_BACKEND, type HashBackend } from '../src/wireguard/blake2.js';
import { CHECK_ITEMS, runChecks, type CheckContext } from '../src/reconfig/check.js';
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

// Both implementations of HASH and HMAC, against the published digest and OpenSSL's HMAC and HKDF
// (computed here with node:crypto, whose OpenSSL on this test machine has BLAKE2).
for (const backend of [OPENSSL_BACKEND, NOBLE_BACKEND]) {
  test(`the ${backend.name} backend computes HASH, HMAC and HKDF-BLAKE2s as published`, (t) => {
    t.is(hex(backend.hash([])), '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9');
    t.is(hex(backend.hash([Buffer.from('mac1----'), range(32)])), createHash('blake2s256').update('mac1----').update(range(32)).digest('hex'));
    for (const keyLength of [0, 32, 64, 65]) {
      const key = range(keyLength);
      const input = range(77).reverse();
      t.is(hex(backend.hmac(key, input)), createHmac('blake2s256', key).update(input).digest('hex'), `key ${keyLength}`);
    }
    const key = range(32);
    const input = Buffer.from('ephemeral or DH output');
    const t0 = backend.hmac(key, input);
    const t1 = backend.hmac(t0, Uint8Array.of(1));
    const t2 = backend.hmac(t0, Buffer.concat([t1, Uint8Array.of(2)]));
    t.is(hex(Buffer.concat([t1, t2])), hex(Buffer.from(hkdfSync('blake2s256', input, key, Buffer.alloc(0), 64))));
  });
}

test('an OpenSSL without BLAKE2s (it throws) or with a wrong one makes HASH and HMAC run in @noble/hashes', (t) => {
  const throwing: HashBackend = { ...OPENSSL_BACKEND, hash: () => { throw new Error('Digest method not supported'); } };
  t.is(chooseBackend(throwing).name, 'noble');
  const wrong: HashBackend = { ...OPENSSL_BACKEND, hash: () => Buffer.alloc(32) };
  t.is(chooseBackend(wrong).name, 'noble');
  t.is(chooseBackend(OPENSSL_BACKEND).name, 'openssl', 'this Node has BLAKE2s in OpenSSL');
});

test('check names the backend in use', async (t) => {
  const hashItem = CHECK_ITEMS.filter((item) => item.name === 'hash');
  const context = (hashBackend: 'openssl' | 'noble') => ({ hashBackend }) as unknown as CheckContext;
  t.regex((await runChecks(context('openssl'), hashItem))[0]!.detail, /OpenSSL/);
  t.regex((await runChecks(context('noble'), hashItem))[0]!.detail, /@noble\/hashes/);
});

test('under a Node without BLAKE2 in OpenSSL the daemon verifies with @noble/hashes, and check says so', async (t) => {
  const preload = new URL('./helpers/without-blake2.js', import.meta.url).href;
  const blake2 = new URL('../src/wireguard/blake2.js', import.meta.url).href;
  const probe = `const b = await import(${JSON.stringify(blake2)}); const [a, c] = b.kdf2(Buffer.alloc(32, 7), Buffer.from('x')); console.log(JSON.stringify({ backend: b.HASH_BACKEND, kdf: a.toString('hex') + c.toString('hex'), hash: b.hash(Buffer.from('abc')).toString('hex') }));`;
  const child = await execa(process.execPath, ['--import', preload, '--input-type=module', '-e', probe]);
  const seen = JSON.parse(child.stdout) as { backend: string; kdf: string; hash: string };
  t.is(seen.backend, 'noble');
  const [a, c] = kdf2(Buffer.alloc(32, 7), Buffer.from('x'));
  t.is(seen.kdf, hex(a) + hex(c), 'the same KDF output as OpenSSL gives here');
  t.is(seen.hash, hex(hash(Buffer.from('abc'))));

  const cli = fileURLToPath(new URL('../src/reconfig/cli.js', import.meta.url));
  const check = await execa(process.execPath, ['--import', preload, cli, 'check', '-i', 'nosuch0', '--persist', 'none', '--json'], { reject: false });
  const items = (JSON.parse(check.stdout) as { results: { name: string; detail: string }[] }).results;
  t.regex(items.find((item) => item.name === 'hash')?.detail ?? '', /@noble\/hashes/, check.stdout);
  const plain = await execa(process.execPath, [cli, 'check', '-i', 'nosuch0', '--persist', 'none', '--json'], { reject: false });
  t.regex((JSON.parse(plain.stdout) as { results: { name: string; detail: string }[] }).results.find((item) => item.name === 'hash')?.detail ?? '', /OpenSSL/);
});
