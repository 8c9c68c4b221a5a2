/**
 * The knock detector: what is a probe, and one traceroute = one knock. The fixtures are real
 * traceroutes (Linux traceroute 2.1, -q 3 -m 3 -p 19000) from behind a NAT to 192.0.2.1, as
 * tcpdump recorded them on the server's Ethernet device: three probes of the last hop arrive
 * with TTL 1, three of the hop after it with TTL 2.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { readPcapFile } from '../scripts/lab/pcapfile.js';
import { KnockDetector, type ProbeVerdict } from '../src/knock/detector.js';
import { decodeFrame, type Datagram } from '../src/net/packet.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url));

class FakeClock {
  ms = 1000;
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

function detector(clock = new FakeClock(), windowMs = 6000, maxSources?: number): KnockDetector {
  return new KnockDetector({ basePort: 19000, range: 100, windowMs, now: clock.now, maxSources });
}

function probe(overrides: Partial<Datagram> = {}): Datagram {
  return { family: 4, src: '192.0.2.10', dst: '192.0.2.1', ttl: 1, protocol: 'udp', srcPort: 40000, dstPort: 19003, tcpFlags: 0, payload: Buffer.alloc(32), ...overrides };
}

function capturedProbes(name: string): Datagram[] {
  const pcap = readPcapFile(fixture(name));
  return pcap.frames.map((frame) => {
    const decoded = decodeFrame('ethernet', frame);
    if (!decoded.ok) throw new Error(`fixture ${name} does not decode: ${decoded.reason}`);
    return decoded.value;
  });
}

const kinds = (verdicts: ProbeVerdict[]): string[] => verdicts.map((v) => (v.kind === 'ignored' ? `ignored:${v.reason}` : v.kind));

for (const [name, expected] of [
  ['knock-udp4.pcap', { src: '192.0.2.10', port: 19003, ttl: 1, proto: 'udp', family: 4 }],
  ['knock-udp6.pcap', { src: '2001:db8:100::10', port: 19003, ttl: 1, proto: 'udp', family: 6 }],
  ['knock-tcp4.pcap', { src: '192.0.2.10', port: 19000, ttl: 1, proto: 'tcp', family: 4 }],
] as const) {
  test(`a real traceroute (${name}) is one knock: its last hop's probes collapse, the probes past it are not probes`, (t) => {
    const clock = new FakeClock();
    const d = detector(clock);
    const verdicts = capturedProbes(name).map((datagram) => {
      clock.advance(1);
      return d.observe(datagram);
    });
    t.deepEqual(kinds(verdicts), ['knock', 'repeat', 'repeat', 'ignored:ttl', 'ignored:ttl', 'ignored:ttl']);
    const first = verdicts[0];
    t.deepEqual(first?.kind === 'knock' ? first.knock : undefined, expected);
  });
}

test('every probe restarts the window: a slow traceroute stays one knock however long it runs', (t) => {
  const clock = new FakeClock();
  const d = detector(clock, 6000);
  t.is(d.observe(probe()).kind, 'knock');
  for (let i = 0; i < 10; i++) {
    clock.advance(5000);
    t.is(d.observe(probe({ dstPort: 19004 + i })).kind, 'repeat');
  }
});

test('after a whole quiet window the same source knocks again', (t) => {
  const clock = new FakeClock();
  const d = detector(clock, 6000);
  t.is(d.observe(probe()).kind, 'knock');
  clock.advance(5999);
  t.is(d.observe(probe()).kind, 'repeat');
  clock.advance(6000);
  t.is(d.observe(probe()).kind, 'knock');
});

test('different sources are different knocks, also the IPv4 and IPv6 addresses of one host', (t) => {
  const d = detector();
  t.is(d.observe(probe({ src: '192.0.2.10' })).kind, 'knock');
  t.is(d.observe(probe({ src: '192.0.2.11' })).kind, 'knock');
  t.is(d.observe(probe({ src: '2001:db8:100::10', family: 6 })).kind, 'knock');
  t.is(d.observe(probe({ src: '192.0.2.10', protocol: 'tcp', tcpFlags: 0x02 })).kind, 'repeat', 'the source, not the protocol, is what counts');
});

test('only TTL or hop limit 1 is a probe that just reached us', (t) => {
  const d = detector();
  for (const ttl of [0, 2, 64, 255]) t.deepEqual(d.observe(probe({ ttl })), { kind: 'ignored', reason: 'ttl' });
  t.deepEqual(d.observe(probe({ ttl: 2, family: 6, src: '2001:db8:100::10' })), { kind: 'ignored', reason: 'ttl' });
});

test('the range is BASE to BASE+RANGE-1, both ends included', (t) => {
  const d = detector();
  t.deepEqual(d.observe(probe({ dstPort: 18999 })), { kind: 'ignored', reason: 'port' });
  t.deepEqual(d.observe(probe({ dstPort: 19100 })), { kind: 'ignored', reason: 'port' });
  t.is(d.observe(probe({ dstPort: 19000, src: '192.0.2.20' })).kind, 'knock');
  t.is(d.observe(probe({ dstPort: 19099, src: '192.0.2.21' })).kind, 'knock');
});

test('a TCP probe is a SYN without ACK; other TCP segments are not probes', (t) => {
  const d = detector();
  const tcp = (tcpFlags: number, src: string): ProbeVerdict => d.observe(probe({ protocol: 'tcp', tcpFlags, src, dstPort: 19000 }));
  t.deepEqual(tcp(0x12, '192.0.2.30'), { kind: 'ignored', reason: 'tcp-flags' }, 'SYN+ACK');
  t.deepEqual(tcp(0x10, '192.0.2.30'), { kind: 'ignored', reason: 'tcp-flags' }, 'ACK');
  t.deepEqual(tcp(0x04, '192.0.2.30'), { kind: 'ignored', reason: 'tcp-flags' }, 'RST');
  t.deepEqual(tcp(0x00, '192.0.2.30'), { kind: 'ignored', reason: 'tcp-flags' }, 'no flags');
  t.is(tcp(0x02, '192.0.2.30').kind, 'knock', 'SYN');
  t.is(tcp(0x02 | 0x40 | 0x80, '192.0.2.31').kind, 'knock', 'SYN with ECN bits');
});

test('a flood of sources is bounded: the oldest are forgotten first', (t) => {
  const clock = new FakeClock();
  const d = detector(clock, 6000, 3);
  for (const src of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4']) d.observe(probe({ src }));
  t.is(d.tracking, 3);
  t.is(d.observe(probe({ src: '192.0.2.4' })).kind, 'repeat');
  t.is(d.observe(probe({ src: '192.0.2.1' })).kind, 'knock', 'the oldest was forgotten');
});

test('quiet sources are forgotten, so memory follows only the recent ones', (t) => {
  const clock = new FakeClock();
  const d = detector(clock, 6000);
  for (let i = 1; i <= 50; i++) d.observe(probe({ src: `192.0.2.${i}` }));
  t.is(d.tracking, 50);
  clock.advance(6000);
  d.observe(probe({ src: '198.51.100.7' }));
  t.is(d.tracking, 1);
});
