/**
 * DNS messages on the wire for the registry: a query read (its size and header checked by us,
 * then decoded by dns-packet inside a try/catch), and an answer written within the client's
 * UDP payload limit.
 *
 * dns-packet encodes names without compression, and an SRV answer with its A and TXT records
 * would then pass 512 bytes (wgsd-client asks without EDNS, so 512 is its limit). So each
 * record is encoded by dns-packet and its owner name (and a PTR's target, RFC 1035 §4.1.4)
 * is then written compressed here; an SRV target never is (RFC 2782). Records are added whole:
 * an answer or authority record that does not fit sets TC (RFC 1035 §4.1.1) and ends the
 * message; an additional record that does not fit is left out without TC (RFC 2181 §9).
 */
import dnsPacket, { type Answer, type DecodedPacket, type OptAnswer } from 'dns-packet';
import { fail, ok, type Result } from '../common/result.js';
import type { Rr } from './records.js';

/** A query longer than this is not one of ours to read (a question is at most 4 + 255 bytes). */
export const MAX_QUERY_BYTES = 512;
export const HEADER_BYTES = 12;
/** Without EDNS a UDP answer is at most 512 bytes (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_LIMIT = 512;
/** With EDNS, what a client says it takes, up to this (the tunnel carries fragments fine). */
export const MAX_UDP_LIMIT = 4096;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const OPT_TYPE = 41;
const OPT_BYTES = 11;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** RFC 6891 §9: an EDNS version we do not speak (the upper 8 bits of 16 live in OPT). */
export const BADVERS = 16;

export interface QueryHeader {
  readonly id: number;
  readonly flags: number;
  readonly qdcount: number;
}

export interface Query {
  readonly header: QueryHeader;
  /** the question's bytes as sent (name, type, class), echoed in the answer */
  readonly questionBytes: Buffer;
  readonly name: string;
  /** as dns-packet names them: 'SRV', 'ANY', 'UNKNOWN_99' */
  readonly type: string;
  readonly class: string;
  /** undefined: no OPT record (no EDNS) */
  readonly edns: { readonly udpPayloadSize: number; readonly version: number } | undefined;
}

export function readHeader(data: Buffer): QueryHeader | undefined {
  if (data.length < HEADER_BYTES) return undefined;
  return { id: data.readUInt16BE(0), flags: data.readUInt16BE(2), qdcount: data.readUInt16BE(4) };
}

export const isResponse = (header: QueryHeader): boolean => (header.flags & FLAG_QR) !== 0;
export const opcodeOf = (header: QueryHeader): number => (header.flags >> 11) & 0xf;

/**
 * The extent of the first question: its name written out in labels (a query has nothing
 * before it to point back to, so a compression pointer here is malformed), then type and class.
 */
function questionEnd(data: Buffer): number | undefined {
  let offset = HEADER_BYTES;
  for (;;) {
    const length = data[offset];
    if (length === undefined || length > 63) return undefined;
    offset += 1 + length;
    if (length === 0) break;
    if (offset - HEADER_BYTES > 255) return undefined;
  }
  return offset + 4 <= data.length ? offset + 4 : undefined;
}

/** A query with exactly one question (the caller checked the header), decoded; never throws. */
export function readQuery(data: Buffer, header: QueryHeader): Result<Query> {
  if (data.length > MAX_QUERY_BYTES) return fail('oversized');
  const end = questionEnd(data);
  if (end === undefined) return fail('malformed');
  let decoded: DecodedPacket;
  try {
    decoded = dnsPacket.decode(data);
  } catch {
    return fail('malformed');
  }
  const question = decoded.questions?.[0];
  if (question === undefined) return fail('malformed');
  const opt = decoded.additionals?.find((rr): rr is OptAnswer => rr.type === 'OPT');
  return ok({
    header,
    questionBytes: data.subarray(HEADER_BYTES, end),
    name: question.name,
    type: question.type,
    class: String(question.class ?? 'IN'),
    edns: opt === undefined ? undefined : { udpPayloadSize: opt.udpPayloadSize, version: opt.ednsVersion },
  });
}

/** The size an answer to `query` may have: 512, or what its EDNS says within [512, MAX_UDP_LIMIT]. */
export function udpLimitOf(query: Pick<Query, 'edns'> | undefined): number {
  if (query?.edns === undefined) return CLASSIC_UDP_LIMIT;
  return Math.min(MAX_UDP_LIMIT, Math.max(CLASSIC_UDP_LIMIT, query.edns.udpPayloadSize));
}

class Overflow extends Error {}

/** Writes one message into at most `limit` bytes, names compressed against what is already written. */
class MessageWriter {
  readonly buf: Buffer;
  offset = 0;
  /** lower-case name suffix → where it was written */
  private readonly names = new Map<string, number>();
  private readonly added: string[] = [];

  constructor(readonly limit: number) {
    this.buf = Buffer.alloc(limit);
  }

  mark(): { offset: number; added: number } {
    return { offset: this.offset, added: this.added.length };
  }

  reset(mark: { offset: number; added: number }): void {
    this.offset = mark.offset;
    for (const key of this.added.splice(mark.added)) this.names.delete(key);
  }

  private room(bytes: number): void {
    if (this.offset + bytes > this.limit) throw new Overflow();
  }

  u16(value: number): void {
    this.room(2);
    this.offset = this.buf.writeUInt16BE(value, this.offset);
  }

  bytes(data: Buffer): void {
    this.room(data.length);
    this.offset += data.copy(this.buf, this.offset);
  }

  /** Remembers the names of labels written at `at` (the question, copied as sent). */
  learn(labels: readonly string[], at: number): void {
    let offset = at;
    for (let i = 0; i < labels.length; i++) {
      const key = labels.slice(i).join('.').toLowerCase();
      if (!this.names.has(key) && offset < 0x4000) {
        this.names.set(key, offset);
        this.added.push(key);
      }
      offset += 1 + Buffer.byteLength(labels[i] ?? '');
    }
  }

  /** A name, its longest known suffix replaced by a pointer (RFC 1035 §4.1.4). */
  name(name: string): void {
    const labels = name.replace(/\.$/, '').split('.').filter((label) => label.length > 0);
    for (let i = 0; i < labels.length; i++) {
      const key = labels.slice(i).join('.').toLowerCase();
      const at = this.names.get(key);
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.offset < 0x4000) {
        this.names.set(key, this.offset);
        this.added.push(key);
      }
      const label = Buffer.from(labels[i] ?? '', 'ascii');
      this.room(1 + label.length);
      this.buf[this.offset++] = label.length;
      this.bytes(label);
    }
    this.room(1);
    this.buf[this.offset++] = 0;
  }
}

/** The labels of an uncompressed name at `offset` in `data`, and where it ends. */
function labelsAt(data: Buffer, offset: number): { labels: string[]; end: number } {
  const labels: string[] = [];
  let at = offset;
  for (let length = data[at] ?? 0; length !== 0; length = data[at] ?? 0) {
    labels.push(data.toString('ascii', at + 1, at + 1 + length));
    at += 1 + length;
  }
  return { labels, end: at + 1 };
}

/** One record through dns-packet: its bytes after the owner name (type, class, TTL, rdlength, rdata). */
function recordTail(rr: Rr): Buffer {
  const packet = dnsPacket.encode({ answers: [{ ...rr, ttl: 0, class: 'IN', data: rr.type === 'TXT' ? [...rr.data] : rr.data } as Answer] });
  return packet.subarray(labelsAt(packet, HEADER_BYTES).end);
}

function writeRecord(writer: MessageWriter, rr: Rr): void {
  writer.name(rr.name);
  const tail = recordTail(rr);
  if (rr.type !== 'PTR') {
    writer.bytes(tail);
    return;
  }
  // type, class, TTL as dns-packet wrote them; the target compressed, its length after it
  writer.bytes(tail.subarray(0, 8));
  const lengthAt = writer.offset;
  writer.u16(0);
  writer.name(rr.data);
  writer.buf.writeUInt16BE(writer.offset - lengthAt - 2, lengthAt);
}

export interface Response {
  readonly id: number;
  /** the query's RD bit is copied (RFC 1035 §4.1.1) */
  readonly recursionDesired: boolean;
  /** RCODE values, or BADVERS (which needs EDNS) */
  readonly rcode: number;
  /** the question as it came (its bytes); undefined: none is echoed (FORMERR on a question we could not read) */
  readonly questionBytes: Buffer | undefined;
  readonly answers: readonly Rr[];
  readonly authorities: readonly Rr[];
  readonly additionals: readonly Rr[];
  /** answer with an OPT record (the query had one) */
  readonly edns: boolean;
  /** the answer's size limit: udpLimitOf(query) */
  readonly limit: number;
}

/** The answer's bytes, never longer than `limit` (at least 512). */
export function encodeResponse(response: Response): Buffer {
  const writer = new MessageWriter(Math.max(CLASSIC_UDP_LIMIT, response.limit));
  writer.bytes(Buffer.alloc(HEADER_BYTES));
  if (response.questionBytes !== undefined) {
    writer.learn(labelsAt(response.questionBytes, 0).labels, HEADER_BYTES);
    writer.bytes(response.questionBytes);
  }
  // room for the OPT record is kept back from the start
  const reserve = response.edns ? OPT_BYTES : 0;
  const counts = [0, 0, 0];
  let truncated = false;
  const sections = [response.answers, response.authorities, response.additionals];
  sections.forEach((records, section) => {
    for (const rr of records) {
      if (truncated) return;
      const mark = writer.mark();
      try {
        writeRecord(writer, rr);
        if (writer.offset + reserve > writer.limit) throw new Overflow();
        counts[section] = (counts[section] ?? 0) + 1;
      } catch (error) {
        if (!(error instanceof Overflow)) throw error;
        writer.reset(mark);
        if (section < 2) truncated = true;
        return;
      }
    }
  });
  if (response.edns) {
    writer.bytes(Buffer.from([0, 0, OPT_TYPE, (CLASSIC_UDP_LIMIT >> 8) & 0xff, CLASSIC_UDP_LIMIT & 0xff, (response.rcode >> 4) & 0xff, 0, 0, 0, 0, 0]));
    counts[2] = (counts[2] ?? 0) + 1;
  }
  const flags = FLAG_QR | FLAG_AA | (response.recursionDesired ? FLAG_RD : 0) | (truncated ? FLAG_TC : 0) | (response.rcode & 0xf);
  const header = writer.buf;
  header.writeUInt16BE(response.id, 0);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(response.questionBytes === undefined ? 0 : 1, 4);
  header.writeUInt16BE(counts[0] ?? 0, 6);
  header.writeUInt16BE(counts[1] ?? 0, 8);
  header.writeUInt16BE(counts[2] ?? 0, 10);
  return Buffer.from(writer.buf.subarray(0, writer.offset));
}

/** Whether the RD bit is set. */
export const recursionDesired = (header: QueryHeader): boolean => (header.flags & FLAG_RD) !== 0;
