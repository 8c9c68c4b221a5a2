/**
 * Fuzz harness for the verifier (as wireguard-tools fuzzes its parsers): random bytes and
 * mutated genuine initiations never throw and never authenticate.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  INITIATION_EPHEMERAL_OFFSET,
  INITIATION_MAC1_OFFSET,
  INITIATION_MAC2_OFFSET,
  INITIATION_SENDER_OFFSET,
  INITIATION_SIZE,
} from '../src/wireguard/constants.js';
import { consumeInitiation } from '../src/wireguard/initiation.js';
import { publicKeyOf, Secret } from '../src/wireguard/keys.js';
import { createResponder } from '../src/wireguard/responder.js';
import { timestampFromDate } from '../src/wireguard/tai64n.js';
import { createInitiation, writeMac1 } from '../scripts/lab/initiator.js';

const SETTINGS = { seed: 42, numRuns: 2000 };

// Fixed keys and fields, so a failing seed reproduces byte for byte.
const keyOf = (fill: number): Secret => new Secret(Buffer.alloc(32, fill));
const responder = createResponder(keyOf(0x11));
const initiatorKey = keyOf(0x22);
const initiatorPublic = publicKeyOf(initiatorKey);
const original = createInitiation({
  initiatorPrivateKey: initiatorKey,
  responderPublicKey: responder.publicKey,
  ephemeralPrivateKey: keyOf(0x33),
  timestamp: timestampFromDate(new Date('2030-01-01T00:00:00Z')),
  sender: 0x01020304,
});

const mutation = fc.array(
  fc.record({ index: fc.nat({ max: INITIATION_SIZE - 1 }), mask: fc.integer({ min: 0, max: 255 }) }),
  { minLength: 1, maxLength: 6 },
);

function mutate(edits: ReadonlyArray<{ index: number; mask: number }>): Buffer {
  const msg = Buffer.from(original);
  for (const { index, mask } of edits) msg[index] = (msg[index] ?? 0) ^ mask;
  return msg;
}

/** True when the sender-controlled bytes the verifier relies on are those of the original. */
function unchangedBefore(msg: Buffer, end: number): boolean {
  return msg.subarray(0, end).equals(original.subarray(0, end));
}

test('random bytes of any length never throw and never authenticate', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => !consumeInitiation(responder, Buffer.from(bytes)).ok),
    SETTINGS,
  );
  t.pass();
});

test('random initiation-shaped bytes with a correct mac1 never authenticate', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: INITIATION_SIZE, maxLength: INITIATION_SIZE }), (bytes) => {
      const msg = Buffer.from(bytes);
      msg.writeUInt32LE(1, 0);
      writeMac1(msg, responder.publicKey);
      const result = consumeInitiation(responder, msg);
      return !result.ok && (result.reason === 'decrypt-failed' || result.reason === 'bad-ephemeral');
    }),
    SETTINGS,
  );
  t.pass();
});

test('mutated genuine initiations authenticate only when mac1 and everything before it are intact', (t) => {
  fc.assert(
    fc.property(mutation, (edits) => {
      const msg = mutate(edits);
      const result = consumeInitiation(responder, msg);
      // mac2 is not checked (paper §5.4.7), so only bytes before it count as a mutation.
      if (!unchangedBefore(msg, INITIATION_MAC2_OFFSET)) return !result.ok;
      return result.ok && result.value.staticKey.equals(initiatorPublic);
    }),
    SETTINGS,
  );
  t.pass();
});

test('mutated genuine initiations with mac1 forged again authenticate only with intact Noise fields', (t) => {
  fc.assert(
    fc.property(mutation, (edits) => {
      const msg = writeMac1(mutate(edits), responder.publicKey);
      const result = consumeInitiation(responder, msg);
      // The sender index is outside the Noise transcript (paper §5.4.2): only mac1 covers it.
      const noiseIntact =
        unchangedBefore(msg, INITIATION_SENDER_OFFSET) &&
        msg.subarray(INITIATION_EPHEMERAL_OFFSET, INITIATION_MAC1_OFFSET).equals(
          original.subarray(INITIATION_EPHEMERAL_OFFSET, INITIATION_MAC1_OFFSET),
        );
      if (noiseIntact) return result.ok && result.value.staticKey.equals(initiatorPublic);
      return !result.ok && result.reason !== 'bad-mac1';
    }),
    SETTINGS,
  );
  t.pass();
});

test('genuine initiations cut or padded to any other length are the wrong size', (t) => {
  fc.assert(
    fc.property(fc.nat({ max: 2 * INITIATION_SIZE }), (length) => {
      fc.pre(length !== INITIATION_SIZE);
      const msg = Buffer.alloc(length);
      original.copy(msg);
      const result = consumeInitiation(responder, msg);
      return !result.ok && result.reason === 'bad-size';
    }),
    SETTINGS,
  );
  t.pass();
});
