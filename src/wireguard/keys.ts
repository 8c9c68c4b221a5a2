/**
 * Curve25519 keys (paper §5.4: DH is X25519). Private keys live only inside Secret, which
 * holds them as an OpenSSL key object and renders as "[secret]" everywhere, so a key can never
 * reach a log line or a state file by accident.
 */
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { inspect } from 'node:util';
import { fail, ok, type Result } from '../common/result.js';
import { KEY_SIZE } from './constants.js';

// Raw 32-byte X25519 keys wrapped in DER (RFC 8410): PKCS#8 for private, SPKI for public.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

// Canonical base64 of 32 bytes: 43 characters, the last one carrying 4 zero padding bits, then "=".
const KEY_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

const REDACTED = '[secret]';
const privateKeys = new WeakMap<Secret, KeyObject>();

export class Secret {
  /** @param bytes 32 raw private key bytes; copied, the caller may wipe its buffer afterwards. */
  constructor(bytes: Uint8Array) {
    if (bytes.length !== KEY_SIZE) throw new RangeError(`private key must be ${KEY_SIZE} bytes`);
    const der = Buffer.concat([PKCS8_PREFIX, bytes]);
    privateKeys.set(this, createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
    der.fill(0);
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

function keyObjectOf(secret: Secret): KeyObject {
  const key = privateKeys.get(secret);
  if (key === undefined) throw new TypeError('not a Secret built by its constructor');
  return key;
}

/** Decodes a key as `wg` prints it: strict base64 of exactly 32 bytes. */
export function parseKey(base64: string): Result<Buffer, 'bad-key'> {
  if (!KEY_BASE64.test(base64)) return fail('bad-key');
  return ok(Buffer.from(base64, 'base64'));
}

/** Decodes a private key straight into a Secret and wipes the decoded bytes. */
export function parseSecret(base64: string): Result<Secret, 'bad-key'> {
  const parsed = parseKey(base64);
  if (!parsed.ok) return parsed;
  const secret = new Secret(parsed.value);
  parsed.value.fill(0);
  return ok(secret);
}

export function publicKeyOf(secret: Secret): Buffer {
  const spki = createPublicKey(keyObjectOf(secret)).export({ format: 'der', type: 'spki' });
  return Buffer.from(spki.subarray(SPKI_PREFIX.length));
}

/**
 * X25519(secret, publicKey). A low-order public key gives the all-zero shared secret, which
 * WireGuard rejects (kernel noise.c mix_dh, wireguard-go sharedSecret's isZero check); OpenSSL
 * throws in that case, and both paths end in the same failure.
 */
export function dh(secret: Secret, publicKey: Uint8Array): Result<Buffer, 'bad-ephemeral'> {
  if (publicKey.length !== KEY_SIZE) return fail('bad-ephemeral');
  let shared: Buffer;
  try {
    // JWK import: a tenth of the cost of parsing the same key as DER (measured by npm run bench).
    const peer = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey).toString('base64url') },
      format: 'jwk',
    });
    shared = diffieHellman({ privateKey: keyObjectOf(secret), publicKey: peer });
  } catch {
    return fail('bad-ephemeral');
  }
  if (shared.length !== KEY_SIZE || shared.every((byte) => byte === 0)) return fail('bad-ephemeral');
  return ok(shared);
}

/** A fresh private key, clamped as `wg genkey` does (RFC 7748 §5). */
export function generatePrivateKey(): Secret {
  const bytes = randomBytes(KEY_SIZE);
  bytes[0] = (bytes[0] ?? 0) & 248;
  bytes[31] = ((bytes[31] ?? 0) & 127) | 64;
  const secret = new Secret(bytes);
  bytes.fill(0);
  return secret;
}
