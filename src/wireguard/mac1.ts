/**
 * mac1 (paper §5.4.4): MAC(HASH(LABEL_MAC1 || Spub_r), bytes before mac1). Anyone who knows the
 * responder's public key can compute it, so it only filters noise and foreign traffic cheaply
 * before any Curve25519 work; it proves nothing about the sender.
 */
import { timingSafeEqual } from 'node:crypto';
import { hash, mac } from './blake2.js';
import { INITIATION_MAC1_OFFSET, INITIATION_SIZE, LABEL_MAC1, MAC_SIZE } from './constants.js';
import type { Responder } from './responder.js';

export function mac1KeyOf(responderPublicKey: Uint8Array): Buffer {
  return hash(Buffer.from(LABEL_MAC1), responderPublicKey);
}

/** mac1 of an initiation-sized message; the mac1 and mac2 fields are not covered. */
export function computeMac1(mac1Key: Uint8Array, initiation: Uint8Array): Buffer {
  return mac(mac1Key, initiation.subarray(0, INITIATION_MAC1_OFFSET));
}

/** Constant-time check; false for anything that is not initiation-sized. */
export function checkMac1(responder: Responder, msg: Buffer): boolean {
  if (msg.length !== INITIATION_SIZE) return false;
  const expected = computeMac1(responder.mac1Key, msg);
  const received = msg.subarray(INITIATION_MAC1_OFFSET, INITIATION_MAC1_OFFSET + MAC_SIZE);
  return timingSafeEqual(expected, received);
}
