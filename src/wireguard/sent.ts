/**
 * R2's own handshake messages, as the capture sees them leave the listen port: each one names
 * a session index R2 just chose, and which peer it is for.
 *
 * * A response (type 2) carries R2's new index as sender; its receiver is the initiator's index.
 * * An initiation R2 sends (type 1) carries R2's new index as sender.
 *
 * Both are mac1-keyed with the receiving peer's static public key (paper §5.4.4), so the peer
 * is the one whose mac1 key fits. A response can also be matched to the initiation it answers
 * (its receiver is that initiation's sender), which is tried first as a hint.
 */
import { fail, ok, type Result } from '../common/result.js';
import {
  INITIATION_MAC1_OFFSET,
  INITIATION_SENDER_OFFSET,
  INITIATION_SIZE,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  RESPONSE_MAC1_OFFSET,
  RESPONSE_RECEIVER_OFFSET,
  RESPONSE_SENDER_OFFSET,
  RESPONSE_SIZE,
} from './constants.js';
import { hasValidMac1 } from './mac1.js';

export interface PeerMac1Key {
  /** the peer's public key, base64 */
  readonly peer: string;
  /** HASH(LABEL_MAC1 || the peer's public key) */
  readonly mac1Key: Buffer;
}

export interface SentHandshake {
  readonly kind: 'initiation' | 'response';
  /** the index R2 chose for the session, u32 */
  readonly index: number;
  readonly peer: string;
}

export type SentReason = 'not-handshake' | 'unknown-receiver';

function headerIs(msg: Buffer, type: number, size: number): boolean {
  return msg.length === size && msg[0] === type && msg[1] === 0 && msg[2] === 0 && msg[3] === 0;
}

/** The initiator index a response answers, or undefined if `msg` is not a response. */
export function responseReceiver(msg: Buffer): number | undefined {
  return headerIs(msg, MESSAGE_RESPONSE, RESPONSE_SIZE) ? msg.readUInt32LE(RESPONSE_RECEIVER_OFFSET) : undefined;
}

/**
 * Names the peer and index of a handshake message R2 sent. `hint` is the peer whose initiation
 * this may answer; it is only tried first, never trusted. Never throws.
 */
export function identifySent(msg: Buffer, peers: Iterable<PeerMac1Key>, hint?: PeerMac1Key): Result<SentHandshake, SentReason> {
  let kind: SentHandshake['kind'];
  let mac1Offset: number;
  let index: number;
  if (headerIs(msg, MESSAGE_RESPONSE, RESPONSE_SIZE)) {
    kind = 'response';
    mac1Offset = RESPONSE_MAC1_OFFSET;
    index = msg.readUInt32LE(RESPONSE_SENDER_OFFSET);
  } else if (headerIs(msg, MESSAGE_INITIATION, INITIATION_SIZE)) {
    kind = 'initiation';
    mac1Offset = INITIATION_MAC1_OFFSET;
    index = msg.readUInt32LE(INITIATION_SENDER_OFFSET);
  } else {
    return fail('not-handshake');
  }
  if (hint !== undefined && hasValidMac1(hint.mac1Key, msg, mac1Offset)) return ok({ kind, index, peer: hint.peer });
  for (const candidate of peers) {
    if (candidate === hint) continue;
    if (hasValidMac1(candidate.mac1Key, msg, mac1Offset)) return ok({ kind, index, peer: candidate.peer });
  }
  return fail('unknown-receiver');
}
