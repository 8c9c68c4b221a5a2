/**
 * `npm run bench`: figures for the hot path, printed, not asserted.
 *
 *   verify   consumeInitiation on genuine, bad-mac1 and foreign-key initiations (ops/s)
 *   decode   decodeFrame on a Linux cooked frame carrying an initiation (ops/s)
 *   memory   heap growth over a million decoded and rejected frames
 *   tell     editing a 200-peer wg-quick file in memory; persisting to it and writing the
 *            status file (each an atomic replace with fsync, in the temp directory)
 *   inject   buildUdpPacket; as root, inject, pinhole and `conntrack -I` in a namespace
 *            (scripts/bench-inject.ts)
 *
 * With --flood (root), reconfig-wg under floods in the lab (scripts/bench-flood.ts); add
 * --baseline REF to run the same floods against an earlier commit first, in the same run.
 * With --hostile (root), reconfig-wg under each attack of the threat model (spoofed floods over
 * many networks and inside a peer's /64, replayed data), with CPU, memory, conntrack and a genuine
 * peer's re-handshake, next to the build before the security work (scripts/bench-hostile.ts).
 * With --profile (root), a CPU profile of reconfig-wg under each kind of flood, summarised.
 *
 * With --lab (root), also the roaming table from the netns lab (scripts/bench-roaming.ts): how
 * long each roaming event takes to recover with WireGuard alone and its port open, with
 * reconfig-wg --no-inject and with reconfig-wg by default, BENCH_ROUNDS rounds each (10).
 *
 * With --lab --wg kernel (root), the roaming table alone, with the kernel's WireGuard at both
 * ends of every lab instead of wireguard-go, its own port-open column the native baseline:
 * here if this kernel has WireGuard, else in the VM of scripts/vm/run-in-vm.sh (Debian's kernel
 * under QEMU TCG; `scripts/setup.sh --vm` installs it). The CPU figures are left out there:
 * under emulation they would measure the emulator. So would 10 rounds at once: under TCG they
 * saturate the one daemon (capture → hand-over 0.5 s, capture drops), so BENCH_ROUNDS defaults
 * to 3 in the VM, and the VM gets 2 virtual CPUs, so that R1's pings, WireGuard and the daemon do not
 * all queue on one emulated CPU.
 *
 * With --footprint (root), both jobs' memory (from /proc/PID/smaps_rollup) with the service
 * files' node flags, as two processes and as one, before and after: the code of --baseline REF
 * (default: `git merge-base HEAD main`) and this tree, in one run. With --footprint-flags (root; also part of --lab),
 * this tree under each set of node flags tried for the service files, with the verification
 * rate under the same flags (scripts/footprint.ts).
 * With --roaming (root), only the roaming table of --lab (BENCH_ROUNDS, BENCH_SETUPS pick rounds
 * and set-ups; BENCH_KEEP_LOGS=DIR keeps each set-up's daemon log there), without the other
 * figures.
 * With --mesh (root), only the mesh client's figures per NAT combination: time to direct, RTT
 * direct and via R2, R2's bytes for spoke-to-spoke traffic, a remap's gap and its time to direct
 * again (scripts/bench-mesh.ts).
 * --verify-only prints the first line of the verify figures and nothing else (the footprint
 * section runs it under each flag set).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { setPeerEndpoint, wgQuickPersister } from '../src/reconfig/tell/persist-wgquick.js';
import { STATUS_VERSION, writeStatus } from '../src/reconfig/tell/status.js';
import { decodeFrame } from '../src/net/packet.js';
import { consumeInitiation } from '../src/wireguard/initiation.js';
import { generatePrivateKey, publicKeyOf } from '../src/wireguard/keys.js';
import { createResponder } from '../src/wireguard/responder.js';
import { benchInjection } from './bench-inject.js';
import { roamingTable } from './bench-roaming.js';
import { createInitiation } from './lab/initiator.js';
import { footprint, footprintFlags } from './footprint.js';
import { LAB_WIREGUARDS, type LabWireGuard } from './lab/lab.js';
import { kernelWireGuardHere, runNodeInVm } from './vm/vm.js';

function rate(name: string, iterations: number, fn: (i: number) => void): void {
  for (let i = 0; i < Math.min(1000, iterations); i++) fn(i);
  const start = performance.now();
  for (let i = 0; i < iterations; i++) fn(i);
  const ms = performance.now() - start;
  process.stdout.write(`${name.padEnd(44)} ${Math.round((iterations / ms) * 1000).toLocaleString('en-US').padStart(12)} ops/s  (${((ms * 1000) / iterations).toFixed(2)} µs each)\n`);
}

function sllFrame(payload: Buffer): Buffer {
  const sll = Buffer.alloc(16);
  sll.writeUInt16BE(0x0800, 14);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from([198, 51, 100, 7]).copy(ip, 12);
  Buffer.from([192, 0, 2, 1]).copy(ip, 16);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(51820, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([sll, ip, udp, payload]);
}

/** `--wg NAME`: the lab's WireGuard; exits 2 on a name that is none. */
function wireGuardFlag(argv: readonly string[]): LabWireGuard | undefined {
  const at = argv.indexOf('--wg');
  if (at < 0) return undefined;
  const name = argv[at + 1] ?? '';
  if (!(LAB_WIREGUARDS as readonly string[]).includes(name)) {
    process.stderr.write(`bench: --wg takes one of ${LAB_WIREGUARDS.join(', ')}\n`);
    process.exit(2);
  }
  return name as LabWireGuard;
}

/** The longest a whole `--lab --wg kernel` run may take in the VM. */
const VM_BENCH_TIMEOUT_S = 3600;
/** Rounds at once on kernel WireGuard in the VM: more saturate the emulated daemon. */
const VM_BENCH_ROUNDS = 3;

const wireguard = wireGuardFlag(process.argv);
if (wireguard !== undefined) process.env.RECONFIG_WG_LAB_WG = wireguard;
if (wireguard === 'kernel') {
  if (process.getuid?.() !== 0 || !process.argv.includes('--lab')) {
    process.stderr.write('bench: --wg kernel goes with --lab, as root (the roaming table on kernel WireGuard)\n');
    process.exit(2);
  }
  if (await kernelWireGuardHere()) {
    const rounds = Number(process.env.BENCH_ROUNDS ?? 10);
    await roamingTable(rounds, (text) => process.stdout.write(text));
  } else {
    process.stdout.write('bench: this kernel has no WireGuard; the roaming table runs in a VM with Debian\'s kernel (QEMU TCG)\n');
    process.env.BENCH_ROUNDS ??= String(VM_BENCH_ROUNDS);
    process.exitCode = await runNodeInVm(['--expose-gc', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { timeoutSeconds: VM_BENCH_TIMEOUT_S, smp: 2 });
  }
  process.exit();
}

if (process.argv.includes('--roaming')) {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: --roaming needs root (network namespaces)\n');
    process.exit(2);
  }
  await roamingTable(Number(process.env.BENCH_ROUNDS ?? 10), (text) => process.stdout.write(text));
  process.exit();
}

if (process.argv.includes('--mesh')) {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: --mesh needs root (network namespaces)\n');
    process.exit(2);
  }
  const { meshBench } = await import('./bench-mesh.js');
  await meshBench((text) => process.stdout.write(text));
  process.exit();
}

const server = generatePrivateKey();
const responder = createResponder(server);
const peer = generatePrivateKey();
const genuine = createInitiation({ initiatorPrivateKey: peer, responderPublicKey: publicKeyOf(server) });
const foreign = createInitiation({ initiatorPrivateKey: generatePrivateKey(), responderPublicKey: publicKeyOf(server) });
const badMac = Buffer.from(genuine);
badMac[20] = badMac[20]! ^ 1;
const frame = sllFrame(genuine);

/** The last build before the receive path was made safe by construction: what --hostile compares with. */
const HOSTILE_BASELINE = 'ecd31f7';

const verifyOnly = process.argv.includes('--verify-only');
if (!verifyOnly) process.stdout.write(`node ${process.version}, ${process.arch}\n`);
rate('verify: genuine initiation (mac1 + 2 DH + 2 AEAD)', verifyOnly ? 5_000 : 20_000, () => {
  if (!consumeInitiation(responder, genuine).ok) throw new Error('genuine initiation refused');
});
if (verifyOnly) process.exit(0);
rate('verify: foreign key, valid mac1 (same work)', 20_000, () => void consumeInitiation(responder, foreign));
rate('verify: bad mac1 (rejected before any DH)', 200_000, () => void consumeInitiation(responder, badMac));
rate('decode: SLL + IPv4 + UDP frame', 1_000_000, () => {
  if (!decodeFrame('sll', frame).ok) throw new Error('frame did not decode');
});

globalThis.gc?.();
const before = process.memoryUsage().heapUsed;
for (let i = 0; i < 1_000_000; i++) {
  const decoded = decodeFrame('sll', frame);
  if (decoded.ok) consumeInitiation(responder, badMac);
}
globalThis.gc?.();
const after = process.memoryUsage().heapUsed;
process.stdout.write(`memory: heap growth after 1,000,000 frames decoded and rejected: ${((after - before) / 1024).toFixed(0)} KiB${globalThis.gc ? '' : ' (run with --expose-gc for a settled figure)'}\n`);

async function tellFigures(): Promise<void> {
  const keys = Array.from({ length: 200 }, () => publicKeyOf(generatePrivateKey()).toString('base64'));
  const config = `[Interface]\nListenPort = 51820\n${keys.map((key, i) => `\n# peer ${i}\n[Peer]\nPublicKey = ${key}\nAllowedIPs = 203.0.113.${i % 250}/32\n`).join('')}`;
  const last = keys[keys.length - 1] as string;
  rate('tell: wg-quick edit, last of 200 peers (pure)', 20_000, (i) => {
    if (!setPeerEndpoint(config, last, `192.0.2.10:${1 + (i % 60_000)}`).ok) throw new Error('edit failed');
  });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-bench-tell-'));
  try {
    const path = join(dir, 'wg0.conf');
    writeFileSync(path, config);
    const persister = wgQuickPersister(path);
    const persistMs: number[] = [];
    for (let i = 0; i < 200; i++) {
      const start = performance.now();
      await persister.persist(last, `192.0.2.10:${1 + i}`);
      persistMs.push(performance.now() - start);
    }
    summary('tell: wg-quick persist (200 peers, fsync)', persistMs);
    const peers = keys.map((publicKey) => ({ publicKey, endpoint: '192.0.2.10:1', lastChange: null, counts: { accepted: 1, updated: 1 } }));
    const status = { version: STATUS_VERSION, interface: 'wg0', pid: process.pid, listenPort: 51820, startedAt: '', updatedAt: '', persist: 'none', capture: null, ignored: {}, peers };
    const statusMs: number[] = [];
    for (let i = 0; i < 200; i++) {
      const start = performance.now();
      writeStatus(join(dir, 'status.json'), status);
      statusMs.push(performance.now() - start);
    }
    summary('tell: status file write (200 peers, fsync)', statusMs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function summary(name: string, values: readonly number[]): void {
  const sorted = [...values].sort((a, b) => a - b);
  const pick = (q: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN).toFixed(1);
  process.stdout.write(`${name.padEnd(44)} median ${pick(0.5)} ms, p90 ${pick(0.9)} ms, max ${pick(1)} ms (n=${sorted.length})\n`);
}

await tellFigures();
await benchInjection();

if (process.argv.includes('--flood')) {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: --flood needs root (network namespaces)\n');
    process.exitCode = 2;
  } else {
    const { buildBaseline, floodRounds, printFloodFigures } = await import('./bench-flood.js');
    const rates = [1000, 10_000, 50_000];
    // `--baseline REF`: the same floods against the code of git REF, built aside, in this run.
    const at = process.argv.indexOf('--baseline');
    const ref = at > 0 ? process.argv[at + 1] : undefined;
    const baseline = ref === undefined ? undefined : await buildBaseline(ref);
    try {
      if (baseline !== undefined) printFloodFigures(`flood, baseline ${ref}: reconfig-wg under junk initiations from 155 addresses`, await floodRounds(rates, [], baseline.cli), false);
      printFloodFigures('flood: reconfig-wg under junk initiations from 155 addresses', await floodRounds(rates));
    } finally {
      baseline?.remove();
    }
  }
}

if (process.argv.includes('--hostile')) {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: --hostile needs root (network namespaces)\n');
    process.exitCode = 2;
  } else {
    const { buildBaseline } = await import('./bench-flood.js');
    const { hostileRounds, printHostileFigures } = await import('./bench-hostile.js');
    // `--baseline REF` (default: the build before the security work): the same attacks against
    // the code of git REF, built aside, in this run.
    const at = process.argv.indexOf('--baseline');
    const ref = at > 0 ? process.argv[at + 1] : HOSTILE_BASELINE;
    const baseline = ref === undefined ? undefined : await buildBaseline(ref);
    try {
      if (baseline !== undefined) printHostileFigures(`hostile, baseline ${ref}`, await hostileRounds(baseline.cli));
      printHostileFigures('hostile, this build', await hostileRounds());
    } finally {
      baseline?.remove();
    }
  }
}

if (process.argv.includes('--profile')) {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: --profile needs root (network namespaces)\n');
    process.exitCode = 2;
  } else {
    const { profileFlood } = await import('./bench-flood.js');
    for (const kind of ['bad-mac1', 'valid-mac1'] as const) {
      const { busy, functions } = await profileFlood(kind, 10_000);
      process.stdout.write(`\nprofile: reconfig-wg under 10,000/s ${kind} junk for 10 s: main thread busy in ${(busy * 100).toFixed(1)} % of samples; of that, self time by function\n`);
      for (const { name, share } of functions) process.stdout.write(`${`${(share * 100).toFixed(1)} %`.padStart(7)}  ${name}\n`);
    }
  }
}

const lab = process.argv.includes('--lab');
const footprintWanted = process.argv.includes('--footprint');
const flagsWanted = process.argv.includes('--footprint-flags');
if (lab || footprintWanted || flagsWanted) {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`bench: ${lab ? '--lab' : footprintWanted ? '--footprint' : '--footprint-flags'} needs root (network namespaces)\n`);
    process.exitCode = 2;
  } else {
    if (lab) {
      const rounds = Number(process.env.BENCH_ROUNDS ?? 10);
      await roamingTable(rounds, (text) => process.stdout.write(text));
    }
    if (lab || flagsWanted) await footprintFlags(fileURLToPath(import.meta.url));
    if (footprintWanted) {
      // before and after: the code of --baseline REF (default: where this branch left main) and this tree
      const at = process.argv.indexOf('--baseline');
      const ref = at > 0 ? process.argv[at + 1] : undefined;
      await footprint(ref ?? (await execa('git', ['merge-base', 'HEAD', 'main'], { cwd: fileURLToPath(new URL('../..', import.meta.url)) })).stdout.trim());
    }
  }
}
