/**
 * reconfig-wg end to end, in the netns lab: real wireguard-go at both ends, a real NAT in
 * front of each roamer, R2's real firewall closed to new inbound WireGuard packets, and the
 * real reconfig-wg command running inside R2's namespace. Needs root.
 */
import test from 'ava';
import {
  ATTACKER_V4,
  ATTACKER_V6,
  endpointOf,
  firewallDrops,
  natRemap,
  pingOnce,
  pingUntilAnswered,
  R2_V4,
  R2_V6,
  recordInitiation,
  recreateServer,
  connectRoamer,
  WG_PORT,
  withLab,
} from '../scripts/lab/lab.js';
import { daemonArgs, events, sendUdp, startReconfigWg, waitForEvent } from '../scripts/lab/daemons.js';
import { waitFor } from '../scripts/lab/netns.js';
import { generatePrivateKey } from '../src/wireguard/keys.js';
import { createInitiation } from '../scripts/lab/initiator.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.serial.skip;

e2e('without reconfig-wg the tunnel never comes up: the firewall drops every initiation', async (t) => {
  await withLab({}, async (lab) => {
    const roamer = lab.roamers[0]!;
    const answered = await pingUntilAnswered(roamer, 7000);
    t.is(answered, undefined);
    t.true((await firewallDrops(lab)) > 0);
    t.is(await endpointOf(lab, roamer), undefined);
  });
});

e2e('reconfig-wg brings the tunnel up through the closed firewall, and follows a NAT remap', async (t) => {
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir));
    const firstPing = await pingUntilAnswered(roamer, 15_000, 0.2);
    const answeredAt = Date.now();
    t.not(firstPing, undefined, 'ping over the tunnel is answered');
    const updated = await waitForEvent(daemon, 'endpoint.updated', 1000);
    t.truthy(updated);
    t.is(updated?.peer, roamer.publicKey);
    t.is(updated?.interface, lab.r2.wg);
    t.regex(String(updated?.to), new RegExp(`^${roamer.natV4.replaceAll('.', '\\.')}:\\d+$`));
    t.is(await endpointOf(lab, roamer), updated?.to as string);
    t.true((await firewallDrops(lab)) > 0, 'the initiation was dropped by the firewall, yet seen');
    t.log(
      `initiation reached R2 → endpoint set: ${String(updated?.latencyMs)} ms; ` +
        `endpoint set → first ping answered: ${answeredAt - Date.parse(String(updated?.setAt))} ms (pings wait 200 ms each)`,
    );

    // The NAT forgets its mapping: R1's packets now leave from a new port, which the firewall
    // treats as new and drops, until R1 re-handshakes (after 15 s of unanswered data).
    await natRemap(roamer);
    const before = updated?.to as string;
    const recovered = await pingUntilAnswered(roamer, 40_000);
    t.not(recovered, undefined, 'the tunnel recovers after the remap');
    const after = await endpointOf(lab, roamer);
    t.not(after, before, 'the endpoint moved to the new mapping');
    t.regex(String(after), new RegExp(`^${roamer.natV4.replaceAll('.', '\\.')}:\\d+$`));
    // Told once confirmed with wg show, which may come a moment after the first answered ping.
    t.truthy(await waitFor(() => events(daemon, 'endpoint.updated').length >= 2, 3000));
    t.like(events(daemon, 'endpoint.updated').at(-1), { to: after });
    t.false(daemon.exited);
  });
});

e2e('over IPv6 transport the endpoint is set as [address]:port, the tunnel comes up and follows a NAT remap', async (t) => {
  await withLab({ ipv6: true }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir));
    t.not(await pingUntilAnswered(roamer, 15_000), undefined);
    const updated = await waitForEvent(daemon, 'endpoint.updated', 1000);
    const bracketed = new RegExp(`^\\[${roamer.natV6}\\]:\\d+$`);
    t.regex(String(updated?.to), bracketed);
    t.is(await endpointOf(lab, roamer), updated?.to as string);

    await natRemap(roamer);
    t.not(await pingUntilAnswered(roamer, 40_000), undefined, 'the tunnel recovers after the remap');
    const after = await endpointOf(lab, roamer);
    t.regex(String(after), bracketed);
    t.not(after, updated?.to as string);
  });
});

e2e('two roaming peers behind different NATs each get their own endpoint', async (t) => {
  await withLab({ roamers: 2 }, async (lab, dir) => {
    const [a, b] = [lab.roamers[0]!, lab.roamers[1]!];
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir));
    const [pa, pb] = await Promise.all([pingUntilAnswered(a, 15_000), pingUntilAnswered(b, 15_000)]);
    t.not(pa, undefined);
    t.not(pb, undefined);
    t.true((await endpointOf(lab, a))?.startsWith(`${a.natV4}:`));
    t.true((await endpointOf(lab, b))?.startsWith(`${b.natV4}:`));
    // Each change is told once confirmed with wg show, which may come just after the first answer.
    await waitFor(() => new Set(events(daemon, 'endpoint.updated').map((e) => e.peer)).size >= 2, 3000);
    const peers = events(daemon, 'endpoint.updated').map((e) => e.peer);
    // ava compares Sets in insertion order, and the two roamers race: compare sorted.
    t.deepEqual([...new Set(peers)].sort(), [a.publicKey, b.publicKey].sort());

    // Moving one peer leaves the other alone.
    const bBefore = await endpointOf(lab, b);
    await natRemap(a);
    t.not(await pingUntilAnswered(a, 40_000), undefined);
    t.is(await endpointOf(lab, b), bBefore);
  });
});

e2e('replayed and forged initiations from a third host move nothing, also after a restart', async (t) => {
  await withLab({}, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    // Record R1's real initiation as it arrives at R2 (an attacker on the path could do the same).
    const recording = await recordInitiation(lab);
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir, ['--log-level', 'debug']));
    t.not(await pingUntilAnswered(roamer, 15_000), undefined);
    const genuine = await recording.next(5000);
    if (genuine === undefined) throw new Error('no initiation was recorded');
    t.is(genuine.length, 148);
    const endpoint = await endpointOf(lab, roamer);

    const stranger = createInitiation({ initiatorPrivateKey: generatePrivateKey(), responderPublicKey: Buffer.from(lab.r2.publicKey, 'base64') });
    const tampered = Buffer.from(genuine);
    tampered[60] = tampered[60]! ^ 0x01;
    const garbage = Buffer.alloc(148, 0xab);
    garbage.writeUInt32LE(1, 0);
    await sendUdp(lab.attacker.ns, R2_V4, WG_PORT, [genuine, genuine, stranger, tampered, garbage]);
    await sendUdp(lab.attacker.ns, R2_V6, WG_PORT, [genuine]);

    const reasonsSeen = async (): Promise<Set<unknown>> => new Set(events(daemon, 'initiation.ignored').map((e) => e.reason));
    const fromAttacker = (e: Record<string, unknown>): boolean => String(e.src).startsWith(ATTACKER_V4) || String(e.src).startsWith(`[${ATTACKER_V6}]`);
    const replays = (): number => events(daemon, 'initiation.ignored').filter((e) => e.reason === 'replay' && fromAttacker(e)).length;
    // The capture hands packets over in blocks (up to 10 ms late): wait for the IPv6 copy too.
    t.true(await waitFor(async () => {
      const seen = await reasonsSeen();
      return seen.has('replay') && seen.has('unknown-peer') && seen.has('bad-mac1') && replays() >= 3;
    }, 5000), `ignored reasons: ${[...(await reasonsSeen())].join(', ')}`);
    t.is(replays(), 3);
    t.is(await endpointOf(lab, roamer), endpoint, 'the endpoint did not move');
    t.is(events(daemon, 'endpoint.updated').length, 1);
    t.false(daemon.exited, 'the daemon survives');
    t.true(await pingOnce(roamer, 2), 'the tunnel still works');

    // The watermark is on disk: a fresh daemon still refuses the old initiation.
    await daemon.stop();
    const again = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir, ['--log-level', 'debug']));
    await sendUdp(lab.attacker.ns, R2_V4, WG_PORT, [genuine]);
    t.truthy(await waitForEvent(again, 'initiation.ignored', 5000, (e) => e.reason === 'replay'));
    t.is(await endpointOf(lab, roamer), endpoint);
    t.false(events(again).some((e) => JSON.stringify(e).includes(lab.r2.privateKey)), 'the private key is never logged');
    t.not(ATTACKER_V4, String(await endpointOf(lab, roamer)).split(':')[0]);
  });
});

e2e('when R2 recreates its interface on another listen port, the running daemon follows by itself', async (t) => {
  await withLab({ connect: false }, async (lab, dir) => {
    const roamer = lab.roamers[0]!;
    const daemon = await startReconfigWg(lab.scope, lab.r2.ns, daemonArgs(lab, dir));
    await recreateServer(lab, 51999);
    // The daemon re-reads the interface every 10 s: it notices the interface went away and came
    // back, and moves its capture filter to the new port.
    const moved = await waitForEvent(daemon, 'listening', 25_000, (e) => e.port === 51999);
    t.truthy(moved, daemon.lines.join('\n'));
    await connectRoamer(lab, roamer, false, 51999);
    t.not(await pingUntilAnswered(roamer, 15_000), undefined, 'the tunnel comes up on the new port');
    t.like(await waitForEvent(daemon, 'endpoint.updated', 2000), { peer: roamer.publicKey });
    t.false(daemon.exited);
  });
});
