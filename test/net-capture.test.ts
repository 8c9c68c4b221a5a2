/**
 * Live captures through node_pcap on real devices, in network namespaces: Ethernet (a veth),
 * Linux cooked v1 (`any`), raw IP (wireguard-go's tun), and cooked v2 (tcpdump's file, read
 * back through libpcap). The capture runs in a child process inside the namespace, the way a
 * daemon does; it prints one JSON line per event. Needs root.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { labId, nsRun, veth, waitFor, withScope, type LabProcess, type Scope } from '../scripts/lab/netns.js';
import { readCaptureFile } from '../src/net/capture.js';
import { initiationFilter, knockFilter } from '../src/net/filter.js';
import { decodeFrame, type Datagram, type LinkType } from '../src/net/packet.js';
import { initiationLike } from './helpers/net-frames.js';
import { sendUdp } from '../scripts/lab/daemons.js';

const isRoot = process.getuid?.() === 0;
const rootTest = isRoot ? test : test.skip;

const CAPTURE_MODULE = new URL('../src/net/capture.js', import.meta.url).href;

/** argv: DEVICE FILTER. Keeps running after an error, to show the process survives it. */
const CAPTURE_CHILD = `
import { openCapture } from ${JSON.stringify(CAPTURE_MODULE)};
const [device, filter] = process.argv.slice(1);
const print = (event) => process.stdout.write(JSON.stringify(event) + '\\n');
let capture;
try {
  capture = openCapture({
    device,
    filter,
    onFrame: (frame, timestampMs) => print({ event: 'frame', hex: frame.toString('hex'), timestampMs, received: capture.stats().received }),
    onError: (error) => print({ event: 'error', code: error.code, message: error.message }),
  });
  print({ event: 'open', link: capture.link });
} catch (error) {
  print({ event: 'failed', code: error.code, message: error.message });
  process.exit(0);
}
setInterval(() => print({ event: 'alive' }), 200);
`;

/** argv: HOST PORT HEX TTL SRCPORT. One datagram. */
const SENDER = `
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
const [host, port, hex, ttl, srcPort] = process.argv.slice(1);
const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
socket.bind(Number(srcPort), () => {
  socket.setTTL(Number(ttl));
  socket.send(Buffer.from(hex, 'hex'), Number(port), host, (error) => {
    socket.close();
    if (error) { console.error(error.message); process.exitCode = 1; }
  });
});
`;

interface ChildEvent {
  event: 'open' | 'failed' | 'frame' | 'error' | 'alive';
  link?: LinkType;
  code?: string;
  message?: string;
  hex?: string;
  timestampMs?: number;
  received?: number;
}

function eventsOf(proc: LabProcess, name: ChildEvent['event']): ChildEvent[] {
  return proc.lines.flatMap((line) => {
    try {
      const event = JSON.parse(line) as ChildEvent;
      return event.event === name ? [event] : [];
    } catch {
      return [];
    }
  });
}

async function startCapture(scope: Scope, ns: string, device: string, filter: string, prefix: string[] = []): Promise<{ proc: LabProcess; first: ChildEvent }> {
  const [cmd = process.execPath, ...rest] = [...prefix, process.execPath];
  const proc = scope.start(ns, cmd, [...rest, '--input-type=module', '-e', CAPTURE_CHILD, device, filter]);
  const line = await proc.waitForLine((l) => /"event":"(open|failed)"/.test(l), 15_000);
  if (line === undefined) throw new Error(`capture child did not start: ${proc.lines.join('\n')}`);
  return { proc, first: JSON.parse(line) as ChildEvent };
}

async function send(ns: string, host: string, port: number, payload: Buffer, ttl = 64, srcPort = 0): Promise<void> {
  await nsRun(ns, process.execPath, ['--input-type=module', '-e', SENDER, host, String(port), payload.toString('hex'), String(ttl), String(srcPort)]);
}

async function capturedDatagrams(proc: LabProcess, link: LinkType, count: number): Promise<Datagram[]> {
  await waitFor(() => eventsOf(proc, 'frame').length >= count, 5000);
  return eventsOf(proc, 'frame').map((event) => {
    const decoded = decodeFrame(link, Buffer.from(event.hex ?? '', 'hex'));
    if (!decoded.ok) throw new Error(`captured frame does not decode: ${decoded.reason}`);
    return decoded.value;
  });
}

/** Two namespaces joined by a veth: A (a0: 192.0.2.1, 2001:db8::1) and B (b0: 192.0.2.2, 2001:db8::2). */
async function veths(scope: Scope): Promise<{ a: string; b: string }> {
  const id = labId();
  const a = await scope.addNamespace(`net-${id}-a`);
  const b = await scope.addNamespace(`net-${id}-b`);
  await veth({ ns: a, name: 'a0' }, { ns: b, name: 'b0' });
  await nsRun(a, 'ip', ['addr', 'add', '192.0.2.1/24', 'dev', 'a0']);
  await nsRun(a, 'ip', ['addr', 'add', '2001:db8::1/64', 'dev', 'a0', 'nodad']);
  await nsRun(b, 'ip', ['addr', 'add', '192.0.2.2/24', 'dev', 'b0']);
  await nsRun(b, 'ip', ['addr', 'add', '2001:db8::2/64', 'dev', 'b0', 'nodad']);
  return { a, b };
}

const PORT = 51820;

rootTest('Ethernet (veth): the initiation filter passes real initiations, IPv4 and IPv6, and they decode', async (t) => {
  await withScope(async (scope) => {
    const { a, b } = await veths(scope);
    const { proc, first } = await startCapture(scope, b, 'b0', initiationFilter(PORT));
    t.deepEqual(first, { event: 'open', link: 'ethernet' });
    const before = Date.now();
    await send(a, '192.0.2.2', PORT, initiationLike(2), 33, 40000);
    await send(a, '192.0.2.2', PORT, initiationLike(), 33, 40000);
    await send(a, '2001:db8::2', PORT, initiationLike(), 17, 40002);
    const datagrams = await capturedDatagrams(proc, 'ethernet', 2);
    t.deepEqual(datagrams, [
      { family: 4, src: '192.0.2.1', dst: '192.0.2.2', ttl: 33, protocol: 'udp', srcPort: 40000, dstPort: PORT, tcpFlags: 0, payload: initiationLike() },
      { family: 6, src: '2001:db8::1', dst: '2001:db8::2', ttl: 17, protocol: 'udp', srcPort: 40002, dstPort: PORT, tcpFlags: 0, payload: initiationLike() },
    ]);
    const frames = eventsOf(proc, 'frame');
    t.true(frames.every((f) => (f.timestampMs ?? 0) >= before - 1000 && (f.timestampMs ?? 0) <= Date.now() + 1000));
    t.true((frames.at(-1)?.received ?? 0) >= 1);
  });
});

rootTest('Linux cooked v1 (`any`): the knock filter passes TTL and hop limit 1, and they decode', async (t) => {
  await withScope(async (scope) => {
    const { a, b } = await veths(scope);
    const { proc, first } = await startCapture(scope, b, 'any', knockFilter({ basePort: 19000, range: 100 }));
    t.deepEqual(first, { event: 'open', link: 'sll' });
    const probe = Buffer.from('probe');
    await send(a, '192.0.2.2', 19003, probe, 2, 41000);
    await send(a, '192.0.2.2', 19003, probe, 1, 41000);
    await send(a, '2001:db8::2', 19004, probe, 2, 41001);
    await send(a, '2001:db8::2', 19004, probe, 1, 41001);
    const datagrams = await capturedDatagrams(proc, 'sll', 2);
    t.deepEqual(datagrams, [
      { family: 4, src: '192.0.2.1', dst: '192.0.2.2', ttl: 1, protocol: 'udp', srcPort: 41000, dstPort: 19003, tcpFlags: 0, payload: probe },
      { family: 6, src: '2001:db8::1', dst: '2001:db8::2', ttl: 1, protocol: 'udp', srcPort: 41001, dstPort: 19004, tcpFlags: 0, payload: probe },
    ]);
  });
});

rootTest('raw IP (wireguard-go tun): outgoing datagrams, IPv4 and IPv6, decode', async (t) => {
  await withScope(async (scope) => {
    const id = labId();
    const ns = await scope.addNamespace(`net-${id}-tun`);
    // wireguard-go's control sockets share one directory across namespaces: the name must be unique.
    const tun = `wgn${id}`;
    const wg = scope.start(ns, 'wireguard-go', ['-f', tun]);
    t.true(await waitFor(async () => (await nsRun(ns, 'ip', ['-o', 'link'])).includes(tun), 10_000), wg.lines.join('\n'));
    await nsRun(ns, 'ip', ['addr', 'add', '198.51.100.1/24', 'dev', tun]);
    await nsRun(ns, 'ip', ['addr', 'add', '2001:db8:1::1/64', 'dev', tun, 'nodad']);
    await nsRun(ns, 'ip', ['link', 'set', tun, 'up']);
    const { proc, first } = await startCapture(scope, ns, tun, 'udp dst port 5000');
    t.deepEqual(first, { event: 'open', link: 'raw' });
    const payload = Buffer.from('over the tunnel');
    await send(ns, '198.51.100.2', 5000, payload, 64, 42000);
    await send(ns, '2001:db8:1::2', 5000, payload, 64, 42001);
    const datagrams = await capturedDatagrams(proc, 'raw', 2);
    t.deepEqual(datagrams, [
      { family: 4, src: '198.51.100.1', dst: '198.51.100.2', ttl: 64, protocol: 'udp', srcPort: 42000, dstPort: 5000, tcpFlags: 0, payload },
      { family: 6, src: '2001:db8:1::1', dst: '2001:db8:1::2', ttl: 64, protocol: 'udp', srcPort: 42001, dstPort: 5000, tcpFlags: 0, payload },
    ]);
  });
});

rootTest('Linux cooked v2: tcpdump -y LINUX_SLL2 on `any`, read back through libpcap, decodes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'net-capture-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'sll2.pcap');
  await withScope(async (scope) => {
    const { a, b } = await veths(scope);
    const tcpdump = scope.start(b, 'tcpdump', ['-i', 'any', '-y', 'LINUX_SLL2', '-Z', 'root', '-U', '-c', '2', '-w', file, 'udp dst port 6000']);
    t.truthy(await tcpdump.waitForLine((line) => line.includes('listening on'), 10_000), tcpdump.lines.join('\n'));
    const payload = Buffer.from('cooked');
    await send(a, '192.0.2.2', 6000, payload, 9, 43000);
    await send(a, '2001:db8::2', 6000, payload, 9, 43001);
    t.is(await tcpdump.waitForExit(10_000), 0, tcpdump.lines.join('\n'));
  });
  const read = await readCaptureFile(file);
  t.is(read.link, 'sll2');
  t.deepEqual(
    read.frames.map(({ frame }) => decodeFrame(read.link, frame)),
    [
      { ok: true, value: { family: 4, src: '192.0.2.1', dst: '192.0.2.2', ttl: 9, protocol: 'udp', srcPort: 43000, dstPort: 6000, tcpFlags: 0, payload: Buffer.from('cooked') } },
      { ok: true, value: { family: 6, src: '2001:db8::1', dst: '2001:db8::2', ttl: 9, protocol: 'udp', srcPort: 43001, dstPort: 6000, tcpFlags: 0, payload: Buffer.from('cooked') } },
    ],
  );
});

/** Waits for the child's first error, then for it to go on living for a while. */
async function errorThenAlive(proc: LabProcess): Promise<ChildEvent | undefined> {
  await waitFor(() => eventsOf(proc, 'error').length > 0, 5000);
  const error = eventsOf(proc, 'error')[0];
  const alive = eventsOf(proc, 'alive').length;
  await waitFor(() => eventsOf(proc, 'alive').length >= alive + 3, 3000);
  return eventsOf(proc, 'alive').length >= alive + 3 && !proc.exited ? error : undefined;
}

rootTest('a capture whose device is deleted reports it through onError, and the process lives on', async (t) => {
  await withScope(async (scope) => {
    const { b } = await veths(scope);
    const { proc } = await startCapture(scope, b, 'b0', '');
    await nsRun(b, 'ip', ['link', 'del', 'b0']);
    const error = await errorThenAlive(proc);
    t.like(error, { code: 'E_CAPTURE', message: 'Capture on b0 stopped: the device went away. It can be opened again once the device is up.' });
    t.is(eventsOf(proc, 'error').length, 1);
  });
});

rootTest('a capture whose device goes down reports it through onError, and the process lives on', async (t) => {
  await withScope(async (scope) => {
    const { b } = await veths(scope);
    const { proc } = await startCapture(scope, b, 'b0', '');
    await nsRun(b, 'ip', ['link', 'set', 'b0', 'down']);
    const error = await errorThenAlive(proc);
    t.like(error, { code: 'E_CAPTURE', message: 'Capture on b0 stopped: the device went down. It can be opened again once the device is up.' });
    t.is(eventsOf(proc, 'error').length, 1);
  });
});

rootTest('a capture on `any` is untouched when some device is deleted', async (t) => {
  await withScope(async (scope) => {
    const { a, b } = await veths(scope);
    await nsRun(b, 'ip', ['link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'c1']);
    await nsRun(b, 'ip', ['link', 'set', 'c0', 'up']);
    await nsRun(b, 'ip', ['link', 'set', 'c1', 'up']);
    const { proc } = await startCapture(scope, b, 'any', 'udp dst port 7000');
    await nsRun(b, 'ip', ['link', 'del', 'c0']);
    await send(a, '192.0.2.2', 7000, Buffer.from('still here'));
    const datagrams = await capturedDatagrams(proc, 'sll', 1);
    t.deepEqual(datagrams.map((d) => d.payload.toString()), ['still here']);
    t.deepEqual(eventsOf(proc, 'error'), []);
  });
});

rootTest('opening fails with an error that says what to do', async (t) => {
  await withScope(async (scope) => {
    const { b } = await veths(scope);
    await nsRun(b, 'ip', ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
    const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];
    const cases: [string, string, string[], string, RegExp][] = [
      ['no0', '', [], 'E_NO_DEVICE', /There is no device no0 .*'ip link'.*-d any/],
      ['d0', '', [], 'E_CAPTURE', /d0 is down .*ip link set d0 up/],
      ['lo', 'udp and and', [], 'E_FILTER', /syntax error.*udp and and/],
      ['lo', '', nobody, 'E_CAPTURE_PERMISSION', /Operation not permitted.*root.*CAP_NET_RAW and CAP_NET_ADMIN/],
    ];
    for (const [device, filter, prefix, code, message] of cases) {
      const { first } = await startCapture(scope, b, device, filter, prefix);
      t.is(first.event, 'failed', device);
      t.is(first.code, code, device);
      t.regex(first.message ?? '', message);
    }
  });
});

/** argv: N. Opens a capture on `any`, then N times opens a new one and closes the old one (the fast path's filter change). */
const REPLACER = `
import { readdirSync, readlinkSync } from 'node:fs';
import { openCapture, unreleasedCaptures } from ${JSON.stringify(CAPTURE_MODULE)};
const rounds = Number(process.argv[1]);
const links = () => readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync('/proc/self/fd/' + fd); } catch { return 'gone'; } });
const fds = () => links().filter((link) => link !== 'gone').length;
const open = (port) => openCapture({ device: 'any', filter: 'udp dst port ' + port, onFrame: () => undefined });
process.stdout.write('started\\n'); // node opens what stdout needs on first use: before counting
let capture = open(1000);
let fdsAtStart = 0;
for (let i = 1; i <= rounds; i++) {
  const fresh = open(1000 + i);
  capture.close();
  capture = fresh;
  await new Promise((resolve) => setTimeout(resolve, 50));
  // after the first round: what node opens once for its first UDP socket is not a leak
  if (i === 1) fdsAtStart = fds();
}
await new Promise((resolve) => setTimeout(resolve, 1500));
process.stdout.write(JSON.stringify({ fdsAtStart, fdsAtEnd: fds(), unreleased: unreleasedCaptures(), open: links() }) + '\\n');
capture.close();
setTimeout(() => process.exit(0), 200);
`;

rootTest('open a new capture, then close the old one, 20 times: every old socket is released', async (t) => {
  await withScope(async (scope) => {
    const ns = await scope.addNamespace(`net-${labId()}-r`);
    const proc = scope.start(ns, process.execPath, ['--input-type=module', '-e', REPLACER, '20']);
    const line = await proc.waitForLine((l) => l.startsWith('{'), 20_000);
    const result = JSON.parse(line ?? '{}') as { fdsAtStart?: number; fdsAtEnd?: number; unreleased?: number };
    t.log(JSON.stringify(result));
    t.is(result.unreleased, 0, proc.lines.join('\n'));
    t.is(result.fdsAtEnd, result.fdsAtStart);
  });
});

/**
 * argv: the address to send to. A capture on `any` whose filter is replaced in place: the ports
 * (and, from the SLL header, the direction) of what it passes before and after. Lines: ready1,
 * ready2, then the result.
 */
const IN_PLACE = `
import { createSocket } from 'node:dgram';
import { openCapture } from ${JSON.stringify(CAPTURE_MODULE)};
const seen = [];
// SLL (16) + IPv4 (20): the UDP ports; SLL's first field is the packet type (4: outgoing)
const onFrame = (frame) => seen.push((frame.readUInt16BE(0) === 4 ? 'out ' : 'in ') + frame.readUInt16BE(38));
const capture = openCapture({ device: 'any', filter: 'udp dst port 40001 or udp dst port 40002', onFrame });
const socket = createSocket('udp4');
const send = (port) => new Promise((resolve) => socket.send(Buffer.from('probe!'), port, process.argv[1], resolve));
const wait = async (count) => { for (let i = 0; i < 60 && seen.length < count; i++) await new Promise((r) => setTimeout(r, 50)); await new Promise((r) => setTimeout(r, 100)); };
process.stdout.write('ready1\\n');
await wait(2);
const before = seen.splice(0);
const set = capture.setFilter('(inbound and udp dst port 40002) or (outbound and udp dst port 40003)');
process.stdout.write('ready2\\n');
await send(40003); await send(40004);
await wait(2);
process.stdout.write(JSON.stringify({ before, set, after: seen.splice(0).sort() }) + '\\n');
capture.close(); socket.close();
setTimeout(() => process.exit(0), 200);
`;

rootTest('a filter replaced in place passes what it says from the next packet on (cooked capture on any: direction and offsets rewritten)', async (t) => {
  await withScope(async (scope) => {
    const a = await scope.addNamespace(`net-${labId()}-fa`);
    const b = await scope.addNamespace(`net-${labId()}-fb`);
    await veth({ ns: a, name: 'va' }, { ns: b, name: 'vb' });
    await nsRun(a, 'ip', ['addr', 'add', '192.0.2.1/24', 'dev', 'va']);
    await nsRun(b, 'ip', ['addr', 'add', '192.0.2.2/24', 'dev', 'vb']);
    const proc = scope.start(b, process.execPath, ['--input-type=module', '-e', IN_PLACE, '192.0.2.1']);
    t.truthy(await proc.waitForLine((l) => l === 'ready1', 20_000), proc.lines.join('\n'));
    await sendUdp(a, '192.0.2.2', 40001, [Buffer.from('one')]);
    await sendUdp(a, '192.0.2.2', 40002, [Buffer.from('two')]);
    t.truthy(await proc.waitForLine((l) => l === 'ready2', 20_000), proc.lines.join('\n'));
    await sendUdp(a, '192.0.2.2', 40001, [Buffer.from('one')]);
    await sendUdp(a, '192.0.2.2', 40002, [Buffer.from('two')]);
    const line = await proc.waitForLine((l) => l.startsWith('{'), 20_000);
    const result = JSON.parse(line ?? '{}') as { before?: string[]; set?: { ok: boolean }; after?: string[] };
    t.deepEqual(result.set, { ok: true, value: true }, proc.lines.join('\n'));
    t.deepEqual(result.before, ['in 40001', 'in 40002']);
    // inbound to 40002 and outbound to 40003 pass; 40001 in and 40004 out do not
    t.deepEqual(result.after, ['in 40002', 'out 40003']);
  });
});
