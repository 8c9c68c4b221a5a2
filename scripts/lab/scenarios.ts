/**
 * The four roaming events of the fast path, each measured the same way whatever runs on R2
 * (WireGuard alone with its port open, reconfig-wg --no-inject, reconfig-wg): shared by the e2e
 * tests, the demo and `npm run bench`.
 *
 *   remap     R1's NAT forgets its mapping under a live session (R1 pings every 100 ms)
 *   restart   R1's WireGuard starts afresh, from a new NAT mapping (a new session)
 *   idle      R1 sends only keepalives, and its NAT remaps
 *   expiry    R2's conntrack entry for R1 expires, R1's address unchanged, no keepalives
 *
 * Each returns the milliseconds from the event until the tunnel works again (a ping answered,
 * or for `idle`, R2's endpoint at the new mapping), or undefined if it did not within the bound.
 */
import { connectRoamer, endpointOf, natRemap, R2_TUNNEL, WG_PORT, type Lab, type Roamer } from './lab.js';
import { nsRun, waitFor, type LabProcess } from './netns.js';

export type Scenario = 'remap' | 'restart' | 'idle' | 'expiry';
export const SCENARIOS: readonly Scenario[] = ['remap', 'restart', 'idle', 'expiry'];

export const SCENARIO_TITLES: Readonly<Record<Scenario, string>> = {
  remap: "R1's NAT remaps under a live session",
  restart: 'R1 restarts (new session)',
  idle: 'R1 idle (keepalives only), its NAT remaps',
  expiry: "R2's conntrack entry expires, R1's address unchanged",
};

/** The ping interval of a live session: R1's traffic, and how finely recovery is seen. */
export const PING_INTERVAL_MS = 100;
/** R1's persistent keepalive in the idle scenario. */
export const IDLE_KEEPALIVE_SECONDS = 2;

/** When a reply's request left R1: ping -D stamps the reply's arrival; its round trip is exact. */
const sentAt = (reply: { at: number; rttMs: number }): number => reply.at - reply.rttMs;

/**
 * A ping running in R1's namespace every 100 ms; resolves when a reply arrives whose request was
 * sent at or after `sinceMs` (wall clock), with that reply's time.
 */
export class Pinger {
  private readonly replies: { seq: number; at: number; rttMs: number }[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(private readonly proc: LabProcess) {
    proc.follow((line) => this.line(line));
    for (const line of proc.lines) this.line(line);
  }

  static start(lab: Lab, roamer: Roamer, seconds: number): Pinger {
    const count = Math.ceil((seconds * 1000) / PING_INTERVAL_MS);
    const proc = lab.scope.start(roamer.ns, 'ping', ['-n', '-D', '-i', String(PING_INTERVAL_MS / 1000), '-W', '1', '-c', String(count), R2_TUNNEL]);
    return new Pinger(proc);
  }

  private line(line: string): void {
    // [1700000000.123456] 64 bytes from 203.0.113.1: icmp_seq=12 ttl=64 time=0.4 ms
    const match = /^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+).* time=([\d.]+) ms/.exec(line);
    if (match === null) return;
    this.replies.push({ seq: Number(match[2]), at: Number(match[1]) * 1000, rttMs: Number(match[3]) });
    for (const wake of this.waiters) wake();
  }

  /** The first reply whose own round trip began at or after `sinceMs` (sent = received - RTT). */
  async answeredAfter(sinceMs: number, timeoutMs: number): Promise<number | undefined> {
    const find = (): number | undefined => this.replies.find((r) => sentAt(r) >= sinceMs)?.at;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = find();
      if (at !== undefined) return at;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 200));
        this.waiters.add(wake);
      });
    }
  }

  /**
   * From R1's first packet after `sinceMs` to its answer: the requests sent after the last one
   * answered that was sent before `sinceMs` that went unanswered, 100 ms each, plus the round
   * trip of the first one sent at or after `sinceMs` that was answered. Requests are told apart
   * by when they were sent (the reply's time less its round trip), not when their reply came: a
   * reply that arrives just after `sinceMs` may answer a request from before it, or one sent
   * just after. Undefined before an answer.
   */
  fromFirstPacket(sinceMs: number): { ms: number; unanswered: number } | undefined {
    const before = this.replies.filter((r) => sentAt(r) < sinceMs).at(-1);
    const first = this.replies.find((r) => sentAt(r) >= sinceMs);
    if (first === undefined) return undefined;
    // No answer before: every request from the first one on counts.
    const unanswered = Math.max(0, first.seq - (before?.seq ?? 0) - 1);
    return { ms: unanswered * PING_INTERVAL_MS + first.rttMs, unanswered };
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}

/** Recreates R1's WireGuard interface from nothing (key, address, peer), as a reboot would. */
export async function restartRoamer(lab: Lab, roamer: Roamer, ipv6: boolean): Promise<void> {
  await nsRun(roamer.ns, 'wg', ['set', roamer.wg, 'peer', lab.r2.publicKey, 'remove']);
  await natRemap(roamer);
  await connectRoamer(lab, roamer, ipv6);
}

/**
 * Forgets R2's conntrack entries for one roamer's WireGuard traffic, whichever side started it:
 * what expiry does after minutes of silence. Other roamers' entries stay.
 */
export async function expireConntrack(lab: Lab, roamer: Roamer): Promise<void> {
  const port = String(WG_PORT);
  for (const [family, address] of [['ipv4', roamer.natV4], ['ipv6', roamer.natV6]] as const) {
    for (const match of [['-s', address, '--orig-port-dst', port], ['-d', address, '--orig-port-src', port]]) {
      await nsRun(lab.r2.ns, 'conntrack', ['-D', '-f', family, '-p', 'udp', ...match]).catch((error: Error) => {
        if (!/flow entries|0 flow/.test(error.message)) throw error;
      });
    }
  }
}

async function setKeepalive(lab: Lab, roamer: Roamer, seconds: number): Promise<void> {
  await nsRun(roamer.ns, 'wg', ['set', roamer.wg, 'peer', lab.r2.publicKey, 'persistent-keepalive', seconds === 0 ? 'off' : String(seconds)]);
}

/** Brings the tunnel up (a ping answered) before a scenario starts; throws if it cannot. */
export async function ensureUp(roamer: Roamer, timeoutMs = 20_000): Promise<void> {
  const up = await waitFor(async () => {
    try {
      await nsRun(roamer.ns, 'ping', ['-n', '-q', '-c', '1', '-W', '1', R2_TUNNEL]);
      return true;
    } catch {
      return false;
    }
  }, timeoutMs, 0);
  if (!up) throw new Error(`the tunnel of roamer ${roamer.index} did not come up`);
}

export interface ScenarioOptions {
  readonly ipv6?: boolean;
  /** the longest wait for recovery, ms */
  readonly timeoutMs: number;
  /** how long the tunnel may take to come up before the event (default 20 s) */
  readonly upTimeoutMs?: number;
  /** for the events measured with pings: the time from R1's first packet after the event */
  readonly onFirstPacket?: (detail: { ms: number; unanswered: number }) => void;
}

/** Runs one scenario on a working tunnel; returns ms from the event to recovery, or undefined. */
export async function runScenario(lab: Lab, roamer: Roamer, scenario: Scenario, options: ScenarioOptions): Promise<number | undefined> {
  const ipv6 = options.ipv6 ?? false;
  await ensureUp(roamer, options.upTimeoutMs);
  if (scenario === 'idle') {
    await setKeepalive(lab, roamer, IDLE_KEEPALIVE_SECONDS);
    try {
      const before = await endpointOf(lab, roamer);
      await natRemap(roamer);
      // From when the mapping is gone: the command that removes it takes its own time.
      const at = Date.now();
      let movedAt: number | undefined;
      await waitFor(async () => {
        const now = await endpointOf(lab, roamer);
        if (now !== undefined && now !== before) movedAt = Date.now();
        return movedAt !== undefined;
      }, options.timeoutMs, 20);
      return movedAt === undefined ? undefined : movedAt - at;
    } finally {
      await setKeepalive(lab, roamer, 0);
    }
  }
  const seconds = Math.ceil(options.timeoutMs / 1000) + 3;
  if (scenario === 'expiry') {
    // Silence first, so nothing refreshes the entry, then the entry goes.
    await expireConntrack(lab, roamer);
    const pinger = Pinger.start(lab, roamer, seconds);
    try {
      return await recovery(pinger, Date.now(), options);
    } finally {
      await pinger.stop();
    }
  }
  const pinger = Pinger.start(lab, roamer, seconds);
  try {
    const live = await pinger.answeredAfter(Date.now() - 1000, 5000);
    if (live === undefined && scenario === 'remap') throw new Error('the session was not live before the remap');
    if (scenario === 'remap') await natRemap(roamer);
    else await restartRoamer(lab, roamer, ipv6);
    // From when the event is complete: the commands that make it take their own time.
    return await recovery(pinger, Date.now(), options);
  } finally {
    await pinger.stop();
  }
}

/** ms from `at` to the first answered ping after it (and the detail from R1's first packet). */
async function recovery(pinger: Pinger, at: number, options: ScenarioOptions): Promise<number | undefined> {
  const answered = await pinger.answeredAfter(at, options.timeoutMs);
  if (answered === undefined) return undefined;
  const detail = pinger.fromFirstPacket(at);
  if (detail !== undefined) options.onFirstPacket?.(detail);
  return answered - at;
}
