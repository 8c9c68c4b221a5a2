/**
 * AEAD is ChaCha20-Poly1305 (RFC 8439) with a 96-bit nonce of 32 zero bits followed by a
 * 64-bit little-endian counter (paper §5.4). Opening never throws: a bad tag is a reason.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { fail, ok, type Result } from '../common/result.js';
import { AEAD_TAG_SIZE } from './constants.js';

const ALGORITHM = 'chacha20-poly1305';

function nonceOf(counter: bigint): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(counter, 4);
  return nonce;
}

/** AEAD(key, counter, plaintext, ad): ciphertext followed by the 16-byte tag. */
export function seal(key: Uint8Array, counter: bigint, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const cipher = createCipheriv(ALGORITHM, key, nonceOf(counter), { authTagLength: AEAD_TAG_SIZE });
  cipher.setAAD(ad, { plaintextLength: plaintext.length });
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([body, cipher.getAuthTag()]);
}

/** Inverse of seal; the plaintext is a fresh buffer. */
export function open(
  key: Uint8Array,
  counter: bigint,
  sealed: Uint8Array,
  ad: Uint8Array,
): Result<Buffer, 'decrypt-failed'> {
  if (sealed.length < AEAD_TAG_SIZE) return fail('decrypt-failed');
  const bodyLength = sealed.length - AEAD_TAG_SIZE;
  try {
    const decipher = createDecipheriv(ALGORITHM, key, nonceOf(counter), {
      authTagLength: AEAD_TAG_SIZE,
    });
    decipher.setAAD(ad, { plaintextLength: bodyLength });
    decipher.setAuthTag(sealed.subarray(bodyLength));
    return ok(Buffer.concat([decipher.update(sealed.subarray(0, bodyLength)), decipher.final()]));
  } catch {
    return fail('decrypt-failed');
  }
}
