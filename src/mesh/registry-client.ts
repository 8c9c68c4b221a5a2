/**
 * Asks the registry (wgsd's DNS-SD layout, served by reconfig-wg on the hub through the tunnel)
 * which peers it knows: one PTR query for the list, one SRV query per peer for its endpoint and
 * allowed IPs. DNS over UDP, one fresh socket (and source port) per query, a random query id,
 * a timeout and a bounded number of tries. An answer counts only if it comes from the
 * registry's address and port and names our query; everything else that arrives is counted
 * by reason and dropped. records.ts checks the contents.
 */
import { randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { answerId, decodePtrAnswer, decodeSrvAnswer, encodeQuery, instanceName, MAX_ANSWER_BYTES, serviceName, type RecordReason, type RegistryPeer } from './records.js';

export interface RegistryAddress {
  readonly address: string;
  readonly port: number;
}

export interface RegistryClientOptions {
  readonly registry: RegistryAddress;
  readonly zone: string;
  /** peers taken from one listing at most */
  readonly maxPeers: number;
  /** how long one try waits for its answer */
  readonly timeoutMs: number;
  /** tries per query */
  readonly tries: number;
}

export type ListingReason = RecordReason | 'timeout' | 'foreign-source' | 'socket-error';

export interface Listing {
  readonly peers: readonly RegistryPeer[];
  /** what was refused or missing in this listing, by reason (hostile or malformed answers too) */
  readonly ignored: Readonly<Partial<Record<ListingReason, number>>>;
  /** peers beyond maxPeers, left out */
  readonly beyondLimit: number;
}

/** A failure of the listing as a whole: the PTR query got no usable answer. */
export class RegistryUnreachable extends Error {
  constructor(readonly reason: ListingReason) {
    super(`the registry gave no usable answer (${reason})`);
  }
}

type Decode<T> = (bytes: Buffer, id: number) => { ok: true; value: T } | { ok: false; reason: RecordReason };

/** SRV queries in flight at once: a listing of many peers does not flood the tunnel. */
const SRV_PARALLEL = 4;

export class RegistryClient {
  constructor(private readonly options: RegistryClientOptions) {}

  async list(): Promise<Listing> {
    const ignored: Partial<Record<ListingReason, number>> = {};
    const count = (reason: ListingReason): void => {
      ignored[reason] = (ignored[reason] ?? 0) + 1;
    };
    const { zone, maxPeers } = this.options;
    const ptr = await this.query(serviceName(zone), 'PTR', (bytes, id) => decodePtrAnswer(bytes, id, zone, maxPeers), count);
    if (!ptr.ok) throw new RegistryUnreachable(ptr.reason);
    for (let i = 0; i < ptr.value.bad; i++) count('bad-instance-name');
    const keys = [...ptr.value.keys];
    const peers: RegistryPeer[] = [];
    const worker = async (): Promise<void> => {
      for (let key = keys.shift(); key !== undefined; key = keys.shift()) {
        const answer = await this.query(instanceName(key, zone), 'SRV', (bytes, id) => decodeSrvAnswer(bytes, id, key, zone), count);
        if (answer.ok) peers.push(answer.value);
        else count(answer.reason);
      }
    };
    await Promise.all(Array.from({ length: SRV_PARALLEL }, worker));
    return { peers, ignored, beyondLimit: ptr.value.beyondLimit };
  }

  /**
   * One query, tried up to `tries` times. An answer that decodes badly is counted and the try
   * goes on waiting (a forged answer must not hide the real one); the last reason is returned
   * when no try succeeds.
   */
  private async query<T>(name: string, type: 'PTR' | 'SRV', decode: Decode<T>, count: (reason: ListingReason) => void): Promise<{ ok: true; value: T } | { ok: false; reason: ListingReason }> {
    let last: ListingReason = 'timeout';
    for (let attempt = 0; attempt < this.options.tries; attempt++) {
      const result = await this.tryOnce(name, type, decode, count);
      if (result.ok) return result;
      last = result.reason;
      // a well-formed answer that says something we refuse will say it again
      if (result.reason !== 'timeout' && result.reason !== 'socket-error') return result;
    }
    return { ok: false, reason: last };
  }

  private tryOnce<T>(name: string, type: 'PTR' | 'SRV', decode: Decode<T>, count: (reason: ListingReason) => void): Promise<{ ok: true; value: T } | { ok: false; reason: ListingReason }> {
    const { address, port } = this.options.registry;
    const id = randomInt(0, 65_536);
    const query = encodeQuery(id, name, type);
    return new Promise((resolve) => {
      let socket: Socket;
      try {
        socket = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', recvBufferSize: 64 * 1024 });
      } catch {
        resolve({ ok: false, reason: 'socket-error' });
        return;
      }
      const finish = (result: { ok: true; value: T } | { ok: false; reason: ListingReason }): void => {
        clearTimeout(timer);
        socket.removeAllListeners('message');
        socket.close();
        resolve(result);
      };
      const timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), this.options.timeoutMs);
      socket.on('error', () => finish({ ok: false, reason: 'socket-error' }));
      socket.on('message', (bytes, from) => {
        if (from.address !== address || from.port !== port) {
          count('foreign-source');
          return;
        }
        if (bytes.length > MAX_ANSWER_BYTES || answerId(bytes) !== id) {
          count(bytes.length > MAX_ANSWER_BYTES ? 'undecodable' : 'wrong-id');
          return;
        }
        const decoded = decode(bytes, id);
        if (decoded.ok) finish(decoded);
        else if (decoded.reason === 'wrong-question' || decoded.reason === 'undecodable' || decoded.reason === 'not-a-response') {
          // not the answer to this query: keep waiting for it
          count(decoded.reason);
        } else {
          // the registry's own answer to this query, refused
          finish({ ok: false, reason: decoded.reason });
        }
      });
      socket.send(query, port, address, (error) => {
        if (error) finish({ ok: false, reason: 'socket-error' });
      });
    });
  }
}
