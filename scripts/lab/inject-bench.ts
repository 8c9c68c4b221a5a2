/**
 * The injection figures, measured inside a lab namespace (run through `ip netns exec` by
 * scripts/bench-inject.ts): µs per inject, per pinhole created and per pinhole updated with
 * our netlink code, and per `conntrack -I` of the same kind of entry with the tool. Prints one
 * JSON line. Every loop is bounded; the packets go to a local address only, in batches with a
 * pause between them (at most a few thousand a second on average).
 *   node inject-bench.js HOST FOREIGN PORT
 */
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { openPinholer } from '../../src/net/conntrack.js';
import { openInjector, type UdpTuple } from '../../src/net/inject.js';

const [host, foreign, portArg] = process.argv.slice(2);
const port = Number(portArg);
const family = isIP(host ?? '');
if (host === undefined || foreign === undefined || (family !== 4 && family !== 6) || isIP(foreign) !== family || !(port > 0)) {
  process.stderr.write('usage: inject-bench HOST FOREIGN PORT\n');
  process.exit(2);
}

const BATCHES = 10;
const PER_BATCH = 200;
const PAUSE_MS = 50;
const PINHOLES = 300;
const TOOL_RUNS = 20;
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

const socket = family === 4 ? createSocket('udp4') : createSocket({ type: 'udp6', ipv6Only: true });
let got = 0;
socket.on('message', () => got++);
await new Promise<void>((resolve) => socket.bind(port, host, resolve));

const injector = openInjector();
const pinholer = openPinholer();
const tuple = (srcPort: number): UdpTuple => ({ family, src: foreign, srcPort, dst: host, dstPort: port });
const payload = Buffer.alloc(148, 1);

// Injection: one flow, pinholed once so the firewall lets it in.
const flow = tuple(30000);
const opened = pinholer.open(flow, 60);
if (!opened.ok) throw new Error(opened.reason);
const injectUs: number[] = [];
for (let batch = 0; batch < BATCHES; batch++) {
  const start = performance.now();
  for (let i = 0; i < PER_BATCH; i++) {
    const sent = injector.inject(flow, payload);
    if (!sent.ok) throw new Error(sent.reason);
  }
  injectUs.push(((performance.now() - start) * 1000) / PER_BATCH);
  await pause(PAUSE_MS);
}
await pause(200);

// Pinholes: new entries (one source port each), then the same entry again and again.
const time = (fn: () => void): number => {
  const start = performance.now();
  fn();
  return (performance.now() - start) * 1000;
};
const createUs: number[] = [];
for (let i = 0; i < PINHOLES; i++) {
  createUs.push(time(() => {
    const result = pinholer.open(tuple(31000 + i), 30);
    if (!result.ok) throw new Error(result.reason);
  }));
}
const updateUs: number[] = [];
for (let i = 0; i < PINHOLES; i++) {
  updateUs.push(time(() => {
    const result = pinholer.open(tuple(31000), 30);
    if (!result.ok) throw new Error(result.reason);
  }));
}

// The conntrack tool, for the same kind of entry (a new one each time: -I refuses one that exists).
const toolUs: number[] = [];
for (let i = 0; i < TOOL_RUNS; i++) {
  const sport = String(32000 + i);
  const us = time(() => {
    const run = spawnSync('conntrack', ['-I', '-p', 'udp', '-s', foreign, '-d', host, '--sport', sport, '--dport', String(port),
      '-r', host, '-q', foreign, '--reply-port-src', String(port), '--reply-port-dst', sport, '-t', '30', '-u', 'SEEN_REPLY'], { stdio: 'ignore' });
    if (run.status !== 0) throw new Error(`conntrack -I exited ${run.status}`);
  });
  toolUs.push(us);
}

injector.close();
pinholer.close();
socket.close();
process.stdout.write(`${JSON.stringify({
  family,
  injectUs: median(injectUs),
  injected: BATCHES * PER_BATCH,
  received: got,
  pinholeCreateUs: median(createUs),
  pinholeUpdateUs: median(updateUs),
  pinholes: PINHOLES,
  toolUs: median(toolUs),
  toolRuns: TOOL_RUNS,
})}\n`);
