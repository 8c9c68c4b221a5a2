/**
 * The registry's records against fixtures taken from outside this project: RFC 4648's base32
 * test vectors, and the key ↔ name pairs and answers of wgsd's README (its `dig` transcript);
 * the SRV/TXT layout as wgsd.go writes it (SRV 0 0 PORT, target its own name; A/AAAA then TXT in
 * the additional section; "txtvers=1" "pub=" "allowed="), and RFC 2308's negative answers.
 * Answers are read back with dns-packet's decoder, as a client would.
 */
import test from 'ava';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import { allowedStrings, base32, Directory, peerLabel, type RegistryPeer } from '../src/registry/records.js';
import { encodeResponse, udpLimitOf } from '../src/registry/wire.js';

// wgsd README: `wg show` peers and the names its dig transcript shows for them
const WGSD = [
  { key: 'xScVkH3fUGUv4RrJFfmcqm8rs3SEHr41km6+yffAHw4=', label: 'yutrled535igkl7bdlerl6m4vjxsxm3uqqpl4nmsn27mt56ad4ha====', endpoint: '203.0.113.1', port: 7777, allowed: '10.0.0.1/32' },
  { key: 'syKB97XhGnvC+kynh2KqQJPXoOoOpx/HmpMRTc+r4js=', label: 'wmrid55v4enhxqx2jstyoyvkicj5pihkb2tr7r42smiu3t5l4i5q====', endpoint: '198.51.100.1', port: 8888, allowed: '10.0.0.2/32' },
  { key: 'JeZlz14G8tg1Bqh6apteFCwVhNhpexJ19FDPfuxQtUY=', label: 'extglt26a3znqnigvb5gvg26cqwblbgynf5re5pukdhx53cqwvda====', endpoint: '192.0.2.1', port: 51820, allowed: '10.0.0.254/32' },
] as const;

const peers: RegistryPeer[] = WGSD.map((p) => ({ publicKey: p.key, endpoint: { family: 4, address: p.endpoint, port: p.port }, allowedIps: [p.allowed], verifiedAt: undefined }));

test('base32 is RFC 4648 §10, padded', (t) => {
  const vectors: [string, string][] = [['', ''], ['f', 'MY======'], ['fo', 'MZXQ===='], ['foo', 'MZXW6==='], ['foob', 'MZXW6YQ='], ['fooba', 'MZXW6YTB'], ['foobar', 'MZXW6YTBOI======']];
  for (const [input, output] of vectors) t.is(base32(Buffer.from(input)), output, input);
});

test("a peer's label is its key in lower-case padded base32, as in wgsd's README", (t) => {
  for (const p of WGSD) t.is(peerLabel(p.key), p.label);
});

/** A query through the Directory and the encoder, decoded again by dns-packet. */
type Decoded = DecodedPacket & { readonly rcode: string };

function ask(directory: Directory, name: string, type: string, limit = 512): { packet: Decoded; bytes: number } {
  const lookup = directory.lookup(name, type);
  const question = dnsPacket.encode({ type: 'query', id: 42, questions: [{ name, type: type as 'A' }] }).subarray(12);
  const rcode = { NOERROR: 0, NXDOMAIN: 3, REFUSED: 5 }[lookup.rcode];
  const bytes = encodeResponse({ ...lookup, id: 42, recursionDesired: false, rcode, questionBytes: question, edns: false, limit });
  return { packet: dnsPacket.decode(bytes) as Decoded, bytes: bytes.length };
}

const txt = (data: unknown): string[] => (data as Buffer[]).map((b) => b.toString());

test("PTR lists one name per peer with an endpoint, TTL 0, as wgsd's transcript does", (t) => {
  const directory = new Directory('example.com.', [...peers, { publicKey: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', endpoint: undefined, allowedIps: [], verifiedAt: undefined }]);
  const { packet } = ask(directory, '_wireguard._udp.example.com', 'PTR');
  t.is(packet.rcode, 'NOERROR');
  t.true(packet.flag_aa);
  t.deepEqual(
    packet.answers?.map((a) => [a.name, a.type, 'ttl' in a ? a.ttl : undefined, 'data' in a ? a.data : undefined]),
    WGSD.map((p) => ['_wireguard._udp.example.com', 'PTR', 0, `${p.label}._wireguard._udp.example.com`]),
  );
});

test('SRV: priority 0, weight 0, the endpoint port, target its own name; A then TXT in the additional section', (t) => {
  const directory = new Directory('example.com', peers);
  const p = WGSD[0];
  const name = `${p.label}._wireguard._udp.example.com`;
  const { packet, bytes } = ask(directory, name, 'SRV');
  t.deepEqual(packet.answers?.map((a) => [a.name, a.type, 'data' in a ? a.data : undefined]), [[name, 'SRV', { priority: 0, weight: 0, port: 7777, target: name }]]);
  t.deepEqual(packet.additionals?.map((a) => a.type), ['A', 'TXT']);
  t.is((packet.additionals?.[0] as { data: string }).data, '203.0.113.1');
  t.deepEqual(txt((packet.additionals?.[1] as { data: unknown }).data), ['txtvers=1', `pub=${p.key}`, 'allowed=10.0.0.1/32']);
  t.true(bytes <= 512, `${bytes} bytes: fits the 512 bytes of a client without EDNS (names compressed)`);
});

test('SRV of an IPv6 endpoint carries AAAA; A/AAAA/TXT questions answer alone; verified= follows the wgsd keys', (t) => {
  const key = WGSD[1].key;
  const directory = new Directory('wg.internal', [{ publicKey: key, endpoint: { family: 6, address: '2001:db8::2', port: 2 }, allowedIps: ['203.0.113.3/32', '2001:db8:3::/64'], verifiedAt: 1_700_000_000 }]);
  const name = `${WGSD[1].label}._wireguard._udp.wg.internal`;
  const srv = ask(directory, name, 'SRV').packet;
  t.deepEqual(srv.additionals?.map((a) => [a.type, 'data' in a && a.type === 'AAAA' ? a.data : '']), [['AAAA', '2001:db8::2'], ['TXT', '']]);
  t.deepEqual(txt(ask(directory, name, 'TXT').packet.answers?.[0] && (ask(directory, name, 'TXT').packet.answers?.[0] as { data: unknown }).data), [
    'txtvers=1',
    `pub=${key}`,
    'allowed=203.0.113.3/32,2001:db8:3::/64',
    'verified=1700000000',
  ]);
  t.deepEqual(ask(directory, name, 'AAAA').packet.answers?.map((a) => a.type), ['AAAA']);
  const a = ask(directory, name, 'A').packet;
  t.is(a.rcode, 'NOERROR', 'the name exists: no data, not NXDOMAIN (RFC 2308 §2.2)');
  t.deepEqual(a.answers, []);
  t.deepEqual(a.authorities?.map((r) => r.type), ['SOA']);
});

test('names are matched without regard to case (wgsd-client asks in upper case)', (t) => {
  const directory = new Directory('wg.internal', peers);
  const { packet } = ask(directory, `${WGSD[2].label.toUpperCase()}._WIREGUARD._UDP.WG.Internal.`, 'SRV');
  t.is((packet.answers?.[0] as { data: { port: number } }).data.port, 51820);
});

test('negative answers: NXDOMAIN for an unknown key or a peer without endpoint, with the SOA (TTL 0); REFUSED outside the zone', (t) => {
  const directory = new Directory('wg.internal', [...peers, { publicKey: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', endpoint: undefined, allowedIps: [], verifiedAt: undefined }]);
  const unknown = ask(directory, `${'a'.repeat(52)}====._wireguard._udp.wg.internal`, 'SRV').packet;
  t.is(unknown.rcode, 'NXDOMAIN');
  t.like(unknown.authorities?.[0], { type: 'SOA', name: 'wg.internal', ttl: 0, data: { minimum: 0 } });
  t.is(ask(directory, `${peerLabel('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')}._wireguard._udp.wg.internal`, 'SRV').packet.rcode, 'NXDOMAIN');
  t.is(ask(directory, 'elsewhere.wg.internal', 'A').packet.rcode, 'NXDOMAIN');
  t.is(ask(directory, '_udp.wg.internal', 'A').packet.rcode, 'NOERROR', 'an empty non-terminal exists (RFC 8020)');
  t.is(ask(directory, 'wg.internal', 'SOA').packet.answers?.[0]?.type, 'SOA');
  const outside = ask(directory, 'example.org', 'A').packet;
  t.is(outside.rcode, 'REFUSED');
  t.deepEqual(outside.authorities, []);
});

test('allowed= keeps whole prefixes within one 255-byte string and says how many more there are', (t) => {
  const many = Array.from({ length: 40 }, (_, i) => `2001:db8:${i.toString(16)}::/64`);
  const [allowed, more] = allowedStrings(many);
  t.true(Buffer.byteLength(allowed ?? '') <= 255);
  const shown = (allowed ?? '').slice('allowed='.length).split(',');
  t.deepEqual(shown, many.slice(0, shown.length));
  t.is(more, `more=${many.length - shown.length}`);
  t.deepEqual(allowedStrings(['203.0.113.10/32']), ['allowed=203.0.113.10/32']);
  t.deepEqual(allowedStrings([]), ['allowed=']);
});

test('a PTR set larger than the limit is cut at a whole record with TC set; EDNS room takes them all', (t) => {
  const many: RegistryPeer[] = Array.from({ length: 40 }, (_, i) => ({
    publicKey: Buffer.alloc(32, i + 1).toString('base64'),
    endpoint: { family: 4, address: `192.0.2.${i + 1}`, port: 40000 + i },
    allowedIps: [`203.0.113.${i + 1}/32`],
    verifiedAt: undefined,
  }));
  const directory = new Directory('wg.internal', many);
  const small = ask(directory, '_wireguard._udp.wg.internal', 'PTR', 512);
  t.true(small.bytes <= 512);
  t.true(small.packet.flag_tc);
  t.true((small.packet.answers?.length ?? 0) > 0 && (small.packet.answers?.length ?? 0) < 40);
  const big = ask(directory, '_wireguard._udp.wg.internal', 'PTR', udpLimitOf({ edns: { udpPayloadSize: 4096, version: 0 } }));
  t.false(big.packet.flag_tc);
  t.is(big.packet.answers?.length, 40);
  t.true(big.bytes <= 4096);
  t.log(`40 peers: ${small.packet.answers?.length} PTR in 512 bytes, all in ${big.bytes} bytes`);
});
