/**
 * The hash primitives of WireGuard (paper §5.4): HASH is BLAKE2s-256, MAC is keyed BLAKE2s
 * with a 16-byte output, HMAC is HMAC-BLAKE2s, and KDFn is HKDF built on that HMAC.
 *
 * HASH and HMAC run in OpenSSL (node:crypto's 'blake2s256'), several times faster than in
 * JavaScript on the verification path; node:crypto has no keyed BLAKE2s, so MAC uses
 * @noble/hashes.
 */
import { createHash, createHmac } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { MAC_SIZE } from './constants.js';

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** HASH(a || b || …): BLAKE2s-256 over the concatenation of the parts. */
export function hash(...parts: readonly Uint8Array[]): Buffer {
  const state = createHash('blake2s256');
  for (const part of parts) state.update(part);
  return state.digest();
}

/** MAC(key, input): keyed BLAKE2s with a 16-byte digest (not a truncated 32-byte one). */
export function mac(key: Uint8Array, input: Uint8Array): Buffer {
  return toBuffer(blake2s(input, { key, dkLen: MAC_SIZE }));
}

/** HMAC(key, input) with BLAKE2s (RFC 2104, 64-byte block). */
export function hmac(key: Uint8Array, input: Uint8Array): Buffer {
  return createHmac('blake2s256', key).update(input).digest();
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
