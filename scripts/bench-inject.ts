/**
 * The injection part of `npm run bench`: µs per buildUdpPacket (pure, always), and as root, in
 * a lab namespace with a firewall that drops new UDP on `lo` too, µs per inject, per pinhole
 * (created, and updated) through our netlink code, and per `conntrack -I` with the tool for
 * comparison, all measured in the same run (scripts/lab/inject-bench.ts). Printed, not asserted.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { buildUdpPacket, type UdpTuple } from '../src/net/inject.js';
import { FOREIGN_V4, FOREIGN_V6, HOST_V4, HOST_V6, PORT, createInjectionHost } from './lab/injection.js';
import { nsRun, withScope } from './lab/netns.js';

const INSIDE = fileURLToPath(new URL('./lab/inject-bench.js', import.meta.url));
const line = (name: string, value: string): void => void process.stdout.write(`${name.padEnd(50)} ${value}\n`);

function buildFigures(): void {
  const payload = Buffer.alloc(148, 1);
  const tuples: UdpTuple[] = [
    { family: 4, src: FOREIGN_V4, srcPort: 40000, dst: HOST_V4, dstPort: PORT },
    { family: 6, src: FOREIGN_V6, srcPort: 40000, dst: HOST_V6, dstPort: PORT },
  ];
  for (const tuple of tuples) {
    const iterations = 200_000;
    for (let i = 0; i < 2000; i++) buildUdpPacket(tuple, payload);
    const start = performance.now();
    for (let i = 0; i < iterations; i++) buildUdpPacket(tuple, payload);
    const us = ((performance.now() - start) * 1000) / iterations;
    line(`inject: buildUdpPacket IPv${tuple.family}, 148-byte payload`, `${us.toFixed(2)} µs each`);
  }
}

interface Inside {
  readonly injectUs: number;
  readonly injected: number;
  readonly received: number;
  readonly pinholeCreateUs: number;
  readonly pinholeUpdateUs: number;
  readonly pinholes: number;
  readonly toolUs: number;
  readonly toolRuns: number;
}

async function namespaceFigures(): Promise<void> {
  await withScope(async (scope) => {
    const { ns } = await createInjectionHost(scope, { firewall: true });
    for (const [family, host, foreign] of [[4, HOST_V4, FOREIGN_V4], [6, HOST_V6, FOREIGN_V6]] as const) {
      // A second port: the host's own listener holds PORT.
      const out = await nsRun(ns, process.execPath, [INSIDE, host, foreign, String(PORT + 1)]);
      const figures = JSON.parse(out.trim()) as Inside;
      line(`inject: IPv${family} inject (raw socket, through lo)`, `${figures.injectUs.toFixed(1)} µs each (median of batches; ${figures.received}/${figures.injected} received)`);
      line(`inject: IPv${family} pinhole, new entry (netlink)`, `${figures.pinholeCreateUs.toFixed(1)} µs each (median of ${figures.pinholes})`);
      line(`inject: IPv${family} pinhole, existing entry (netlink)`, `${figures.pinholeUpdateUs.toFixed(1)} µs each (median of ${figures.pinholes})`);
      line(`inject: IPv${family} conntrack -I (the tool)`, `${(figures.toolUs / 1000).toFixed(2)} ms each (median of ${figures.toolRuns}; ${(figures.toolUs / figures.pinholeCreateUs).toFixed(0)}× the netlink pinhole)`);
    }
  });
}

export async function benchInjection(): Promise<void> {
  buildFigures();
  if (process.getuid?.() !== 0) {
    line('inject: inject and pinhole figures', 'skipped (need root: they run in a network namespace)');
    return;
  }
  await namespaceFigures();
}
