/**
 * Keyed BLAKE2s with a 16-byte digest (RFC 7693), specialised for checking mac1 on every
 * captured initiation: the key block is compressed once per key, so each message costs only
 * its own blocks (two for mac1's 116 bytes), and checking allocates nothing. The general MAC
 * in blake2.ts stays the reference the tests compare this with.
 */

/** RFC 7693 §2.6: the SHA-256 initial values. */
const IV = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);
/** RFC 7693 §2.7: message word schedule for the ten rounds. */
const SIGMA = Uint8Array.from([
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
  11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
  7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
  9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
  2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
  12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
  13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
  6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
  10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
]);
const BLOCK = 64;
const DIGEST = 16;
const KEY_MAX = 32;

// Scratch space shared by every call: JavaScript runs one compression at a time.
const m = new Int32Array(16);
const h = new Uint32Array(8);
const padded = new Uint8Array(BLOCK);

/**
 * RFC 7693 §3.2, F: compresses the 64 bytes of `block` at `offset` into `h`. The working
 * vector lives in sixteen locals (int32, `| 0` keeps every sum in 32 bits) and G (§3.1, with
 * BLAKE2s's rotations 16, 12, 8, 7) is written out: this runs twice for every captured packet.
 */
function compress(block: Uint8Array, offset: number, counter: number, last: boolean): void {
  for (let i = 0; i < 16; i++) {
    const at = offset + i * 4;
    m[i] = block[at]! | (block[at + 1]! << 8) | (block[at + 2]! << 16) | (block[at + 3]! << 24);
  }
  let v0 = h[0]! | 0, v1 = h[1]! | 0, v2 = h[2]! | 0, v3 = h[3]! | 0;
  let v4 = h[4]! | 0, v5 = h[5]! | 0, v6 = h[6]! | 0, v7 = h[7]! | 0;
  let v8 = IV[0]! | 0, v9 = IV[1]! | 0, v10 = IV[2]! | 0, v11 = IV[3]! | 0;
  // The byte counter's high word stays 0: messages here are short.
  let v12 = (IV[4]! ^ counter) | 0, v13 = IV[5]! | 0, v14 = (last ? ~IV[6]! : IV[6]!) | 0, v15 = IV[7]! | 0;
  for (let round = 0; round < 10; round++) {
    const s = round * 16;
    // G(0, 4, 8, 12)
    v0 = (v0 + v4 + m[SIGMA[s]!]!) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16);
    v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
    v0 = (v0 + v4 + m[SIGMA[s + 1]!]!) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24);
    v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
    // G(1, 5, 9, 13)
    v1 = (v1 + v5 + m[SIGMA[s + 2]!]!) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16);
    v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
    v1 = (v1 + v5 + m[SIGMA[s + 3]!]!) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24);
    v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
    // G(2, 6, 10, 14)
    v2 = (v2 + v6 + m[SIGMA[s + 4]!]!) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16);
    v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
    v2 = (v2 + v6 + m[SIGMA[s + 5]!]!) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24);
    v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
    // G(3, 7, 11, 15)
    v3 = (v3 + v7 + m[SIGMA[s + 6]!]!) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16);
    v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
    v3 = (v3 + v7 + m[SIGMA[s + 7]!]!) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24);
    v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
    // G(0, 5, 10, 15)
    v0 = (v0 + v5 + m[SIGMA[s + 8]!]!) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16);
    v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
    v0 = (v0 + v5 + m[SIGMA[s + 9]!]!) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24);
    v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
    // G(1, 6, 11, 12)
    v1 = (v1 + v6 + m[SIGMA[s + 10]!]!) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16);
    v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
    v1 = (v1 + v6 + m[SIGMA[s + 11]!]!) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24);
    v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
    // G(2, 7, 8, 13)
    v2 = (v2 + v7 + m[SIGMA[s + 12]!]!) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16);
    v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
    v2 = (v2 + v7 + m[SIGMA[s + 13]!]!) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24);
    v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
    // G(3, 4, 9, 14)
    v3 = (v3 + v4 + m[SIGMA[s + 14]!]!) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16);
    v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
    v3 = (v3 + v4 + m[SIGMA[s + 15]!]!) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24);
    v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  }
  h[0] = h[0]! ^ v0 ^ v8;
  h[1] = h[1]! ^ v1 ^ v9;
  h[2] = h[2]! ^ v2 ^ v10;
  h[3] = h[3]! ^ v3 ^ v11;
  h[4] = h[4]! ^ v4 ^ v12;
  h[5] = h[5]! ^ v5 ^ v13;
  h[6] = h[6]! ^ v6 ^ v14;
  h[7] = h[7]! ^ v7 ^ v15;
}

/** A BLAKE2s key ready for MAC(key, ·): the state after its key block. */
export class Mac16Key {
  private readonly initial = new Uint32Array(8);
  private readonly keyBlock = new Uint8Array(BLOCK);
  private readonly keyed = new Uint32Array(8);

  constructor(key: Uint8Array) {
    if (key.length === 0 || key.length > KEY_MAX) throw new RangeError('BLAKE2s keys are 1-32 bytes');
    this.initial.set(IV);
    this.initial[0] = this.initial[0]! ^ (0x01010000 | (key.length << 8) | DIGEST); // RFC 7693 §2.5 parameter block
    this.keyBlock.set(key);
    h.set(this.initial);
    compress(this.keyBlock, 0, BLOCK, false);
    this.keyed.set(h);
  }

  /** Leaves MAC(key, input[start, end)) in h. */
  private run(input: Uint8Array, start: number, end: number): void {
    if (end <= start) {
      // No message: the key block is the last block.
      h.set(this.initial);
      compress(this.keyBlock, 0, BLOCK, true);
      return;
    }
    h.set(this.keyed);
    let at = start;
    let counter = BLOCK; // the key block
    // Every full block but the last is compressed as is; the last one is padded and final.
    while (end - at > BLOCK) {
      counter += BLOCK;
      compress(input, at, counter, false);
      at += BLOCK;
    }
    counter += end - at;
    padded.fill(0);
    padded.set(input.subarray(at, end));
    compress(padded, 0, counter, true);
  }

  /** MAC(key, input) as 16 new bytes. */
  mac(input: Uint8Array): Buffer {
    this.run(input, 0, input.length);
    const out = Buffer.alloc(DIGEST);
    for (let i = 0; i < DIGEST / 4; i++) out.writeUInt32LE(h[i]!, i * 4);
    return out;
  }

  /**
   * True if the 16 bytes at `macOffset` of `msg` are MAC(key, msg[start, end)). Allocates
   * nothing; every word is compared whatever the others hold (no early exit to time).
   */
  verify(msg: Uint8Array, start: number, end: number, macOffset: number): boolean {
    if (msg.length < macOffset + DIGEST || end > msg.length || start < 0) return false;
    this.run(msg, start, end);
    let diff = 0;
    for (let i = 0; i < DIGEST / 4; i++) {
      const at = macOffset + i * 4;
      const word = msg[at]! | (msg[at + 1]! << 8) | (msg[at + 2]! << 16) | (msg[at + 3]! << 24);
      diff |= (word ^ h[i]!) >>> 0;
    }
    return diff === 0;
  }
}
