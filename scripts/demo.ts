/**
 * `sudo npm run demo`: the whole story in network namespaces on this machine, with the real
 * commands, narrated as a timeline: R1 roaming behind R2's closed firewall (steps 1–4), then
 * two roaming routers going direct through R2's registry (step 5, a lab of its own). Exits 0
 * only if every step did what it says.
 *
 *   --keep   leave the lab up afterwards and print the commands to poke at it
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { findReconfig, reconfigPidFile } from '../src/knock/rearm.js';
import { defaultStateFile, sessionsFileFor } from '../src/reconfig/options.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePrivateKey } from '../src/wireguard/keys.js';
import { KNOCK_CLI, RECONFIG_CLI, sendUdp } from './lab/daemons.js';
import { createInitiation } from './lab/initiator.js';
import {
  createLab,
  endpointOf,
  firewallDrops,
  labWireGuardFromEnv,
  natRemap,
  pingOnce,
  pingUntilAnswered,
  R2_V4,
  recordInitiation,
  WG_PORT,
  type Lab,
} from './lab/lab.js';
import { nsRun, waitFor, type LabProcess } from './lab/netns.js';
import { runScenario } from './lab/scenarios.js';
import { connectSpokes, createMeshLab, hubTransfer, HUB_TUNNEL, ping, pingSeries, startHub, startMeshClient, type MeshLab } from './lab/mesh-lab.js';

interface Step {
  readonly title: string;
  readonly outcome: string;
  readonly ok: boolean;
  readonly ms: number;
}

const KNOCK_PORT = 19000;
const argv = process.argv.slice(2);
if (argv.includes('-h') || argv.includes('--help')) {
  process.stdout.write('usage: npm run demo [-- --keep]\n  --keep  leave the lab up afterwards, with the commands to poke at it\n');
  process.exit(0);
}
const unknown = argv.filter((a) => a !== '--keep');
if (unknown.length > 0) {
  process.stderr.write(`demo: unknown argument ${unknown[0] ?? ''}; try --help\n`);
  process.exit(2);
}
const keep = argv.includes('--keep');
if (process.getuid?.() !== 0) {
  process.stderr.write('demo: the lab needs root (network namespaces, nftables): sudo npm run demo\n');
  process.exit(2);
}

const start = performance.now();
const stamp = (): string => `[${((performance.now() - start) / 1000).toFixed(1).padStart(5)}s]`;
const say = (text: string): void => void process.stdout.write(`${stamp()} ${text}\n`);
const show = (name: string, proc: LabProcess): void => proc.follow((line) => process.stdout.write(`         ${name} │ ${line}\n`));
const steps: Step[] = [];

async function step(title: string, run: () => Promise<{ ok: boolean; outcome: string }>): Promise<boolean> {
  say(`── ${title}`);
  const began = performance.now();
  let result: { ok: boolean; outcome: string };
  try {
    result = await run();
  } catch (error) {
    result = { ok: false, outcome: `failed: ${(error as Error).message}` };
  }
  const ms = performance.now() - began;
  steps.push({ title, ...result, ms });
  say(`${result.ok ? '✔' : '✘'} ${result.outcome}`);
  return result.ok;
}

function table(rows: readonly Step[]): string {
  const header = ['', 'step', 'what happened', 'took'];
  const body = rows.map((r) => [r.ok ? '✔' : '✘', r.title, r.outcome, `${(r.ms / 1000).toFixed(2)} s`]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => (row[i] ?? '').length)));
  const line = (row: readonly string[]): string => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ');
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

async function story(lab: Lab, dir: string): Promise<void> {
  void dir;
  const roamer = lab.roamers[0]!;
  const wg = lab.r2.wg;
  // Default pid and state files, as a user would have them: port-knock finds reconfig-wg there.
  const reconfigArgs = ['-i', wg, '--log-format', 'pretty'];
  say(`R1 ${roamer.ns} (198.51.100.2) → NAT ${roamer.natNs} (${roamer.natV4}) → R2 ${lab.r2.ns} (${R2_V4}); attacker ${lab.attacker.ns}`);

  const reconfig = lab.scope.start(lab.r2.ns, process.execPath, [RECONFIG_CLI, ...reconfigArgs]);
  show('reconfig-wg', reconfig);
  const knock = lab.scope.start(lab.r2.ns, process.execPath, [
    KNOCK_CLI, '-p', String(KNOCK_PORT), '-i', wg, '--cooldown', '5', '--log-format', 'pretty', '--pid-file', join(dir, 'port-knock.pid'),
  ]);
  show('port-knock ', knock);
  await waitFor(() => reconfig.lines.some((l) => l.includes('listening')) && knock.lines.some((l) => l.includes('listening')), 10_000);
  const recording = await recordInitiation(lab);

  let endpoint: string | undefined;
  await step('1. R1 connects through R2\'s closed firewall', async () => {
    const dropsBefore = await firewallDrops(lab);
    say(`R2's firewall has dropped ${dropsBefore} new WireGuard packets; R1's peer endpoint on R2: ${(await endpointOf(lab, roamer)) ?? '(none)'}`);
    say('R1 pings R2 through the tunnel');
    const took = await pingUntilAnswered(roamer, 15_000);
    endpoint = await endpointOf(lab, roamer);
    const drops = await firewallDrops(lab);
    say(`firewall drops now ${drops}; endpoint now ${endpoint ?? '(none)'}`);
    return {
      ok: took !== undefined && drops > dropsBefore && endpoint?.startsWith(`${roamer.natV4}:`) === true,
      outcome: took === undefined ? 'no answer' : `tunnel up in ${took.toFixed(0)} ms though the firewall dropped the initiation; endpoint ${endpoint ?? '?'}`,
    };
  });

  await step('2. R1\'s NAT remaps under a live session; the endpoint follows', async () => {
    say('R1 pings every 100 ms; its NAT forgets every mapping, so its next packet comes from a new port, which the firewall drops');
    const took = await runScenario(lab, roamer, 'remap', { timeoutMs: 20_000 });
    const moved = await endpointOf(lab, roamer);
    const ok = took !== undefined && moved !== endpoint && moved?.startsWith(`${roamer.natV4}:`) === true;
    const outcome = ok
      ? `endpoint ${endpoint ?? '?'} → ${moved ?? '?'}: reconfig-wg handed R1's first data packet from there to WireGuard; tunnel back ${took!.toFixed(0)} ms after the remap`
      : 'the tunnel did not come back';
    endpoint = moved;
    return { ok, outcome };
  });

  await step('3. An attacker replays R1\'s initiation and forges others', async () => {
    const genuine = await recording.next(1000);
    if (genuine === undefined) return { ok: false, outcome: 'no initiation was recorded to replay' };
    const stranger = createInitiation({ initiatorPrivateKey: generatePrivateKey(), responderPublicKey: Buffer.from(lab.r2.publicKey, 'base64') });
    const tampered = Buffer.from(genuine);
    tampered[60] = tampered[60]! ^ 1;
    endpoint = await endpointOf(lab, roamer);
    await sendUdp(lab.attacker.ns, R2_V4, WG_PORT, [genuine, stranger, tampered]);
    say('sent: the recorded genuine initiation, one signed with an unknown key, one tampered');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = await endpointOf(lab, roamer);
    const alive = !reconfig.exited && (await pingOnce(roamer, 2));
    return { ok: after === endpoint && alive, outcome: after === endpoint ? `endpoint unchanged (${after ?? '?'}); tunnel still up` : `endpoint moved to ${after ?? '?'}` };
  });

  await step('4. One-shot mode: a traceroute knock re-arms reconfig-wg', async () => {
    await nsRun(lab.r2.ns, process.execPath, [RECONFIG_CLI, '-k', '-i', wg]);
    say('reconfig-wg stopped (-k); nothing follows R1 now');
    await natRemap(roamer);
    const down = !(await pingOnce(roamer, 1));
    say(`NAT remapped: the tunnel is ${down ? 'down' : 'still up'}; R1 runs: traceroute -p ${KNOCK_PORT} ${R2_V4}`);
    await nsRun(roamer.ns, 'traceroute', ['-n', '-q', '1', '-w', '1', '-m', '4', '-p', String(KNOCK_PORT), R2_V4]);
    const took = await pingUntilAnswered(roamer, 40_000);
    const moved = await endpointOf(lab, roamer);
    const onceExited = await waitFor(() => !existsSync(reconfigPidFile(wg)), 5000);
    const ok = down && took !== undefined && moved !== endpoint && onceExited;
    return { ok, outcome: ok ? `knock → reconfig-wg --once → endpoint ${moved ?? '?'}, tunnel back, reconfig-wg exited` : 'the knock did not bring the tunnel back' };
  });
}

/** Step 5, in a lab of its own: two roaming routers behind two NATs, and R2 as their hub. */
async function meshStory(mesh: MeshLab): Promise<void> {
  const [a, b] = mesh.spokes;
  if (a === undefined || b === undefined) throw new Error('the mesh lab has two spokes');
  await step('5. Two roaming routers learn each other\'s endpoint from R2 and talk directly', async () => {
    say(`spokes ${a.ns} and ${b.ns}, each behind its own NAT that drops new inbound; hub ${mesh.hub.ns} runs reconfig-wg --registry ${HUB_TUNNEL}`);
    await startHub(mesh);
    await connectSpokes(mesh);
    const before = await ping(a, b.tunnel);
    say(`before: ${a.tunnel} → ${b.tunnel} goes through R2 (TTL ${before.ttl ?? '?'}); each spoke now runs: reconfig-wg mesh -i ${a.wg} --registry ${HUB_TUNNEL}`);
    const startedAt = Date.now();
    for (const spoke of [a, b]) {
      const client = await startMeshClient(mesh, spoke);
      client.follow((line) => {
        const event = /"event":"(mesh\.[a-z.-]+)"/.exec(line)?.[1];
        if (event !== undefined && event !== 'mesh.started') process.stdout.write(`         mesh ${spoke.index}     │ ${event}\n`);
      });
    }
    const direct = await waitFor(async () => (await ping(a, b.tunnel)).ttl === 64, 20_000, 100);
    const tookMs = Date.now() - startedAt;
    const hubBefore = await hubTransfer(mesh, a);
    const series = await pingSeries(a, b.tunnel, 20, 0.1);
    const hubAfter = await hubTransfer(mesh, a);
    const hubBytes = hubAfter[0] - hubBefore[0];
    const allDirect = series.replies.length === 20 && series.replies.every((reply) => reply.ttl === 64);
    say(`20 pings spoke to spoke: ${series.replies.length} answered, TTL ${[...new Set(series.replies.map((r) => r.ttl))].join('/')}; R2 received ${hubBytes} bytes from ${a.ns} meanwhile`);
    const ok = before.ttl === 63 && direct && allDirect && hubBytes < 20 * 116;
    return {
      ok,
      outcome: ok ? `direct ${(tookMs / 1000).toFixed(1)} s after the clients started: TTL 64 instead of 63, R2 carries none of it` : 'the path did not become direct',
    };
  });
}

async function main(): Promise<number> {
  const wireguard = labWireGuardFromEnv() === 'kernel' ? "the kernel's WireGuard" : 'wireguard-go';
  say(`building the lab: R1 behind a NAT, R2 with a closed firewall, an attacker; real ${wireguard} at both ends`);
  const lab = await createLab();
  const dir = mkdtempSync(join(tmpdir(), 'rwg-demo-'));
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    // A reconfig-wg that port-knock started is known only by its pid file: stop it by that pid.
    const pidFile = reconfigPidFile(lab.r2.wg);
    const found = findReconfig(pidFile);
    if (found.kind === 'running') process.kill(found.pid, 'SIGTERM');
    await waitFor(() => findReconfig(pidFile).kind === 'absent', 5000);
    await lab.close();
    rmSync(defaultStateFile(lab.r2.wg), { force: true });
    rmSync(sessionsFileFor(pidFile), { force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  const verdict = (): boolean => steps.length === 5 && steps.every((s) => s.ok);
  const report = (): number => {
    process.stdout.write(`${verdict() ? 'demo: every step did what it says' : 'demo: some step failed'}\n`);
    return verdict() ? 0 : 1;
  };
  let kept = false;
  const interrupted = (): void => {
    say(kept ? 'Ctrl-C: removing the lab' : 'interrupted: removing the lab');
    // After --keep, Ctrl-C is the normal end: the exit status is the story's.
    void cleanup().then(() => process.exit(kept ? report() : 130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    await story(lab, dir);
    say('building a second lab: two roaming routers behind two NATs, with R2 as their hub');
    const mesh = await createMeshLab({ nats: ['eim', 'eim'] });
    try {
      await meshStory(mesh);
    } finally {
      await mesh.close();
    }
  } finally {
    process.stdout.write(`\n${table(steps)}\n\n`);
    if (keep) {
      say(`--keep: the lab stays up until you press Ctrl-C. Try:
    ip netns exec ${lab.r2.ns} wg show ${lab.r2.wg}
    ip netns exec ${lab.roamers[0]!.ns} ping 203.0.113.1
    ip netns exec ${lab.r2.ns} nft list ruleset
    ip netns exec ${lab.roamers[0]!.ns} traceroute -p ${KNOCK_PORT} ${R2_V4}`);
      kept = true;
      await new Promise(() => undefined);
    }
    await cleanup();
  }
  return report();
}

process.exitCode = await main();
