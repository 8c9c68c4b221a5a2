/**
 * The responder side of the first handshake message (paper §5.4.2, Noise IK): checks the
 * framing and mac1, then runs the Noise steps that only the holder of the interface's private
 * key can run. Success reveals the initiator's static public key and its TAI64N timestamp,
 * which proves the sender holds that peer's private key (the timestamp key needs DH(s_i, S_r)).
 * Replay is not judged here: the caller compares the timestamp with the last one it accepted.
 */
import { fail, ok, type Result } from '../common/result.js';
import { open } from './aead.js';
import { hash, kdf1, kdf2 } from './blake2.js';
import {
  INITIATION_EPHEMERAL_OFFSET,
  INITIATION_EPHEMERAL_SIZE,
  INITIATION_RESERVED_OFFSET,
  INITIATION_RESERVED_SIZE,
  INITIATION_SENDER_OFFSET,
  INITIATION_SIZE,
  INITIATION_STATIC_OFFSET,
  INITIATION_STATIC_SIZE,
  INITIATION_TIMESTAMP_OFFSET,
  INITIATION_TIMESTAMP_SIZE,
  INITIATION_TYPE_OFFSET,
  MESSAGE_INITIATION,
} from './constants.js';
import { dh } from './keys.js';
import { checkMac1, checkMac1At } from './mac1.js';
import type { Responder } from './responder.js';

export type InitiationReason =
  | 'bad-size'
  | 'bad-type'
  | 'bad-mac1'
  | 'bad-ephemeral'
  | 'decrypt-failed';

export interface VerifiedInitiation {
  /**
   * The initiator's session index, u32 little-endian. Not part of the Noise transcript
   * (paper §5.4.2): anyone can change it and recompute mac1, so it identifies nothing.
   */
  readonly sender: number;
  /** The initiator's static public key, 32 bytes. */
  readonly staticKey: Buffer;
  /** TAI64N, 12 bytes. */
  readonly timestamp: Buffer;
}

function field(msg: Buffer, offset: number, size: number): Buffer {
  return msg.subarray(offset, offset + size);
}

function hasInitiationHeader(msg: Buffer): boolean {
  if (msg[INITIATION_TYPE_OFFSET] !== MESSAGE_INITIATION) return false;
  const reserved = field(msg, INITIATION_RESERVED_OFFSET, INITIATION_RESERVED_SIZE);
  return reserved.every((byte) => byte === 0);
}

export type ScreenReason = 'bad-size' | 'bad-type' | 'bad-mac1';

/**
 * The cheap checks, before any Curve25519 work (paper §5.4.4): size, type and mac1. A caller
 * may put a rate limit between this and `openInitiation`, which costs two X25519.
 */
export function screenInitiation(responder: Responder, msg: Buffer): Result<true, ScreenReason> {
  if (msg.length !== INITIATION_SIZE) return fail('bad-size');
  if (!hasInitiationHeader(msg)) return fail('bad-type');
  if (!checkMac1(responder, msg)) return fail('bad-mac1');
  return ok(true);
}

/**
 * screenInitiation on the message at `offset` of a captured frame whose UDP header says it is
 * `size` bytes, in place: allocates nothing (it runs for every captured packet). Undefined
 * when the message passes.
 */
export function screenInitiationAt(responder: Responder, frame: Buffer, offset: number, size: number): ScreenReason | undefined {
  if (size !== INITIATION_SIZE || frame.length < offset + INITIATION_SIZE) return 'bad-size';
  if (frame[offset + INITIATION_TYPE_OFFSET] !== MESSAGE_INITIATION) return 'bad-type';
  for (let i = 0; i < INITIATION_RESERVED_SIZE; i++) if (frame[offset + INITIATION_RESERVED_OFFSET + i] !== 0) return 'bad-type';
  return checkMac1At(responder, frame, offset) ? undefined : 'bad-mac1';
}

/** Screens, then runs the Noise IK responder steps. */
export function consumeInitiation(
  responder: Responder,
  msg: Buffer,
): Result<VerifiedInitiation, InitiationReason> {
  const screened = screenInitiation(responder, msg);
  if (!screened.ok) return screened;
  return openInitiation(responder, msg);
}

/**
 * The Noise IK responder steps on a screened initiation: decrypts the initiator's static key
 * and timestamp. Never throws; call screenInitiation first.
 */
export function openInitiation(
  responder: Responder,
  msg: Buffer,
): Result<VerifiedInitiation, InitiationReason> {
  if (msg.length !== INITIATION_SIZE) return fail('bad-size');
  const ephemeral = field(msg, INITIATION_EPHEMERAL_OFFSET, INITIATION_EPHEMERAL_SIZE);
  let chainingKey = kdf1(responder.chainingKey, ephemeral);
  let handshakeHash = hash(responder.handshakeHash, ephemeral);

  const ephemeralShared = dh(responder.privateKey, ephemeral);
  if (!ephemeralShared.ok) return fail('bad-ephemeral');
  let key: Buffer;
  [chainingKey, key] = kdf2(chainingKey, ephemeralShared.value);

  const encryptedStatic = field(msg, INITIATION_STATIC_OFFSET, INITIATION_STATIC_SIZE);
  const staticKey = open(key, 0n, encryptedStatic, handshakeHash);
  if (!staticKey.ok) return staticKey;
  handshakeHash = hash(handshakeHash, encryptedStatic);

  // A low-order static key makes this DH all-zero; like wireguard-go, the handshake then
  // cannot be completed, and it is reported as the decryption it prevents.
  const staticShared = dh(responder.privateKey, staticKey.value);
  if (!staticShared.ok) return fail('decrypt-failed');
  [chainingKey, key] = kdf2(chainingKey, staticShared.value);

  const encryptedTimestamp = field(msg, INITIATION_TIMESTAMP_OFFSET, INITIATION_TIMESTAMP_SIZE);
  const timestamp = open(key, 0n, encryptedTimestamp, handshakeHash);
  if (!timestamp.ok) return timestamp;

  return ok({
    sender: msg.readUInt32LE(INITIATION_SENDER_OFFSET),
    staticKey: staticKey.value,
    timestamp: timestamp.value,
  });
}
