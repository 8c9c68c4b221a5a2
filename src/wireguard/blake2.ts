/**
 * The hash primitives of WireGuard (paper §5.4): HASH is BLAKE2s-256, MAC is keyed BLAKE2s
 * with a 16-byte output, HMAC is HMAC-BLAKE2s, and KDFn is HKDF built on that HMAC.
 *
 * HASH and HMAC run in OpenSSL (node:crypto's 'blake2s256') where this Node's OpenSSL has
 * BLAKE2: two to three times faster than JavaScript on the verification path. BLAKE2 is a
 * build option of OpenSSL, and OpenWrt builds Node against its shared OpenSSL, where nothing
 * in the feed turns it on: there `createHash('blake2s256')` throws, and @noble/hashes (pure
 * JavaScript, the same digests) does the work. node:crypto has no keyed BLAKE2s, so MAC always
 * uses @noble/hashes.
 */
import { createHash, createHmac } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { MAC_SIZE } from './constants.js';

/** Where HASH and HMAC run: this Node's OpenSSL, or @noble/hashes when OpenSSL lacks BLAKE2s. */
export type HashBackendName = 'openssl' | 'noble';

export interface HashBackend {
  readonly name: HashBackendName;
  /** BLAKE2s-256 over the concatenation of the parts */
  readonly hash: (parts: readonly Uint8Array[]) => Buffer;
  /** HMAC-BLAKE2s (RFC 2104, 64-byte block) */
  readonly hmac: (key: Uint8Array, input: Uint8Array) => Buffer;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export const OPENSSL_BACKEND: HashBackend = {
  name: 'openssl',
  hash: (parts) => {
    const state = createHash('blake2s256');
    for (const part of parts) state.update(part);
    return state.digest();
  },
  hmac: (key, input) => createHmac('blake2s256', key).update(input).digest(),
};

export const NOBLE_BACKEND: HashBackend = {
  name: 'noble',
  hash: (parts) => {
    const state = blake2s.create();
    for (const part of parts) state.update(part);
    return toBuffer(state.digest());
  },
  hmac: (key, input) => toBuffer(nobleHmac(blake2s, key, input)),
};

/** OpenSSL when it computes BLAKE2s-256 and gets the published digest of '' right; else noble. */
export function chooseBackend(openssl: HashBackend = OPENSSL_BACKEND): HashBackend {
  try {
    const empty = openssl.hash([]).toString('hex');
    if (empty === '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9') return openssl;
  } catch {
    // "Digest method not supported": an OpenSSL built without BLAKE2
  }
  return NOBLE_BACKEND;
}

const backend = chooseBackend();

/** Which implementation HASH and HMAC use in this process (`reconfig-wg check` says it). */
export const HASH_BACKEND: HashBackendName = backend.name;

/** HASH(a || b || …): BLAKE2s-256 over the concatenation of the parts. */
export function hash(...parts: readonly Uint8Array[]): Buffer {
  return backend.hash(parts);
}

/** MAC(key, input): keyed BLAKE2s with a 16-byte digest (not a truncated 32-byte one). */
export function mac(key: Uint8Array, input: Uint8Array): Buffer {
  return toBuffer(blake2s(input, { key, dkLen: MAC_SIZE }));
}

/** HMAC(key, input) with BLAKE2s (RFC 2104, 64-byte block). */
export function hmac(key: Uint8Array, input: Uint8Array): Buffer {
  return backend.hmac(key, input);
}

/** KDF1: τ1 = HMAC(HMAC(key, input), 0x1). */
export function kdf1(key: Uint8Array, input: Uint8Array): Buffer {
  const t0 = hmac(key, input);
  return hmac(t0, Uint8Array.of(1));
}

/** KDF2: τ1 as in KDF1, τ2 = HMAC(τ0, τ1 || 0x2). */
export function kdf2(key: Uint8Array, input: Uint8Array): [Buffer, Buffer] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, Uint8Array.of(1));
  const t2 = hmac(t0, Buffer.concat([t1, Uint8Array.of(2)]));
  return [t1, t2];
}
