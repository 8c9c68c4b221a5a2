/**
 * The daemons with only the capabilities their services grant (CAP_NET_RAW, CAP_NET_ADMIN)
 * and no way to gain more (no_new_privs), as the systemd units run them: setpriv sets the
 * same bounding set, ambient and inheritable sets as CapabilityBoundingSet=,
 * AmbientCapabilities= and NoNewPrivileges= do. systemd is not PID 1 here, so the units
 * themselves cannot run; this runs the real commands the same way, in the lab. Needs root.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { events, KNOCK_CLI, RECONFIG_CLI, waitForEvent } from '../scripts/lab/daemons.js';
import { connectRoamer, createLab, pingUntilAnswered, R2_V4 } from '../scripts/lab/lab.js';
import { nsRun } from '../scripts/lab/netns.js';

const isRoot = process.getuid?.() === 0;
const hasSetpriv = (await execa('setpriv', ['--version'], { reject: false })).exitCode === 0;
const e2e = isRoot && hasSetpriv ? test.serial : test.serial.skip;

const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;
const SERVICE_CAPS = (1n << BigInt(CAP_NET_ADMIN)) | (1n << BigInt(CAP_NET_RAW));

/** setpriv as the units restrict the daemons: these capabilities only, and no new privileges. */
function restricted(caps: string): string[] {
  return ['setpriv', `--bounding-set=-all,${caps}`, `--inh-caps=-all,${caps}`, `--ambient-caps=-all,${caps}`, '--no-new-privs', '--'];
}

function capabilities(pid: number): { effective: bigint; bounding: bigint; noNewPrivs: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): string => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1] ?? '';
  return { effective: BigInt(`0x${field('CapEff')}`), bounding: BigInt(`0x${field('CapBnd')}`), noNewPrivs: field('NoNewPrivs') };
}

e2e('with only CAP_NET_RAW and CAP_NET_ADMIN, reconfig-wg captures, verifies and sets the endpoint with wg, and port-knock re-arms it', async (t) => {
  const lab = await createLab({ roamers: 1, connect: false });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-caps-'));
  try {
    const roamer = lab.roamers[0]!;
    const pidFile = join(dir, 'reconfig.pid');
    const caps = '+net_raw,+net_admin';
    const reconfig = lab.scope.start(lab.r2.ns, restricted(caps)[0]!, [...restricted(caps).slice(1), process.execPath, RECONFIG_CLI, '--log-format', 'json', '-i', lab.r2.wg, '--pid-file', pidFile, '--state-file', join(dir, 'state.json')]);
    t.truthy(await waitForEvent(reconfig, 'listening', 15_000), reconfig.lines.join('\n'));
    const held = capabilities(reconfig.pid!);
    t.is(held.bounding, SERVICE_CAPS, 'bounding set: the two capabilities');
    t.is(held.effective, SERVICE_CAPS, 'effective: the two capabilities');
    t.is(held.noNewPrivs, '1');

    await connectRoamer(lab, roamer, false);
    t.not(await pingUntilAnswered(roamer, 15_000), undefined, 'the tunnel comes up through the closed firewall');
    const updated = await waitForEvent(reconfig, 'endpoint.updated', 2000);
    t.is(updated?.interface, lab.r2.wg);
    t.true(String(updated?.to).startsWith(`${roamer.natV4}:`), `endpoint set to R1's NAT address: ${String(updated?.to)}`);
    t.is(updated?.how, 'injected', 'the initiation was re-sent through the raw socket (and a conntrack pinhole where needed)');
    t.is(events(reconfig, 'error').length, 0);

    const knock = lab.scope.start(lab.r2.ns, restricted(caps)[0]!, [...restricted(caps).slice(1), process.execPath, KNOCK_CLI, '--log-format', 'json', '-i', lab.r2.wg, '--pid-file', join(dir, 'knock.pid'), '--reconfig-pid-file', pidFile]);
    t.truthy(await waitForEvent(knock, 'listening', 15_000), knock.lines.join('\n'));
    await nsRun(roamer.ns, 'traceroute', ['-n', '-q', '1', '-w', '1', '-p', '19000', R2_V4]).catch(() => '');
    t.like(await waitForEvent(knock, 'knock', 5000), { action: 'rearm', pid: reconfig.pid });
    t.truthy(await waitForEvent(reconfig, 'rearm', 5000), 'SIGUSR1 reached reconfig-wg');
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

e2e('without CAP_NET_RAW the capture is refused with a hint at the service, not at setcap on node, and exit 2', async (t) => {
  const lab = await createLab({ roamers: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'rwg-caps-'));
  try {
    const result = await execa(
      'ip',
      ['netns', 'exec', lab.r2.ns, ...restricted('+net_admin'), process.execPath, RECONFIG_CLI, '--log-format', 'json', '-i', lab.r2.wg, '--pid-file', join(dir, 'pid'), '--state-file', join(dir, 's.json')],
      { reject: false, timeout: 20_000 },
    );
    t.is(result.exitCode, 2, result.stderr);
    t.regex(result.stderr, /Not allowed to capture .* as its service, which grants CAP_NET_RAW and CAP_NET_ADMIN to it alone .* Do not setcap the node binary/);
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
