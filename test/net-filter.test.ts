/**
 * Capture filters: they compile with the system's libpcap for every link type, and an offline
 * libpcap session over hand-built frames passes exactly the frames each daemon wants.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { compileFilter, readCaptureFile } from '../src/net/capture.js';
import { initiationFilter, knockFilter, wireguardFilter, type ExcludedSource } from '../src/net/filter.js';
import { capturedOnLoopback } from '../src/net/link.js';
import { decodeFrame, type LinkType } from '../src/net/packet.js';
import {
  ACK,
  ARPHRD_LOOPBACK,
  LINK_TYPES,
  PACKET_HOST,
  PACKET_OUTGOING,
  RST,
  SYN,
  WRAP,
  captureFile,
  initiationLike,
  ipv4,
  ipv6,
  sll,
  sll2,
  tcp,
  udp,
} from './helpers/net-frames.js';

const PORT = 51820;
const KNOCK = { basePort: 19000, range: 100 };

async function passing(t: ExecutionContext, link: LinkType, filter: string, packets: Record<string, Buffer>): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'net-filter-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const names = Object.keys(packets);
  const file = join(dir, `${link}.pcap`);
  writeFileSync(file, captureFile(link, names.map((name) => WRAP[link](packets[name] ?? Buffer.alloc(0)))));
  const read = await readCaptureFile(file, filter);
  t.is(read.link, link);
  // Frames are one second apart from a known start, so the timestamp names the frame.
  return read.frames.map(({ timestampMs }) => names[timestampMs / 1000 - 1_700_000_000] ?? 'unknown');
}

test('both filters compile for every link type, at the edges of their ranges', (t) => {
  const filters = [
    initiationFilter(1),
    initiationFilter(PORT),
    initiationFilter(65535),
    knockFilter(KNOCK),
    knockFilter({ basePort: 1, range: 1 }),
    knockFilter({ basePort: 65436, range: 100 }),
    knockFilter({ basePort: 65535, range: 1 }),
  ];
  for (const link of LINK_TYPES) {
    for (const filter of filters) t.deepEqual(compileFilter(filter, link), { ok: true, value: true }, `${link}: ${filter}`);
  }
});

test('compileFilter returns libpcap’s message for a bad expression', (t) => {
  t.deepEqual(compileFilter('udp and and', 'ethernet'), { ok: false, reason: "can't parse filter expression: syntax error" });
});

test('compileFilter and readCaptureFile release their files', async (t) => {
  const before = readdirSync('/proc/self/fd').length;
  for (let i = 0; i < 40; i++) compileFilter(initiationFilter(PORT), 'sll');
  const dir = mkdtempSync(join(tmpdir(), 'net-filter-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'one.pcap'), captureFile('raw', [ipv4(udp(1, 2, Buffer.alloc(1)))]));
  for (let i = 0; i < 40; i++) await readCaptureFile(join(dir, 'one.pcap'));
  t.true(readdirSync('/proc/self/fd').length <= before + 2);
});

test('ports and ranges outside 1..65535 are usage errors', (t) => {
  for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
    t.throws(() => initiationFilter(port), { instanceOf: Error, message: /listen port/ }, String(port));
  }
  for (const knock of [{ basePort: 0, range: 1 }, { basePort: 19000, range: 0 }, { basePort: 65500, range: 37 }, { basePort: 19000, range: 2.5 }]) {
    const error = t.throws(() => knockFilter(knock));
    t.is((error as { code?: string } | undefined)?.code, 'E_USAGE');
  }
});

test('libpcap 1.10 udp[] never matches IPv6, which is why the IPv6 clauses read ip6[]', async (t) => {
  t.deepEqual(compileFilter('ip6 and udp[4:2] = 156', 'raw'), { ok: false, reason: 'expression rejects all packets' });
  const packets = { v4: ipv4(udp(40000, PORT, initiationLike())), v6: ipv6(udp(40000, PORT, initiationLike())) };
  t.deepEqual(await passing(t, 'raw', '(ip and udp[4:2] = 156) or (ip6 and udp[4:2] = 156)', packets), ['v4']);
  t.deepEqual(await passing(t, 'raw', '(ip and udp[4:2] = 156) or (ip6 and ip6[44:2] = 156)', packets), ['v4', 'v6']);
});

const initiationPackets: Record<string, Buffer> = {
  'v4 initiation': ipv4(udp(40000, PORT, initiationLike()), { src: '203.0.113.5', dst: '192.0.2.1' }),
  'v4 initiation, IP options': ipv4(udp(40000, PORT, initiationLike()), { options: Buffer.from([1, 1, 1, 0]) }),
  'v4 wrong port': ipv4(udp(40000, PORT + 1, initiationLike())),
  'v4 from the port': ipv4(udp(PORT, 40000, initiationLike())),
  'v4 one byte short': ipv4(udp(40000, PORT, initiationLike(1, 147))),
  'v4 one byte long': ipv4(udp(40000, PORT, initiationLike(1, 149))),
  'v4 response type 2': ipv4(udp(40000, PORT, initiationLike(2))),
  'v4 reserved byte set': ipv4(udp(40000, PORT, initiationLike(0x0101))),
  'v4 first fragment': ipv4(udp(40000, PORT, initiationLike()), { flags: 0x2000 }),
  'v4 TCP to the port': ipv4(tcp(40000, PORT, SYN, initiationLike()), { protocol: 6 }),
  'v6 initiation': ipv6(udp(40000, PORT, initiationLike()), { src: '2001:db8:1::5' }),
  'v6 wrong port': ipv6(udp(40000, PORT - 1, initiationLike())),
  'v6 wrong size': ipv6(udp(40000, PORT, initiationLike(1, 100))),
  'v6 cookie reply type 3': ipv6(udp(40000, PORT, initiationLike(3))),
  'v6 behind a hop-by-hop header': ipv6(udp(40000, PORT, initiationLike()), { extensions: [{ type: 0 }] }),
};

for (const link of LINK_TYPES) {
  test(`${link}: the initiation filter passes exactly WireGuard initiations to the port`, async (t) => {
    const passed = await passing(t, link, initiationFilter(PORT), initiationPackets);
    // The IPv6 clause reads fixed offsets, so an extension header hides the packet (see filter.ts).
    t.deepEqual(passed, ['v4 initiation', 'v4 initiation, IP options', 'v6 initiation']);
  });
}

const knockPackets: Record<string, Buffer> = {
  'v4 UDP TTL 1 at base': ipv4(udp(40000, 19000, Buffer.alloc(32)), { ttl: 1 }),
  'v4 UDP TTL 1 at top': ipv4(udp(40000, 19099, Buffer.alloc(32)), { ttl: 1 }),
  'v4 UDP TTL 1 below base': ipv4(udp(40000, 18999, Buffer.alloc(32)), { ttl: 1 }),
  'v4 UDP TTL 1 past top': ipv4(udp(40000, 19100, Buffer.alloc(32)), { ttl: 1 }),
  'v4 UDP TTL 2': ipv4(udp(40000, 19003, Buffer.alloc(32)), { ttl: 2 }),
  'v4 UDP TTL 64': ipv4(udp(40000, 19003, Buffer.alloc(32)), { ttl: 64 }),
  'v4 TCP SYN TTL 1': ipv4(tcp(40000, 19050, SYN), { protocol: 6, ttl: 1 }),
  'v4 TCP SYN-ACK TTL 1': ipv4(tcp(40000, 19050, SYN | ACK), { protocol: 6, ttl: 1 }),
  'v4 TCP ACK TTL 1': ipv4(tcp(40000, 19050, ACK), { protocol: 6, ttl: 1 }),
  'v4 TCP RST TTL 1': ipv4(tcp(40000, 19050, RST), { protocol: 6, ttl: 1 }),
  'v4 ICMP TTL 1': ipv4(Buffer.alloc(8), { protocol: 1, ttl: 1 }),
  'v6 UDP hop limit 1': ipv6(udp(40000, 19010, Buffer.alloc(32)), { hopLimit: 1 }),
  'v6 UDP hop limit 64': ipv6(udp(40000, 19010, Buffer.alloc(32)), { hopLimit: 64 }),
  'v6 UDP hop limit 1 past top': ipv6(udp(40000, 19100, Buffer.alloc(32)), { hopLimit: 1 }),
  'v6 TCP SYN hop limit 1': ipv6(tcp(40000, 19099, SYN), { protocol: 6, hopLimit: 1 }),
  'v6 TCP SYN-ACK hop limit 1': ipv6(tcp(40000, 19099, SYN | ACK), { protocol: 6, hopLimit: 1 }),
};

for (const link of LINK_TYPES) {
  test(`${link}: the knock filter passes UDP and SYN probes in range arriving with TTL or hop limit 1`, async (t) => {
    const passed = await passing(t, link, knockFilter(KNOCK), knockPackets);
    t.deepEqual(passed, ['v4 UDP TTL 1 at base', 'v4 UDP TTL 1 at top', 'v4 TCP SYN TTL 1', 'v6 UDP hop limit 1', 'v6 TCP SYN hop limit 1']);
  });
}

test('the knock filter passes the last-hop probes of real traceroutes and no others', async (t) => {
  for (const name of ['knock-udp4.pcap', 'knock-udp6.pcap', 'knock-tcp4.pcap']) {
    const file = new URL(`../../test/fixtures/${name}`, import.meta.url).pathname;
    const all = await readCaptureFile(file);
    const knocks = await readCaptureFile(file, knockFilter(KNOCK));
    t.is(all.frames.length, 6, name);
    t.deepEqual(
      knocks.frames.map(({ frame }) => decodeFrame(knocks.link, frame)).map((d) => (d.ok ? d.value.ttl : -1)),
      [1, 1, 1],
      name,
    );
  }
});

test('readCaptureFile refuses a link type it cannot decode, and a filter libpcap cannot compile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'net-filter-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const wifi = captureFile('ethernet', []);
  wifi.writeUInt32LE(105, 20); // LINKTYPE_IEEE802_11
  writeFileSync(join(dir, 'wifi.pcap'), wifi);
  await t.throwsAsync(readCaptureFile(join(dir, 'wifi.pcap')), { message: /link type Unknown linktype 105/ });
  const error = await t.throwsAsync(readCaptureFile(join(dir, 'wifi.pcap'), 'udp and and'));
  t.is((error as { code?: string } | undefined)?.code, 'E_FILTER');
  const linkError = await t.throwsAsync(readCaptureFile(join(dir, 'wifi.pcap')));
  t.is((linkError as { code?: string } | undefined)?.code, 'E_LINK_TYPE');
});

/** Exclusion lists of 0, 1 and 200 peers' endpoints, half IPv4 and half IPv6. */
function endpoints(count: number): ExcludedSource[] {
  return Array.from({ length: count }, (_, i) =>
    i % 2 === 0 ? { family: 4, address: `198.51.100.${(i % 250) + 1}`, port: 1000 + i } : { family: 6, address: `2001:db8:5::${i.toString(16)}`, port: 2000 + i },
  );
}

test('the fast-path filter compiles for the cooked link types of `any` with 0, 1 and 200 excluded endpoints, well within the kernel’s 4096 instructions', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'net-filter-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const empty = join(dir, 'sll2.pcap');
  writeFileSync(empty, captureFile('sll2', []));
  const sizes: number[] = [];
  for (const count of [0, 1, 200]) {
    const filter = wireguardFilter(PORT, endpoints(count));
    for (const link of ['sll', 'sll2'] as const) t.deepEqual(compileFilter(filter, link), { ok: true, value: true }, `${link}, ${count} endpoints`);
    // tcpdump -d prints the compiled program, one instruction a line.
    const { stdout } = await execa('tcpdump', ['-d', '-r', empty, filter], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    const instructions = stdout.trim().split('\n').length;
    sizes.push(instructions);
    t.log(`${count} excluded endpoints: ${instructions} BPF instructions`);
  }
  t.true(sizes[0]! < sizes[1]! && sizes[1]! < sizes[2]!, 'each endpoint adds to the program');
  t.true(sizes[2]! < 4096, `200 endpoints: ${sizes[2]} instructions`);
});

for (const [link, wrap] of [
  ['sll', sll],
  ['sll2', sll2],
] as const) {
  test(`${link}: the fast-path filter passes initiations in, R2's handshakes out, and data in except from current endpoints`, async (t) => {
    const R2 = '192.0.2.1';
    const R2_6 = '2001:db8:100::1';
    const data = (size = 96): Buffer => initiationLike(4, size);
    const inbound = (packet: Buffer): Buffer => wrap(packet, undefined, PACKET_HOST);
    const outbound = (packet: Buffer): Buffer => wrap(packet, undefined, PACKET_OUTGOING);
    const exclude: ExcludedSource[] = [
      { family: 4, address: '198.51.100.7', port: 40000 },
      { family: 6, address: '2001:db8:1::7', port: 40000 },
    ];
    const packets: Record<string, Buffer> = {
      'v4 initiation in': inbound(ipv4(udp(40000, PORT, initiationLike()), { src: '198.51.100.7', dst: R2 })),
      'v4 response out': outbound(ipv4(udp(PORT, 40000, initiationLike(2, 92)), { src: R2, dst: '198.51.100.7' })),
      'v4 initiation out': outbound(ipv4(udp(PORT, 40000, initiationLike()), { src: R2, dst: '198.51.100.7' })),
      'v4 data in, new source': inbound(ipv4(udp(40001, PORT, data()), { src: '198.51.100.7', dst: R2 })),
      'v4 keepalive in, new source': inbound(ipv4(udp(40001, PORT, data(32)), { src: '198.51.100.7', dst: R2 })),
      'v4 data in, current endpoint': inbound(ipv4(udp(40000, PORT, data()), { src: '198.51.100.7', dst: R2 })),
      'v4 data out to a peer on the listen port': outbound(ipv4(udp(PORT, PORT, data()), { src: R2, dst: '198.51.100.9' })),
      'v4 data in, too short': inbound(ipv4(udp(40001, PORT, data(31)), { src: '198.51.100.7', dst: R2 })),
      'v4 cookie reply in': inbound(ipv4(udp(40001, PORT, initiationLike(3, 64)), { src: '198.51.100.7', dst: R2 })),
      'v4 response in': inbound(ipv4(udp(40001, PORT, initiationLike(2, 92)), { src: '198.51.100.7', dst: R2 })),
      'v6 initiation in': inbound(ipv6(udp(40000, PORT, initiationLike()), { src: '2001:db8:1::7', dst: R2_6 })),
      'v6 response out': outbound(ipv6(udp(PORT, 40000, initiationLike(2, 92)), { src: R2_6, dst: '2001:db8:1::7' })),
      'v6 data in, new source': inbound(ipv6(udp(40001, PORT, data()), { src: '2001:db8:1::7', dst: R2_6 })),
      'v6 data in, current endpoint': inbound(ipv6(udp(40000, PORT, data()), { src: '2001:db8:1::7', dst: R2_6 })),
      'v6 data out': outbound(ipv6(udp(PORT, 40000, data()), { src: R2_6, dst: '2001:db8:1::7' })),
    };
    const dir = mkdtempSync(join(tmpdir(), 'net-filter-test-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const names = Object.keys(packets);
    const file = join(dir, `${link}.pcap`);
    writeFileSync(file, captureFile(link, names.map((name) => packets[name]!)));
    const read = await readCaptureFile(file, wireguardFilter(PORT, exclude));
    const passed = read.frames.map(({ timestampMs }) => names[timestampMs / 1000 - 1_700_000_000] ?? 'unknown');
    t.deepEqual(passed, [
      'v4 initiation in',
      'v4 response out',
      'v4 initiation out',
      'v4 data in, new source',
      'v4 keepalive in, new source',
      'v6 initiation in',
      'v6 response out',
      'v6 data in, new source',
    ]);
  });
}

test('a cooked frame captured on lo is recognised before decoding; other links never are', (t) => {
  const packet = ipv4(udp(40000, PORT, initiationLike()));
  t.true(capturedOnLoopback('sll', sll(packet, undefined, PACKET_HOST, ARPHRD_LOOPBACK)));
  t.true(capturedOnLoopback('sll2', sll2(packet, undefined, PACKET_HOST, ARPHRD_LOOPBACK)));
  t.false(capturedOnLoopback('sll', sll(packet)));
  t.false(capturedOnLoopback('sll2', sll2(packet)));
  t.false(capturedOnLoopback('sll2', Buffer.alloc(4)));
  t.false(capturedOnLoopback('raw', packet));
});
