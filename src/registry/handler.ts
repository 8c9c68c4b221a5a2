/**
 * One datagram in, at most one answer out, in the order of what it costs to decide:
 * the source (a peer's own tunnel address, by the allowed IPs `wg show` last said) → the
 * budget (the peer's bucket and the global one) → size → header (a query, opcode QUERY, one
 * question) → dns-packet's decode → class and type → the records.
 *
 * What is not a query we can read from a peer is ignored: never answered, only counted. A
 * query from a peer that asks for what we do not serve is answered with an error code
 * (FORMERR, NOTIMP, REFUSED, BADVERS), and counted as refused by its reason. Never throws.
 */
import type { Datagram } from '../net/bound-udp.js';
import type { AllowedIps } from './allowed-ips.js';
import type { Budget } from './budget.js';
import type { RegistryCounters } from './counters.js';
import type { Directory, Lookup } from './records.js';
import {
  BADVERS,
  encodeResponse,
  isResponse,
  MAX_QUERY_BYTES,
  opcodeOf,
  RCODE,
  readHeader,
  readQuery,
  recursionDesired,
  udpLimitOf,
  type Query,
  type QueryHeader,
} from './wire.js';

/** What the registry serves at one moment: the records, and whose tunnel addresses are whose. */
export interface RegistryState {
  readonly directory: Directory;
  /** the owner is the peer's public key */
  readonly allowedIps: AllowedIps<string>;
}

/** Question types that ask for more than one name's records, or a transfer: not served. */
const META_TYPES = new Set(['ANY', 'AXFR', 'IXFR', 'OPT', 'TSIG']);

const EMPTY: Lookup = { rcode: 'NOERROR', answers: [], authorities: [], additionals: [] };

export class RegistryHandler {
  constructor(
    private readonly deps: {
      readonly state: () => RegistryState;
      readonly budget: Budget;
      readonly counters: RegistryCounters;
    },
  ) {}

  handle(datagram: Datagram): Buffer | undefined {
    try {
      return this.decide(datagram);
    } catch (error) {
      // a fault of ours, not of the datagram: counted and said (rate-limited), never thrown
      this.deps.counters.ignore('internal', { error: (error as Error).message });
      return undefined;
    }
  }

  private decide(datagram: Datagram): Buffer | undefined {
    const { counters, budget } = this.deps;
    const state = this.deps.state();
    const peer = state.allowedIps.owner(datagram.address);
    if (peer === undefined) return counters.ignore('not-peer', { source: datagram.address });
    const verdict = budget.take(peer);
    if (verdict !== 'ok') return counters.ignore(verdict, { peer });
    if (datagram.truncated || datagram.data.length > MAX_QUERY_BYTES) return counters.ignore('oversized', { peer });
    const header = readHeader(datagram.data);
    if (header === undefined) return counters.ignore('malformed', { peer });
    // never answer an answer: two servers would answer each other forever
    if (isResponse(header)) return counters.ignore('not-query', { peer });
    if (opcodeOf(header) !== 0) return this.refuse('opcode', header, undefined, RCODE.NOTIMP);
    if (header.qdcount !== 1) return this.refuse('questions', header, undefined, RCODE.FORMERR);
    const read = readQuery(datagram.data, header);
    if (!read.ok) return counters.ignore(read.reason, { peer });
    const query = read.value;
    if (query.edns !== undefined && query.edns.version !== 0) return this.refuse('edns-version', header, query, BADVERS);
    if (query.class !== 'IN') return this.refuse('class', header, query, RCODE.REFUSED);
    if (META_TYPES.has(query.type)) return this.refuse('any', header, query, RCODE.REFUSED);
    const lookup = state.directory.lookup(query.name, query.type);
    if (lookup.rcode === 'REFUSED') return this.refuse('out-of-zone', header, query, RCODE.REFUSED);
    counters.answer(lookup.rcode);
    return this.reply(header, query, RCODE[lookup.rcode], lookup);
  }

  private refuse(reason: string, header: QueryHeader, query: Query | undefined, rcode: number): Buffer {
    this.deps.counters.refuse(reason);
    return this.reply(header, query, rcode, EMPTY);
  }

  private reply(header: QueryHeader, query: Query | undefined, rcode: number, lookup: Lookup): Buffer {
    return encodeResponse({
      id: header.id,
      recursionDesired: recursionDesired(header),
      rcode,
      questionBytes: query?.questionBytes,
      answers: lookup.answers,
      authorities: lookup.authorities,
      additionals: lookup.additionals,
      edns: query?.edns !== undefined,
      limit: udpLimitOf(query),
    });
  }
}
