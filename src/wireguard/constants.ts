/**
 * WireGuard protocol constants, named once (WireGuard paper §5.4; wireguard-go
 * device/noise-protocol.go and device/cookie.go).
 */

/** Noise protocol name: initial chaining key is HASH of this (paper §5.4.2). */
export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
/** Mixed into the initial hash so WireGuard handshakes never match another Noise protocol. */
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
/** mac1 key = HASH(LABEL_MAC1 || responder static public key) (paper §5.4.4). */
export const LABEL_MAC1 = 'mac1----';

/**
 * Message type byte; the three bytes after it are reserved and must be zero (paper §5.4.2).
 * Type 3, the cookie reply, is never looked at here (R2 sends it, and only under load).
 */
export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_TRANSPORT = 4;

export const KEY_SIZE = 32;
export const MAC_SIZE = 16;
export const AEAD_TAG_SIZE = 16;
export const TIMESTAMP_SIZE = 12;

/** Handshake initiation layout: 148 bytes, little-endian sender index (paper §5.4.2). */
export const INITIATION_SIZE = 148;
export const INITIATION_TYPE_OFFSET = 0;
export const INITIATION_RESERVED_OFFSET = 1;
export const INITIATION_RESERVED_SIZE = 3;
export const INITIATION_SENDER_OFFSET = 4;
export const INITIATION_EPHEMERAL_OFFSET = 8;
export const INITIATION_EPHEMERAL_SIZE = KEY_SIZE;
export const INITIATION_STATIC_OFFSET = 40;
export const INITIATION_STATIC_SIZE = KEY_SIZE + AEAD_TAG_SIZE;
export const INITIATION_TIMESTAMP_OFFSET = 88;
export const INITIATION_TIMESTAMP_SIZE = TIMESTAMP_SIZE + AEAD_TAG_SIZE;
/** mac1 covers every byte before it (paper §5.4.4). */
export const INITIATION_MAC1_OFFSET = 116;
/** mac2 covers every byte before it, mac1 included; only checked under load (paper §5.4.4). */
export const INITIATION_MAC2_OFFSET = 132;

/**
 * Handshake response layout: 92 bytes; sender is the responder's new index, receiver the
 * initiator's (paper §5.4.3). mac1 covers the 60 bytes before it, keyed with the *initiator's*
 * static public key.
 */
export const RESPONSE_SIZE = 92;
export const RESPONSE_SENDER_OFFSET = 4;
export const RESPONSE_RECEIVER_OFFSET = 8;
export const RESPONSE_MAC1_OFFSET = 60;

/**
 * Transport data: type, receiver index (the *receiving* side's index), 8-byte counter, then the
 * encrypted packet with its 16-byte tag; a keepalive carries an empty packet (paper §5.4.6).
 */
export const TRANSPORT_RECEIVER_OFFSET = 4;
export const TRANSPORT_HEADER_SIZE = 16;
export const TRANSPORT_MIN_SIZE = TRANSPORT_HEADER_SIZE + AEAD_TAG_SIZE;

/**
 * Timers (paper §6.1, wireguard-go device/constants.go), in milliseconds; every wait derived
 * from them says so where it is defined.
 */
/** An initiator that got no response retries after this (with a new sender index). */
export const REKEY_TIMEOUT_MS = 5_000;
/** A peer that sent data and heard nothing back for this long starts a new handshake (after REKEY_TIMEOUT more). */
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** No session key is used for longer than this after its handshake: its index dies with it. */
export const REJECT_AFTER_TIME_MS = 180_000;
