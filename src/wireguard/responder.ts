/**
 * Everything about the interface's own static key that every initiation needs, computed once:
 * the public key, the mac1 key, and the Noise state after mixing in Spub_r (paper §5.4.2).
 * The private key stays inside its Secret, so a Responder can be logged without leaking it.
 */
import { publicKeyOf, type Secret } from './keys.js';
import { mac1KeyOf } from './mac1.js';
import { initialState, type HandshakeState } from './noise.js';

export interface Responder extends HandshakeState {
  readonly privateKey: Secret;
  readonly publicKey: Buffer;
  readonly mac1Key: Buffer;
}

export function createResponder(privateKey: Secret): Responder {
  const publicKey = publicKeyOf(privateKey);
  return Object.freeze({
    privateKey,
    publicKey,
    mac1Key: mac1KeyOf(publicKey),
    ...initialState(publicKey),
  });
}
