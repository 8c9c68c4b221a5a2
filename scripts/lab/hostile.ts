/**
 * What the attack tests and the hostile bench share: the service files' node flags, the
 * daemon's resident memory, R2's conntrack table size, and a genuine re-handshake from R1
 * timed from its start to R2's `initiation.accepted`.
 */
import { readFileSync } from 'node:fs';
import { events, type LogEvent } from './daemons.js';
import { connectRoamer, natRemap, pingOnce, type Lab } from './lab.js';
import { nsRun, waitFor, type LabProcess } from './netns.js';
import { REKEY_TIMEOUT_MS } from '../../src/wireguard/constants.js';

/** The node flags the shipped systemd unit and procd script run the daemon with. */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--max-old-space-size=32', '--v8-pool-size=1'];

/** One WireGuard retry: REKEY_TIMEOUT after the first initiation, with a 1 s margin for the lab. */
export const ONE_RETRY_MS = REKEY_TIMEOUT_MS + 1000;

/** Resident memory of a running process, KiB (NaN once it is gone). */
export function rssKiB(proc: LabProcess): number {
  try {
    const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

/** How many conntrack entries R2's namespace holds. */
export async function conntrackCount(lab: Lab): Promise<number> {
  const out = await nsRun(lab.r2.ns, 'conntrack', ['-C']);
  return Number(out.trim());
}

/**
 * R1 forgets its session (its NAT remaps too) and initiates again; resolves with the ms from
 * then to R2 accepting it, or undefined if not within `withinMs`.
 */
export async function rehandshake(lab: Lab, daemon: LabProcess, ipv6: boolean, withinMs: number): Promise<number | undefined> {
  const roamer = lab.roamers[0]!;
  await nsRun(roamer.ns, 'wg', ['set', roamer.wg, 'peer', lab.r2.publicKey, 'remove']);
  await natRemap(roamer);
  const seen = events(daemon, 'initiation.accepted').length;
  const startedAt = Date.now();
  await connectRoamer(lab, roamer, ipv6);
  const fromR1 = (e: LogEvent): boolean => e.peer === roamer.publicKey;
  await waitFor(() => {
    void pingOnce(roamer, 0.2); // R1 initiates on its first packet and retries every 5 s
    return events(daemon, 'initiation.accepted').slice(seen).some(fromR1);
  }, withinMs, 200);
  const accepted = events(daemon, 'initiation.accepted').slice(seen).find(fromR1);
  return typeof accepted?.time === 'string' ? Date.parse(accepted.time) - startedAt : undefined;
}
