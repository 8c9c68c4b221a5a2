/**
 * Who the registry answers and how much: the source must be inside a peer's allowed IPs (the
 * longest prefix names the peer, as WireGuard's cryptokey routing does), each peer and all of
 * them together are budgeted, and whatever is not a query we read is counted by reason, never
 * thrown. A few thousand random and mutated datagrams go through the handler (fast-check).
 */
import test from 'ava';
import fc from 'fast-check';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import pino from 'pino';
import { AllowedIps, parsePrefix, prefixContains } from '../src/registry/allowed-ips.js';
import { Budget, PEER_RATE } from '../src/registry/budget.js';
import { RegistryCounters } from '../src/registry/counters.js';
import { RegistryHandler } from '../src/registry/handler.js';
import { Directory, peerLabel } from '../src/registry/records.js';
import { Registry, type ModelPeer } from '../src/registry/server.js';
import { parseDump } from '../src/wireguard/wg.js';
import { addressBytes } from '../src/net/address.js';

const silent = pino({ level: 'silent' });
const KEY_A = 'xScVkH3fUGUv4RrJFfmcqm8rs3SEHr41km6+yffAHw4=';
const KEY_B = 'syKB97XhGnvC+kynh2KqQJPXoOoOpx/HmpMRTc+r4js=';
const PSK = 'FoRtYtWoBeSeCrEtFoRtYtWoBeSeCrEtFoRtYtWoBe0=';
const PRIVATE = 'EK2UANMY2RvhC3DCCgdg/axgIKqptzEu/ejAx4sTLWw=';

// R2's `wg show dump`, with a pre-shared key on peer A: a site peer B routes a /24, A is one host in it
const DUMP = [
  `${PRIVATE}\tVep32wLWGLiPsoAR5fRfUUqv+U9UHnxb4Z3kye24pUE=\t51820\toff`,
  `${KEY_A}\t${PSK}\t192.0.2.10:40000\t203.0.113.10/32\t1700000000\t1\t1\toff`,
  `${KEY_B}\t(none)\t[2001:db8:100::20]:41000\t203.0.113.0/24,2001:db8:20::/64\t0\t0\t0\t25`,
].join('\n');

function model(): ModelPeer[] {
  const config = parseDump('wg0', DUMP);
  if (config === undefined) throw new Error('dump');
  return [...config.peers.values()].map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint, allowedIps: p.allowedIps ?? [], latestHandshake: p.latestHandshake ?? 0 }));
}

function registry(clock = { now: 0 }): Registry {
  return new Registry({
    logger: silent,
    iface: 'wg0',
    options: { family: 4, address: '203.0.113.1', port: 5182, zone: 'wg.internal' },
    model,
    interfaces: { addresses: () => new Map([['wg0', ['203.0.113.1']]]), ifindex: () => 7 },
    openSocket: () => ({ listen: () => undefined, send: () => undefined, close: () => undefined }),
    now: () => clock.now,
  });
}

const query = (name: string, type: string, options: { id?: number; edns?: number; klass?: string } = {}): Buffer =>
  dnsPacket.encode({
    type: 'query',
    id: options.id ?? 1,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A', class: (options.klass ?? 'IN') as 'IN' }],
    additionals: options.edns === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: options.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
  });

const from = (address: string, data: Buffer, truncated = false) => ({ data, address, port: 5353, truncated });
type Decoded = DecodedPacket & { readonly rcode: string };
const decode = (reply: Buffer | undefined): Decoded => {
  if (reply === undefined) throw new Error('no reply');
  return dnsPacket.decode(reply) as Decoded;
};
const PTR = '_wireguard._udp.wg.internal';

test('a prefix holds the addresses under its length, and no others', (t) => {
  const p = parsePrefix('203.0.113.8/29');
  if (p === undefined) throw new Error('prefix');
  t.true(prefixContains(p, addressBytes(4, '203.0.113.15')!));
  t.false(prefixContains(p, addressBytes(4, '203.0.113.16')!));
  t.false(prefixContains(p, addressBytes(6, '2001:db8::1')!));
  t.true(prefixContains(parsePrefix('0.0.0.0/0')!, addressBytes(4, '198.51.100.1')!));
  t.true(prefixContains(parsePrefix('2001:db8:20::/64')!, addressBytes(6, '2001:db8:20::9')!));
  for (const bad of ['203.0.113.1', '203.0.113.1/33', '2001:db8::/129', 'x/8', '203.0.113.1/-1', '']) t.is(parsePrefix(bad), undefined, bad);
});

test('the longest allowed prefix names the peer, as cryptokey routing does', (t) => {
  const table = new AllowedIps([{ owner: 'B', allowedIps: ['203.0.113.0/24'] }, { owner: 'A', allowedIps: ['203.0.113.10/32'] }]);
  t.is(table.owner('203.0.113.10'), 'A');
  t.is(table.owner('203.0.113.11'), 'B');
  t.is(table.owner('198.51.100.10'), undefined);
  t.is(table.owner('not an address'), undefined);
});

test("a peer's own tunnel address is answered; a source outside every peer's allowed IPs is counted and ignored", (t) => {
  const r = registry();
  const answer = decode(r.handle(from('203.0.113.10', query(PTR, 'PTR'))));
  t.is(answer.rcode, 'NOERROR');
  t.deepEqual(answer.answers?.map((a) => ('data' in a ? a.data : '')).sort(), [KEY_A, KEY_B].map((k) => `${peerLabel(k)}.${PTR}`).sort());
  t.truthy(r.handle(from('203.0.113.77', query(PTR, 'PTR'))), "inside B's routed /24");
  t.truthy(r.handle(from('2001:db8:20::5', query(PTR, 'PTR'))));
  for (const stranger of ['198.51.100.10', '2001:db8:21::5', '127.0.0.1', '203.0.114.10']) t.is(r.handle(from(stranger, query(PTR, 'PTR'))), undefined, stranger);
  t.deepEqual(r.status().ignored, { 'not-peer': 4 });
  t.deepEqual(r.status().answered, { NOERROR: 3 });
});

test('never a pre-shared or private key in any answer', (t) => {
  const r = registry();
  const replies: Buffer[] = [];
  for (const key of [KEY_A, KEY_B]) for (const type of ['SRV', 'TXT', 'A', 'AAAA']) replies.push(r.handle(from('203.0.113.10', query(`${peerLabel(key)}.${PTR}`, type, { edns: 4096 })))!);
  replies.push(r.handle(from('203.0.113.10', query(PTR, 'PTR', { edns: 4096 })))!);
  const secrets = [PSK, PRIVATE].flatMap((k) => [Buffer.from(k), Buffer.from(k, 'base64'), Buffer.from(peerLabel(k))]);
  for (const reply of replies) for (const secret of secrets) t.is(reply.indexOf(secret), -1);
  const txt = decode(r.handle(from('203.0.113.10', query(`${peerLabel(KEY_A)}.${PTR}`, 'TXT'))));
  t.deepEqual(((txt.answers?.[0] as { data: Buffer[] }).data).map(String), ['txtvers=1', `pub=${KEY_A}`, 'allowed=203.0.113.10/32', 'verified=1700000000']);
});

test('each peer has its own budget: a burst, then a refill over time; another peer is not held back', (t) => {
  const clock = { now: 0 };
  const r = registry(clock);
  let answered = 0;
  for (let i = 0; i < PEER_RATE.burst + 20; i++) if (r.handle(from('203.0.113.10', query(PTR, 'PTR'))) !== undefined) answered++;
  t.is(answered, PEER_RATE.burst);
  t.is(r.status().ignored['peer-rate'], 20);
  t.truthy(r.handle(from('203.0.113.50', query(PTR, 'PTR'))), 'peer B still has its budget');
  clock.now += 1000;
  answered = 0;
  for (let i = 0; i < 30; i++) if (r.handle(from('203.0.113.10', query(PTR, 'PTR'))) !== undefined) answered++;
  t.is(answered, PEER_RATE.perSecond);
});

test('the global budget bounds all peers together', (t) => {
  const clock = { now: 0 };
  const budget = new Budget(() => clock.now, { perSecond: 100, burst: 100 }, { perSecond: 5, burst: 10 });
  const verdicts = Array.from({ length: 12 }, (_, i) => budget.take(`peer${i % 3}`));
  t.is(verdicts.filter((v) => v === 'ok').length, 10);
  t.deepEqual(verdicts.slice(10), ['global-rate', 'global-rate']);
  clock.now += 1000;
  t.is(budget.take('peer0'), 'ok');
});

test('what is not a readable query is counted by reason: ignored, or answered with an error code', (t) => {
  const r = registry();
  const peer = (data: Buffer, truncated = false) => r.handle(from('203.0.113.10', data, truncated));
  const good = query(PTR, 'PTR', { id: 77 });
  t.is(peer(Buffer.from('hello')), undefined);
  t.is(peer(good, true), undefined, 'cut by the socket: longer than 512 bytes');
  t.is(peer(Buffer.concat([good, Buffer.alloc(600)])), undefined);
  const response = Buffer.from(good);
  response.writeUInt16BE(response.readUInt16BE(2) | 0x8000, 2);
  t.is(peer(response), undefined, 'an answer is never answered');
  const garbage = Buffer.from(good);
  garbage[12] = 0xc0; // a compression pointer in place of the question's first label
  t.is(peer(garbage), undefined);
  const notify = Buffer.from(good);
  notify.writeUInt16BE((notify.readUInt16BE(2) & ~0x7800) | (4 << 11), 2);
  t.is(decode(peer(notify)).rcode, 'NOTIMP');
  const two = dnsPacket.encode({ type: 'query', id: 5, questions: [{ name: PTR, type: 'PTR' }, { name: PTR, type: 'PTR' }] });
  t.is(decode(peer(two)).rcode, 'FORMERR');
  t.is(decode(peer(query(PTR, 'ANY'))).rcode, 'REFUSED');
  t.is(decode(peer(query(PTR, 'AXFR'))).rcode, 'REFUSED');
  t.is(decode(peer(query(PTR, 'PTR', { klass: 'CH' }))).rcode, 'REFUSED');
  t.is(decode(peer(query('example.org', 'A'))).rcode, 'REFUSED');
  const v1 = query(PTR, 'PTR', { edns: 1232 });
  v1[v1.length - 5] = 1; // the OPT record's EDNS version (then its flags and RDLENGTH)
  const badvers = decode(peer(v1));
  t.like(badvers.additionals?.[0], { type: 'OPT', extendedRcode: 1 }, 'BADVERS is 16: 1 in the OPT record, 0 in the header');
  t.deepEqual(r.status().ignored, { malformed: 2, oversized: 2, 'not-query': 1 });
  t.deepEqual(r.status().refused, { opcode: 1, questions: 1, any: 2, class: 1, 'out-of-zone': 1, 'edns-version': 1 });
  t.deepEqual(r.status().answered, {});
});

test('an answer keeps to the limit the query sets: 512 without EDNS, what EDNS says up to 4096', (t) => {
  const many: ModelPeer[] = Array.from({ length: 80 }, (_, i) => ({ publicKey: Buffer.alloc(32, i + 1).toString('base64'), endpoint: `192.0.2.${i + 1}:4000`, allowedIps: [`203.0.113.${i + 1}/32`], latestHandshake: 0 }));
  const r = new Registry({
    logger: silent,
    iface: 'wg0',
    options: { family: 4, address: '203.0.113.1', port: 5182, zone: 'wg.internal' },
    model: () => many,
    interfaces: { addresses: () => new Map([['wg0', ['203.0.113.1']]]), ifindex: () => 1 },
    openSocket: () => ({ listen: () => undefined, send: () => undefined, close: () => undefined }),
  });
  for (const [edns, limit] of [[undefined, 512], [100, 512], [1232, 1232], [65535, 4096]] as const) {
    const reply = r.handle(from('203.0.113.1', query(PTR, 'PTR', { edns })))!;
    t.true(reply.length <= limit, `${reply.length} <= ${limit}`);
    t.true(decode(reply).flag_tc, 'all 80 do not fit');
    t.is(decode(reply).answers?.length, Math.floor((limit - 12 - 33 - (edns === undefined ? 0 : 11)) / 71));
  }
});

const HEADER = 12;
const KNOWN = new Set(['not-peer', 'peer-rate', 'global-rate', 'oversized', 'malformed', 'not-query', 'opcode', 'questions', 'edns-version', 'class', 'any', 'out-of-zone']);

function fuzzHandler(): { handler: RegistryHandler; counters: RegistryCounters } {
  const counters = new RegistryCounters(silent);
  const peers = model().map((p) => ({ publicKey: p.publicKey, endpoint: undefined, allowedIps: p.allowedIps, verifiedAt: undefined }));
  const state = {
    directory: new Directory('wg.internal', [{ ...peers[0]!, endpoint: { family: 4, address: '192.0.2.10', port: 40000 } }, peers[1]!]),
    allowedIps: new AllowedIps(peers.map((p) => ({ owner: p.publicKey, allowedIps: p.allowedIps }))),
  };
  const budget = new Budget(() => 0, { perSecond: 0, burst: 1e9 }, { perSecond: 0, burst: 1e9 });
  return { handler: new RegistryHandler({ state: () => state, budget, counters }), counters };
}

function checkReply(t: import('ava').ExecutionContext, reply: Buffer | undefined, sent: Buffer): void {
  if (reply === undefined) return;
  if (reply.length > 4096) t.fail(`reply of ${reply.length} bytes`);
  const decoded = dnsPacket.decode(reply);
  if (!decoded.flag_qr || decoded.id !== sent.readUInt16BE(0)) t.fail('not an answer to it');
}

test('thousands of random datagrams from a peer: never a throw, every answer decodable and within 4096 bytes', (t) => {
  const { handler, counters } = fuzzHandler();
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 700, size: 'max' }), fc.nat(9), (bytes, shape) => {
      const data = Buffer.from(bytes);
      const truncated = shape === 0;
      // most get a header that passes the first checks (a query, opcode QUERY, one question)
      if (shape > 3 && data.length >= HEADER) {
        data[2] = (data[2] ?? 0) & 0x07;
        data.writeUInt16BE(1, 4);
      }
      checkReply(t, handler.handle({ data, address: '203.0.113.10', port: 1, truncated }), data.length >= 2 ? data : Buffer.alloc(2));
    }),
    { numRuns: 3000, seed: 1515 },
  );
  const reasons = [...counters.ignored.keys(), ...counters.refused.keys()];
  t.true(reasons.every((r) => KNOWN.has(r)), reasons.join(','));
  t.false(counters.ignored.has('internal'));
  t.log(`ignored ${JSON.stringify(Object.fromEntries(counters.ignored))}, refused ${JSON.stringify(Object.fromEntries(counters.refused))}, answered ${JSON.stringify(Object.fromEntries(counters.answered))}`);
});

test('thousands of mutated genuine queries: never a throw, every answer decodable', (t) => {
  const { handler, counters } = fuzzHandler();
  const seeds = [query(PTR, 'PTR'), query(`${peerLabel(KEY_A)}.${PTR}`, 'SRV', { edns: 1232 }), query(`${peerLabel(KEY_B)}.${PTR}`, 'TXT')];
  fc.assert(
    fc.property(fc.nat(seeds.length - 1), fc.array(fc.tuple(fc.nat(600), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.integer({ min: -20, max: 40 }), (which, flips, resize) => {
      const seed = seeds[which]!;
      const data = Buffer.alloc(Math.max(0, seed.length + resize));
      seed.copy(data);
      for (const [at, value] of flips) if (data.length > 0) data[at % data.length] = value;
      checkReply(t, handler.handle({ data, address: '2001:db8:20::1', port: 1, truncated: false }), data.length >= 2 ? data : Buffer.alloc(2));
    }),
    { numRuns: 3000, seed: 2020 },
  );
  t.false(counters.ignored.has('internal'));
  t.true((counters.answered.get('NOERROR') ?? 0) + (counters.answered.get('NXDOMAIN') ?? 0) > 0, 'some mutations still ask something answerable');
});

test('the address: on another interface or not among the interface\'s is exit 2; not there yet is waited for, then served', (t) => {
  const addresses = new Map<string, string[]>([['wan', ['192.0.2.1']], ['wg0', []]]);
  let opened = 0;
  const make = (address: string) =>
    new Registry({
      logger: silent,
      iface: 'wg0',
      options: { family: 4, address, port: 5182, zone: 'wg.internal' },
      model,
      interfaces: { addresses: () => addresses, ifindex: () => 3 },
      openSocket: () => {
        opened++;
        return { listen: () => undefined, send: () => undefined, close: () => undefined };
      },
    });
  t.throws(() => make('192.0.2.1').checkAddress(), { message: /192\.0\.2\.1 is an address of wan, not of wg0: the registry answers only inside the tunnel/ });
  const waiting = make('203.0.113.1');
  waiting.start();
  t.is(waiting.status().state, 'waiting');
  t.is(opened, 0);
  addresses.set('wg0', ['203.0.113.1']);
  waiting.refresh();
  t.is(waiting.status().state, 'serving');
  t.is(opened, 1);
  t.throws(() => make('203.0.113.2').checkAddress(), { message: /203\.0\.113\.2 is not an address of wg0 \(it has 203\.0\.113\.1\)/ });
  addresses.set('wg0', []);
  waiting.refresh();
  t.is(waiting.status().state, 'waiting', 'the address went away: closed, waiting again');
  addresses.set('wg0', ['203.0.113.1']);
  waiting.refresh();
  t.is(opened, 2);
  waiting.stop();
});
