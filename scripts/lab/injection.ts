/**
 * Lab helpers for the injection path: one namespace that plays R2 (an address from each
 * documentation range on a veth, strict reverse-path filtering, optionally a firewall that
 * drops new inbound UDP on every interface, `lo` included), a UDP listener in it, and the
 * inject-once script run inside it. Used by e2e-inject.test.ts and the benchmark.
 */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { labId, nsRun, waitFor, type LabProcess, type Scope } from './netns.js';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
export const INJECT_ONCE = here('./inject-once.js');
export const UDP_LISTEN = here('./udp-listen.js');

export const HOST_V4 = '192.0.2.1';
export const HOST_V6 = '2001:db8::1';
export const FOREIGN_V4 = '198.51.100.7';
export const FOREIGN_V6 = '2001:db8:5::7';
export const PORT = 51820;

/** Drops new inbound UDP to PORT on every interface; no `lo` accept rule. Counts the drops. */
const CLOSED_FIREWALL = `
table inet filter {
  counter udp_new_dropped { }
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    udp dport ${PORT} ct state new counter name "udp_new_dropped" drop
  }
}
`;

export interface InjectionHost {
  readonly ns: string;
  readonly listener: LabProcess;
}

export async function createInjectionHost(scope: Scope, options: { firewall: boolean }): Promise<InjectionHost> {
  const ns = await scope.addNamespace(`rwg-${labId()}-inj`);
  await nsRun(ns, 'ip', ['link', 'add', 'wan', 'type', 'veth', 'peer', 'name', 'wanpeer']);
  for (const link of ['wan', 'wanpeer']) await nsRun(ns, 'ip', ['link', 'set', link, 'up']);
  await nsRun(ns, 'ip', ['addr', 'add', `${HOST_V4}/24`, 'dev', 'wan']);
  await nsRun(ns, 'ip', ['-6', 'addr', 'add', `${HOST_V6}/64`, 'dev', 'wan', 'nodad']);
  // Strict reverse-path filtering (RFC 3704): the kernel takes the stricter of `all` and the
  // interface's value. A packet from 198.51.100.7 arriving on `wan` would be dropped.
  await nsRun(ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.default.rp_filter=1', 'net.ipv4.conf.wan.rp_filter=1', 'net.ipv4.conf.lo.rp_filter=1']);
  if (options.firewall) await nsRun(ns, 'nft', ['-f', '-'], CLOSED_FIREWALL);
  const listener = scope.start(ns, process.execPath, [UDP_LISTEN, String(PORT), '100']);
  if ((await listener.waitForLine((line) => line === 'listening', 10_000)) === undefined) {
    throw new Error(`udp-listen did not start in ${ns}: ${listener.lines.join(' | ')}`);
  }
  return { ns, listener };
}

export interface InjectAnswer {
  readonly exitCode: number;
  readonly ok?: boolean;
  readonly reason?: string;
  /** what the pinholer did: opened an entry of its own, or found a live flow's */
  readonly pinholed?: 'opened' | 'exists';
  readonly code?: string;
  readonly message?: string;
  readonly families?: number[];
  readonly accepted?: boolean | null;
  readonly stderr: string;
}

/** Runs inject-once inside `ns` (or in this namespace when ns is undefined), under `prefix`. */
export async function injectOnce(ns: string | undefined, args: readonly string[], prefix: readonly string[] = []): Promise<InjectAnswer> {
  const command = [...prefix, process.execPath, INJECT_ONCE, ...args];
  const full = ns === undefined ? command : ['ip', 'netns', 'exec', ns, ...command];
  const result = await execa(full[0]!, full.slice(1), { reject: false, timeout: 20_000 });
  const line = String(result.stdout).trim().split('\n').pop() ?? '';
  let parsed: Partial<InjectAnswer> = {};
  try {
    parsed = JSON.parse(line) as Partial<InjectAnswer>;
  } catch {
    // no JSON: the assertions see exitCode and stderr
  }
  return { ...parsed, exitCode: result.exitCode ?? -1, stderr: String(result.stderr) };
}

export interface Received {
  readonly from: string;
  readonly port: number;
  readonly payload: string;
}

export function received(listener: LabProcess): Received[] {
  return listener.lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Received);
}

/** Waits until the listener got a datagram from `from`:`port`; true if it did within timeoutMs. */
export function waitForDatagram(listener: LabProcess, from: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return waitFor(() => received(listener).some((datagram) => datagram.from === from && datagram.port === port), timeoutMs, 20);
}

export async function droppedByFirewall(ns: string): Promise<number> {
  const out = await nsRun(ns, 'nft', ['list', 'counter', 'inet', 'filter', 'udp_new_dropped']);
  return Number(/packets (\d+)/.exec(out)?.[1] ?? NaN);
}

/** conntrack -L lines for UDP flows from source port `srcPort`. */
export async function conntrackEntries(ns: string, srcPort: number): Promise<string[]> {
  const out = await nsRun(ns, 'conntrack', ['-L', '-p', 'udp']);
  // Either direction: a pinhole's original direction is R2 → the source.
  return out.split('\n').filter((line) => line.startsWith('udp') && (line.includes(` sport=${srcPort} `) || line.includes(` dport=${srcPort} `)));
}
