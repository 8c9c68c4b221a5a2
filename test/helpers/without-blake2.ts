/**
 * Loaded with `node --import` before anything else: node:crypto's createHash and createHmac then
 * refuse BLAKE2 as they do on a Node built against an OpenSSL without it (OpenWrt's), so a test
 * can run the real modules as they run there.
 */
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

const refuse = <F extends (algorithm: string, ...rest: never[]) => unknown>(real: F): F =>
  ((algorithm: string, ...rest: never[]) => {
    if (algorithm.toLowerCase().startsWith('blake2')) throw new Error('Digest method not supported');
    return real(algorithm, ...rest);
  }) as F;

crypto.createHash = refuse(crypto.createHash);
crypto.createHmac = refuse(crypto.createHmac);
syncBuiltinESMExports();
