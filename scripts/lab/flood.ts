/**
 * Floods for the lab: junk handshake initiations from many source addresses at a bounded rate
 * for a bounded time, as an attacker who knows R2's public key would send them. The sender is
 * a small C program (flood.c beside this file's source) built with the machine's cc the first
 * time it is needed, and run in the lab's attacker namespace only. Sources are documentation
 * addresses added to the attacker's interface.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { INITIATION_RESERVED_OFFSET, INITIATION_RESERVED_SIZE, INITIATION_SIZE, MESSAGE_INITIATION } from '../../src/wireguard/constants.js';
import { writeMac1 } from './initiator.js';
import { host, nsRun, type LabProcess, type Scope } from './netns.js';

/** flood.c stays a source file: tsc copies nothing, so it is read from the source tree. */
const FLOOD_SOURCE = fileURLToPath(new URL('../../../scripts/lab/flood.c', import.meta.url));
/** the flooder refuses more; tests stay far below */
export const MAX_FLOOD_RATE = 200_000;
export const MAX_FLOOD_SECONDS = 120;

let built: Promise<string> | undefined;
const buildDir = mkdtempSync(join(tmpdir(), 'rwg-flood-'));
process.once('exit', () => rmSync(buildDir, { recursive: true, force: true }));

const SEND_FRAMES_SOURCE = fileURLToPath(new URL('../../../scripts/lab/send-frames.c', import.meta.url));
let builtSendFrames: Promise<string> | undefined;

/**
 * Sends whole Ethernet frames out of `iface` in `ns` (scripts/lab/send-frames.c, compiled once
 * per process): how the lab puts VLAN-tagged frames on a wire without VLAN devices.
 */
export async function sendFrames(ns: string, iface: string, frames: readonly Buffer[]): Promise<number> {
  builtSendFrames ??= (async () => {
    const binary = join(buildDir, 'send-frames');
    await host('cc', ['-O2', '-Wall', '-o', binary, SEND_FRAMES_SOURCE]);
    return binary;
  })();
  const out = await nsRun(ns, await builtSendFrames, [iface, ...frames.map((frame) => frame.toString('hex'))]);
  return Number(/^sent (\d+)/m.exec(out)?.[1] ?? 0);
}

/** Compiles the flooder once per process; resolves with the binary's path. */
export function buildFlooder(): Promise<string> {
  built ??= (async () => {
    const binary = join(buildDir, 'flood');
    await host('cc', ['-O2', '-Wall', '-o', binary, FLOOD_SOURCE]);
    return binary;
  })();
  return built;
}

/** `count` IPv4 sources 192.0.2.100, .101, … (at most 155: the rest of the lab's /24). */
export function floodSourcesV4(count: number): string[] {
  if (count < 1 || count > 155) throw new Error(`flood sources: 1-155 IPv4 addresses, not ${count}`);
  return Array.from({ length: count }, (_, i) => `192.0.2.${100 + i}`);
}

/** `count` IPv6 sources in one /64 of their own, 2001:db8:66::1, ::2, … (at most 1,024). */
export function floodSourcesV6(count: number): string[] {
  if (count < 1 || count > 1024) throw new Error(`flood sources: 1-1024 IPv6 addresses, not ${count}`);
  return Array.from({ length: count }, (_, i) => `2001:db8:66::${(i + 1).toString(16)}`);
}

/** Adds `addresses` to the attacker's `wan` interface in one `ip -batch`. */
export async function addFloodSources(ns: string, addresses: readonly string[]): Promise<void> {
  const lines = addresses.map((a) => (a.includes(':') ? `addr add ${a}/128 dev wan nodad` : `addr add ${a}/32 dev wan`));
  await nsRun(ns, 'ip', ['-batch', '-'], `${lines.join('\n')}\n`);
}

/**
 * `count` initiation-sized junk messages: right type and reserved bytes, random ephemeral,
 * static and timestamp fields, and a mac1 that is valid for `responderPublicKey` (or not).
 */
export function junkInitiations(responderPublicKey: Buffer, count: number, validMac1: boolean): Buffer[] {
  return Array.from({ length: count }, () => {
    const msg = randomBytes(INITIATION_SIZE);
    msg[0] = MESSAGE_INITIATION;
    msg.fill(0, INITIATION_RESERVED_OFFSET, INITIATION_RESERVED_OFFSET + INITIATION_RESERVED_SIZE);
    return validMac1 ? writeMac1(msg, responderPublicKey) : msg;
  });
}

export interface FloodOptions {
  readonly to: string;
  readonly port: number;
  readonly perSecond: number;
  readonly seconds: number;
  readonly sources: readonly string[];
  /** spoof IPv6 sources instead: random addresses in `networks` /64s under `prefix` (see flood.c) */
  readonly spoof?: { readonly prefix: string; readonly networks: number };
  /** all the same size */
  readonly payloads: readonly Buffer[];
  /** IPv4 TTL / IPv6 hop limit of every datagram (1: knock probes); the system's default when absent */
  readonly ttl?: number;
}

export interface Flood {
  readonly proc: LabProcess;
  /** resolves with what the flooder reports once it has ended (on its own or stopped) */
  finished(): Promise<{ sent: number; failed: number; seconds: number }>;
}

/** Starts the flooder in `ns`; the scope stops it by pid if the caller does not. */
export async function startFlood(scope: Scope, ns: string, options: FloodOptions): Promise<Flood> {
  if (options.perSecond > MAX_FLOOD_RATE || options.seconds > MAX_FLOOD_SECONDS) throw new Error('flood: rate or duration above the lab bound');
  const binary = await buildFlooder();
  const size = options.payloads[0]?.length ?? 0;
  const file = join(buildDir, `payloads-${randomBytes(4).toString('hex')}`);
  writeFileSync(file, Buffer.concat([...options.payloads]));
  const proc = scope.start(ns, binary, [
    '-d', options.to, '-p', String(options.port), '-r', String(options.perSecond), '-t', String(options.seconds),
    '-f', file, '-l', String(size), ...(options.ttl === undefined ? [] : ['-T', String(options.ttl)]),
    ...(options.spoof === undefined ? options.sources : ['-S', options.spoof.prefix, '-n', String(options.spoof.networks)]),
  ]);
  return {
    proc,
    async finished() {
      await proc.waitForExit((options.seconds + 10) * 1000);
      rmSync(file, { force: true });
      const line = proc.lines.find((l) => l.startsWith('sent '));
      const match = /^sent (\d+) failed (\d+) seconds ([\d.]+)/.exec(line ?? '');
      if (match === null) throw new Error(`flood ended without figures: ${proc.lines.join('\n')}`);
      return { sent: Number(match[1]), failed: Number(match[2]), seconds: Number(match[3]) };
    },
  };
}
