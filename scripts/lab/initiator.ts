/**
 * The initiator side of the first handshake message (paper §5.4.2), for the lab and tests: builds
 * genuine initiations, and forged ones (a claimed static key the sender does not hold, a
 * chosen ephemeral) that still carry a correct mac1.
 */
import { randomBytes } from 'node:crypto';
import { seal } from '../../src/wireguard/aead.js';
import { hash, kdf1, kdf2 } from '../../src/wireguard/blake2.js';
import {
  INITIATION_EPHEMERAL_OFFSET,
  INITIATION_MAC1_OFFSET,
  INITIATION_SENDER_OFFSET,
  INITIATION_SIZE,
  INITIATION_STATIC_OFFSET,
  INITIATION_TIMESTAMP_OFFSET,
  MESSAGE_INITIATION,
} from '../../src/wireguard/constants.js';
import { dh, generatePrivateKey, publicKeyOf, type Secret } from '../../src/wireguard/keys.js';
import { computeMac1, mac1KeyOf } from '../../src/wireguard/mac1.js';
import { initialState } from '../../src/wireguard/noise.js';
import { timestampFromDate } from '../../src/wireguard/tai64n.js';

// Points of order 1, 2, 4 and 8 and their non-canonical encodings (cr.yp.to/ecdh.html#validate).
export const LOW_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

export interface InitiationOptions {
  initiatorPrivateKey: Secret;
  responderPublicKey: Buffer;
  /** TAI64N, 12 bytes; defaults to now. */
  timestamp?: Buffer;
  /** Sender index; defaults to random. */
  sender?: number;
  /** Defaults to a fresh key. */
  ephemeralPrivateKey?: Secret;
  /** Static key to put in the message instead of the initiator's own (a forgery). */
  claimedStaticKey?: Buffer;
}

function unwrap(shared: ReturnType<typeof dh>): Buffer {
  if (!shared.ok) throw new Error(`test initiator: DH failed (${shared.reason})`);
  return shared.value;
}

export function createInitiation(options: InitiationOptions): Buffer {
  const { initiatorPrivateKey, responderPublicKey } = options;
  const timestamp = options.timestamp ?? timestampFromDate(new Date());
  const sender = options.sender ?? randomBytes(4).readUInt32LE(0);
  const ephemeralPrivateKey = options.ephemeralPrivateKey ?? generatePrivateKey();
  const staticKey = options.claimedStaticKey ?? publicKeyOf(initiatorPrivateKey);

  const msg = Buffer.alloc(INITIATION_SIZE);
  msg[0] = MESSAGE_INITIATION;
  msg.writeUInt32LE(sender, INITIATION_SENDER_OFFSET);

  const state = initialState(responderPublicKey);
  const ephemeral = publicKeyOf(ephemeralPrivateKey);
  let chainingKey = kdf1(state.chainingKey, ephemeral);
  let handshakeHash = hash(state.handshakeHash, ephemeral);
  ephemeral.copy(msg, INITIATION_EPHEMERAL_OFFSET);

  let key: Buffer;
  [chainingKey, key] = kdf2(chainingKey, unwrap(dh(ephemeralPrivateKey, responderPublicKey)));
  const encryptedStatic = seal(key, 0n, staticKey, handshakeHash);
  handshakeHash = hash(handshakeHash, encryptedStatic);
  encryptedStatic.copy(msg, INITIATION_STATIC_OFFSET);

  [chainingKey, key] = kdf2(chainingKey, unwrap(dh(initiatorPrivateKey, responderPublicKey)));
  seal(key, 0n, timestamp, handshakeHash).copy(msg, INITIATION_TIMESTAMP_OFFSET);

  return writeMac1(msg, responderPublicKey);
}

/** Recomputes mac1 in place (mac2 untouched), as a forger who knows Spub_r can. */
export function writeMac1(msg: Buffer, responderPublicKey: Buffer): Buffer {
  computeMac1(mac1KeyOf(responderPublicKey), msg).copy(msg, INITIATION_MAC1_OFFSET);
  return msg;
}
