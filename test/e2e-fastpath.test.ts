/**
 * The fast path end to end, in the netns lab with R2's firewall closed to new inbound UDP and
 * strict reverse-path filtering: every roaming event recovers within about a second of R1's
 * first packet from its new address (the conntrack-expiry one, of R1's first re-handshake),
 * with a firewall that accepts lo and with one that does not, over IPv4 and IPv6. Needs root.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { events, startReconfigWg, waitForEvent } from '../scripts/lab/daemons.js';
import { createLab, endpointOf, type Lab, type LabFirewall } from '../scripts/lab/lab.js';
import { IDLE_KEEPALIVE_SECONDS, PING_INTERVAL_MS, runScenario, SCENARIO_TITLES, type Scenario } from '../scripts/lab/scenarios.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.serial.skip;

/** R1's re-handshake after unanswered data: KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (paper §6.1), plus jitter. */
const REHANDSHAKE_MS = 15_000 + 1_000;
/** What "within a second of R1's first packet" allows on a loaded 2-core test machine. */
const SLACK_MS = 1_000;

/** The bound for each scenario, from the event: R1's first packet comes that much later at most. */
const BOUND_MS: Readonly<Record<Scenario, number>> = {
  remap: PING_INTERVAL_MS + SLACK_MS,
  restart: PING_INTERVAL_MS + SLACK_MS,
  idle: IDLE_KEEPALIVE_SECONDS * 1000 + SLACK_MS,
  expiry: REHANDSHAKE_MS + SLACK_MS,
};

async function withDaemonLab(
  t: ExecutionContext,
  options: { firewall: LabFirewall; ipv6: boolean },
  fn: (lab: Lab, daemon: Awaited<ReturnType<typeof startReconfigWg>>) => Promise<void>,
): Promise<void> {
  const lab = await createLab({ ipv6: options.ipv6, firewall: options.firewall });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-fast-'));
  try {
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, ['-i', lab.r2.wg, '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 'state.json'), '--log-level', 'debug']);
    const delivery = await waitForEvent(daemon, 'delivery', 1000);
    t.log(`delivery: ${String(delivery?.msg)}`);
    await fn(lab, daemon);
    t.false(daemon.exited, 'the daemon survives');
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const ipv6 of [false, true]) {
  for (const firewall of ['closed-lo-accepted', 'closed'] as const) {
    const name = `${ipv6 ? 'IPv6' : 'IPv4'}, firewall ${firewall === 'closed' ? 'dropping on lo too' : 'accepting lo'}`;
    e2e(`${name}: every roaming event recovers within a second of R1's first packet`, async (t) => {
      await withDaemonLab(t, { firewall, ipv6 }, async (lab, daemon) => {
        const roamer = lab.roamers[0]!;
        const delivery = events(daemon, 'delivery')[0];
        t.is(delivery?.pinhole, firewall === 'closed', 'the self-test sees whether the firewall accepts lo');
        for (const scenario of ['remap', 'restart', 'idle', 'expiry'] as const) {
          const before = await endpointOf(lab, roamer);
          const took = await runScenario(lab, roamer, scenario, { ipv6, timeoutMs: BOUND_MS[scenario] + 5000 });
          t.log(`${SCENARIO_TITLES[scenario]}: ${took === undefined ? 'no recovery' : `${Math.round(took)} ms`}`);
          t.not(took, undefined, `${scenario}: the tunnel recovers`);
          t.true((took ?? Infinity) <= BOUND_MS[scenario], `${scenario}: ${String(took)} ms > ${BOUND_MS[scenario]} ms`);
          if (scenario !== 'expiry') t.not(await endpointOf(lab, roamer), before, `${scenario}: the endpoint moved`);
        }
        const how = events(daemon, 'endpoint.updated').map((e) => e.how);
        t.true(how.length >= 3 && how.every((h) => h === 'injected'), `changes: ${how.join(', ')}`);
        t.is(events(daemon, 'error').length, 0, JSON.stringify(events(daemon, 'error')));
      });
    });
  }
}
