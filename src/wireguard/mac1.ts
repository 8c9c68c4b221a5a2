/**
 * mac1 (paper §5.4.4): MAC(HASH(LABEL_MAC1 || Spub_m'), bytes before mac1), keyed with the
 * *receiver's* static public key. Anyone who knows that key can compute it, so it only filters
 * noise and foreign traffic cheaply before any Curve25519 work; it proves nothing about the
 * sender. For the handshake messages R2 itself sends, the key that fits names the peer they
 * were sent to.
 */
import { hash, mac } from './blake2.js';
import { Mac16Key } from './blake2s-mac.js';
import { INITIATION_MAC1_OFFSET, INITIATION_SIZE, LABEL_MAC1, MAC_SIZE } from './constants.js';
import type { Responder } from './responder.js';

export function mac1KeyOf(receiverPublicKey: Uint8Array): Buffer {
  return hash(Buffer.from(LABEL_MAC1), receiverPublicKey);
}

/** mac1 of an initiation-sized message; the mac1 and mac2 fields are not covered. */
export function computeMac1(mac1Key: Uint8Array, initiation: Uint8Array): Buffer {
  return mac(mac1Key, initiation.subarray(0, INITIATION_MAC1_OFFSET));
}

/** mac1 keys with their key block compressed, one per responder key. */
const prepared = new WeakMap<Uint8Array, Mac16Key>();

function preparedKey(mac1Key: Uint8Array): Mac16Key {
  let key = prepared.get(mac1Key);
  if (key === undefined) {
    key = new Mac16Key(mac1Key);
    prepared.set(mac1Key, key);
  }
  return key;
}

/**
 * Constant-time check, allocating nothing (it runs for every captured packet); false for
 * anything that is not initiation-sized.
 */
export function checkMac1(responder: Responder, msg: Buffer): boolean {
  if (msg.length !== INITIATION_SIZE) return false;
  return checkMac1At(responder, msg, 0);
}

/** checkMac1 on the initiation-sized message at `offset` of a larger buffer (a captured frame). */
export function checkMac1At(responder: Responder, buf: Buffer, offset: number): boolean {
  if (offset < 0 || buf.length < offset + INITIATION_SIZE) return false;
  return preparedKey(responder.mac1Key).verify(buf, offset, offset + INITIATION_MAC1_OFFSET, offset + INITIATION_MAC1_OFFSET);
}

/** Constant-time check of the mac1 field at `mac1Offset`, which covers every byte before it. */
export function hasValidMac1(mac1Key: Uint8Array, msg: Buffer, mac1Offset: number): boolean {
  if (msg.length < mac1Offset + MAC_SIZE) return false;
  return preparedKey(mac1Key).verify(msg, 0, mac1Offset, mac1Offset);
}
