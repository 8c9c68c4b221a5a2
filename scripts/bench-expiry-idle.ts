/**
 * What following conntrack expiry costs on an idle link: how many of R1's data packets reach
 * reconfig-wg (user space) while the tunnel carries only R1's persistent keepalives. Needs root.
 *
 *   node dist/scripts/bench-expiry-idle.js [SECONDS] [KEEPALIVE]     (defaults 150 and 25)
 *
 * One lab (R2's firewall closed, no keepalive on R2), two phases of SECONDS each:
 *   1. the kernel's UDP timeouts as they are (30 s unreplied, 120 s stream): a keepalive every
 *      KEEPALIVE s keeps R2's entry alive, so none should reach user space;
 *   2. nf_conntrack_udp_timeout and nf_conntrack_udp_timeout_stream shortened in R2's
 *      namespace to less than KEEPALIVE: every keepalive finds the entry gone (the worst case).
 * Per phase: keepalives R1 sent that reached R2's wire, R1's data packets that reconfig-wg saw
 * (handed over as a re-entry, or counted), its filter rebuilds, and that rate per hour.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonArgs, events, startReconfigWg } from './lab/daemons.js';
import { createLab, recordPackets, WG_PORT } from './lab/lab.js';
import { nsRun } from './lab/netns.js';
import { ensureUp } from './lab/scenarios.js';

const seconds = Number(process.argv[2] ?? 150);
const keepalive = Number(process.argv[3] ?? 25);
if (!(seconds >= 10 && seconds <= 1800) || !(keepalive >= 2 && keepalive <= 120)) {
  process.stderr.write('usage: bench-expiry-idle [SECONDS 10..1800] [KEEPALIVE 2..120]\n');
  process.exit(2);
}
const SHORT_TIMEOUT = Math.max(1, Math.floor(keepalive / 2));

const lab = await createLab({ firewall: 'closed' });
const dir = mkdtempSync(join(tmpdir(), 'rwg-expiry-idle-'));
try {
  const roamer = lab.roamers[0]!;
  const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir, ['--log-level', 'debug']));
  await ensureUp(roamer);
  await nsRun(roamer.ns, 'wg', ['set', roamer.wg, 'peer', lab.r2.publicKey, 'persistent-keepalive', String(keepalive)]);
  const sysctl = (name: string, value?: number): Promise<string> =>
    nsRun(lab.r2.ns, 'sysctl', value === undefined ? ['-n', `net.netfilter.${name}`] : ['-w', `net.netfilter.${name}=${value}`]);
  process.stdout.write(
    `expiry on an idle link: R1 keepalive ${keepalive} s, R2 none; ${seconds} s per phase; nf_conntrack_events ${(await sysctl('nf_conntrack_events')).trim()}\n`,
  );
  const fromR1 = (e: { src?: unknown }): boolean => String(e.src).startsWith(`${roamer.natV4}:`);

  for (const phase of ['default timeouts', 'shortened timeouts'] as const) {
    if (phase === 'shortened timeouts') {
      await sysctl('nf_conntrack_udp_timeout', SHORT_TIMEOUT);
      await sysctl('nf_conntrack_udp_timeout_stream', SHORT_TIMEOUT);
    }
    const timeouts = `${(await sysctl('nf_conntrack_udp_timeout')).trim()} s / ${(await sysctl('nf_conntrack_udp_timeout_stream')).trim()} s`;
    const mark = daemon.lines.length;
    // R1's keepalives on R2's wire (the 32-byte transport message: UDP length 40).
    const wire = await recordPackets(lab, `udp dst port ${WG_PORT} and udp[8] = 4 and udp[4:2] = 40`, 10_000);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const keepalives = (await wire.next(0)).length;
    const seen = daemon.lines.slice(mark).flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
    const reentered = seen.filter((e) => e.event === 'data.reentered' && fromR1(e)).length;
    const ignored = seen.filter((e) => e.event === 'data.ignored' && fromR1(e)).length;
    const rebuilds = seen.filter((e) => e.event === 'filter.updated').length;
    const perHour = ((reentered + ignored) * 3600) / seconds;
    process.stdout.write(
      `  ${phase} (udp ${timeouts}): ${keepalives} keepalives on R2's wire; reconfig-wg saw ${reentered + ignored} of R1's data packets (${reentered} re-entries, ${ignored} counted), ${rebuilds} filter rebuilds → ${perHour.toFixed(0)} per hour\n`,
    );
  }
  process.stdout.write(`  daemon errors: ${events(daemon, 'error').length}\n`);
} finally {
  await lab.close();
  rmSync(dir, { recursive: true, force: true });
}
