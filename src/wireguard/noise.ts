/**
 * Noise IK handshake state shared by both sides (paper §5.4.2): the chaining key Ck and the
 * handshake hash H, both starting from the protocol name and the responder's static key.
 */
import { CONSTRUCTION, IDENTIFIER } from './constants.js';
import { hash } from './blake2.js';

export interface HandshakeState {
  readonly chainingKey: Buffer;
  readonly handshakeHash: Buffer;
}

// Ci = HASH(CONSTRUCTION); Hi = HASH(Ci || IDENTIFIER): the same for every WireGuard peer.
const INITIAL_CHAINING_KEY = hash(Buffer.from(CONSTRUCTION));
const INITIAL_HASH = hash(INITIAL_CHAINING_KEY, Buffer.from(IDENTIFIER));

/** Ci and Hi = HASH(Hi || Spub_r): the first two steps, which depend only on the responder. */
export function initialState(responderPublicKey: Uint8Array): HandshakeState {
  return {
    chainingKey: Buffer.from(INITIAL_CHAINING_KEY),
    handshakeHash: hash(INITIAL_HASH, responderPublicKey),
  };
}
