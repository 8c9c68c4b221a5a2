/**
 * Conntrack expiry end to end, in the netns lab with R2's firewall closed to new inbound UDP:
 * the tunnel is idle (no keepalives either side), R2's conntrack entries for R1 are deleted, and
 * R1 pings. R1's data is dropped by the firewall; reconfig-wg, told by the kernel's destroy
 * event, captures it, hands it to WireGuard with a pinhole, and WireGuard answers: R2 sends
 * nothing first, and the answer comes long before R1's own re-handshake (15 s) would.
 * With a firewall that accepts lo and one that does not; IPv4 and IPv6. Needs root.
 */
import test from 'ava';
import { daemonArgs, events, startReconfigWg, waitForEvent } from '../scripts/lab/daemons.js';
import { firewallDrops, recordPackets, WG_PORT, withLab, type LabFirewall } from '../scripts/lab/lab.js';
import { ensureUp, expireConntrack, Pinger } from '../scripts/lab/scenarios.js';
import { waitFor } from '../scripts/lab/netns.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.serial.skip;

/** R1 re-handshakes after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s) of unanswered data; an answer well before that is ours. */
const BEFORE_REHANDSHAKE_MS = 8000;
/** Quiet before the entries go: no packet of the tunnel in flight. */
const IDLE_MS = 1500;

const cases: { firewall: LabFirewall; ipv6: boolean }[] = [
  { firewall: 'closed', ipv6: false },
  { firewall: 'closed-lo-accepted', ipv6: false },
  { firewall: 'closed', ipv6: true },
];

for (const { firewall, ipv6 } of cases) {
  const name = `${ipv6 ? 'IPv6' : 'IPv4'}, firewall ${firewall === 'closed' ? 'dropping on lo too' : 'accepting lo'}`;
  e2e(`${name}: after R2's conntrack entry is deleted, R1's next ping is answered without R2 sending first`, async (t) => {
    await withLab({ ipv6, firewall }, async (lab, dir) => {
      const roamer = lab.roamers[0]!;
      const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir, ['--log-level', 'debug']));
      t.truthy(await waitForEvent(daemon, 'listening', 5000), 'the daemon listens');
      await ensureUp(roamer);
      await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
      t.is(events(daemon, 'conntrack.events-unavailable').length, 0, 'destroy events are followed');

      // Who speaks first after the entries are gone: R1 (to the port) or R2 (from it).
      const recording = await recordPackets(lab, `udp port ${WG_PORT}`, 2);
      const dropsBefore = await firewallDrops(lab);
      const handshakesBefore = events(daemon, 'initiation.accepted').length;
      await expireConntrack(lab, roamer);
      const at = Date.now();
      const pinger = Pinger.start(lab, roamer, 12);
      try {
        const answered = await pinger.answeredAfter(at, BEFORE_REHANDSHAKE_MS);
        const [first, second] = await recording.next(2000);
        t.log(`answered ${answered === undefined ? 'never' : `${answered - at} ms after the entries went`}; first packets: ${first?.src}:${first?.srcPort} → ${first?.dstPort}, then ${second?.src}:${second?.srcPort} → ${second?.dstPort}`);
        t.not(answered, undefined, 'R1 is answered before its own re-handshake');
        t.is(first?.dstPort, WG_PORT, "R1's packet came first");
        t.is(first?.payload[0], 4, 'and it was data, not a new handshake');
        t.true((await firewallDrops(lab)) > dropsBefore, 'the firewall did drop it');
        t.true(await waitFor(() => events(daemon, 'data.reentered').length >= 1, 2000), 'reconfig-wg handed it over as a re-entry');
        t.is(events(daemon, 'initiation.accepted').length, handshakesBefore, 'no handshake was needed');
      } finally {
        await pinger.stop();
      }
      t.is(events(daemon, 'error').length, 0, JSON.stringify(events(daemon, 'error')));
      t.false(daemon.exited, 'the daemon survives');
    });
  });
}
