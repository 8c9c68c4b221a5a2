/**
 * Injection and pinholes against the real kernel, in a namespace that plays R2: strict
 * reverse-path filtering, documentation addresses on a veth, a UDP listener, and (where the
 * test says so) a firewall that drops new inbound UDP on every interface, `lo` included. The
 * injector and the pinholer run inside the namespace (scripts/lab/inject-once.ts). Needs root.
 */
import test from 'ava';
import {
  FOREIGN_V4,
  FOREIGN_V6,
  HOST_V4,
  HOST_V6,
  PORT,
  conntrackEntries,
  createInjectionHost,
  droppedByFirewall,
  injectOnce,
  received,
  waitForDatagram,
} from '../scripts/lab/injection.js';
import { nsRun, withScope } from '../scripts/lab/netns.js';

const isRoot = process.getuid?.() === 0;
const e2e = isRoot ? test.serial : test.serial.skip;

const FAMILIES = [
  { family: 4, foreign: FOREIGN_V4, host: HOST_V4 },
  { family: 6, foreign: FOREIGN_V6, host: HOST_V6 },
] as const;

e2e('an injected packet with a foreign source reaches a local UDP socket as if from that source, through strict rp_filter', async (t) => {
  await withScope(async (scope) => {
    const { ns, listener } = await createInjectionHost(scope, { firewall: false });
    t.is((await nsRun(ns, 'sysctl', ['-n', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.wan.rp_filter'])).trim().split('\n').join(','), '1,1');
    for (const { family, foreign, host } of FAMILIES) {
      const sport = 40000 + family;
      const answer = await injectOnce(ns, [foreign, String(sport), host, String(PORT), `0${family}00000011223344`]);
      t.like(answer, { exitCode: 0, ok: true }, answer.stderr);
      t.true(await waitForDatagram(listener, foreign, sport), `IPv${family}: nothing arrived from ${foreign}:${sport}`);
      t.is(received(listener).find((datagram) => datagram.port === sport)?.payload, `0${family}00000011223344`);
    }
  });
});

e2e('the kernel drops injected UDP with a bad checksum; it takes a zero checksum over IPv4 only', async (t) => {
  await withScope(async (scope) => {
    const { ns, listener } = await createInjectionHost(scope, { firewall: false });
    for (const { family, foreign, host } of FAMILIES) {
      const bad = 41000 + family;
      const zero = 41100 + family;
      const control = 41200 + family;
      t.like(await injectOnce(ns, ['--checksum', 'bad', foreign, String(bad), host, String(PORT), 'bad0']), { ok: true });
      t.like(await injectOnce(ns, ['--checksum', 'zero', foreign, String(zero), host, String(PORT), 'zero']), { ok: true });
      t.like(await injectOnce(ns, [foreign, String(control), host, String(PORT), 'c0']), { ok: true });
      // The control packet went the same way after the other two: once it is there, they are
      // there too or never will be.
      t.true(await waitForDatagram(listener, foreign, control));
      const ports = received(listener).map((datagram) => datagram.port);
      t.false(ports.includes(bad), `IPv${family}: a bad checksum got through`);
      t.is(ports.includes(zero), family === 4, `IPv${family}: zero checksum ${family === 4 ? 'refused' : 'taken'}`);
    }
  });
});

for (const { family, foreign, host } of FAMILIES) {
  e2e(`IPv${family}: behind a firewall that drops new UDP on every interface, injection alone is dropped; a pinhole first lets it in`, async (t) => {
    await withScope(async (scope) => {
      const { ns, listener } = await createInjectionHost(scope, { firewall: true });
      const alone = 42000 + family;
      const pinholed = 42100 + family;
      t.is(await droppedByFirewall(ns), 0);
      t.like(await injectOnce(ns, [foreign, String(alone), host, String(PORT), 'aa']), { exitCode: 0, ok: true });
      t.true(await waitFor(async () => (await droppedByFirewall(ns)) === 1), 'the firewall counted the drop');

      const answer = await injectOnce(ns, ['--pinhole', '30', foreign, String(pinholed), host, String(PORT), 'bb']);
      t.like(answer, { exitCode: 0, ok: true }, answer.stderr);
      t.true(await waitForDatagram(listener, foreign, pinholed), 'the pinholed packet arrived');
      t.is(await droppedByFirewall(ns), 1, 'and the firewall dropped nothing more');
      t.false(received(listener).some((datagram) => datagram.port === alone), 'the packet without a pinhole never arrived');
      const [entry] = await conntrackEntries(ns, pinholed);
      // The pinhole is R2 → source; the re-sent packet was its reply: answered, never assured.
      t.regex(entry ?? '', new RegExp(`src=${host} dst=${foreign} sport=${PORT} dport=${pinholed} src=${foreign} dst=${host} sport=${pinholed} dport=${PORT}`));
      t.notRegex(entry ?? '', /UNREPLIED/);
      t.notRegex(entry ?? '', /ASSURED/, 'one packet from the source does not make the flow assured');
      // Settling removes it: nothing is left open for the source.
      t.like(await injectOnce(ns, ['--remove', foreign, String(pinholed), host, String(PORT), '00']), { exitCode: 0, ok: true });
      t.deepEqual(await conntrackEntries(ns, pinholed), []);
      t.like(await injectOnce(ns, ['--remove', foreign, String(pinholed), host, String(PORT), '00']), { exitCode: 0, ok: true }, 'removing what is gone is no error');
    });
  });
}

e2e('an entry left unreplied by an earlier injection becomes established with a pinhole (create or update, never EEXIST)', async (t) => {
  await withScope(async (scope) => {
    const { ns, listener } = await createInjectionHost(scope, { firewall: true });
    const sport = 43000;
    t.like(await injectOnce(ns, [FOREIGN_V4, String(sport), HOST_V4, String(PORT), '01']), { ok: true });
    t.true(await waitFor(async () => (await droppedByFirewall(ns)) === 1));
    const before = await conntrackEntries(ns, sport);
    t.is(before.length, 1);
    t.regex(before[0] ?? '', /UNREPLIED/);

    const answer = await injectOnce(ns, ['--pinhole', '30', FOREIGN_V4, String(sport), HOST_V4, String(PORT), '02']);
    t.like(answer, { exitCode: 0, ok: true }, answer.reason);
    t.true(await waitForDatagram(listener, FOREIGN_V4, sport));
    t.deepEqual(received(listener).filter((datagram) => datagram.port === sport).map((datagram) => datagram.payload), ['02']);
    const after = await conntrackEntries(ns, sport);
    t.is(after.length, 1, 'the same entry, updated');
    t.notRegex(after[0] ?? '', /UNREPLIED/);
  });
});

e2e('a pinhole over an assured entry (a live, answered flow) leaves it as it is; the packet gets in on it', async (t) => {
  await withScope(async (scope) => {
    const { ns, listener } = await createInjectionHost(scope, { firewall: true });
    const sport = 44000;
    // The conntrack tool makes the entry a live flow would have: answered and assured, 5 s left.
    await nsRun(ns, 'conntrack', ['-I', '-p', 'udp', '-s', FOREIGN_V6, '-d', HOST_V6, '--sport', String(sport), '--dport', String(PORT),
      '-r', HOST_V6, '-q', FOREIGN_V6, '--reply-port-src', String(PORT), '--reply-port-dst', String(sport), '-t', '5', '-u', 'SEEN_REPLY,ASSURED']);
    const answer = await injectOnce(ns, ['--pinhole', '60', FOREIGN_V6, String(sport), HOST_V6, String(PORT), '03']);
    t.like(answer, { exitCode: 0, ok: true, pinholed: 'exists' }, answer.reason);
    t.true(await waitForDatagram(listener, FOREIGN_V6, sport));
    const [entry] = await conntrackEntries(ns, sport);
    t.regex(entry ?? '', /ASSURED/);
    // Column 3 is the seconds left: the packet that passed refreshed the live flow (the
    // kernel's timeout for an assured UDP stream), not the pinhole's 60.
    t.true(Number(entry?.split(/\s+/)[2]) > 30, entry);
  });
});

e2e('the loopback self-test sees the firewall from the IP delivery counter, whether or not a socket reads the packet', async (t) => {
  await withScope(async (scope) => {
    const open = await createInjectionHost(scope, { firewall: false });
    const closed = await createInjectionHost(scope, { firewall: true });
    // Nobody listens on PORT + 2: no socket ever reads these, yet the kernel delivered them.
    t.like(await injectOnce(open.ns, ['--self-test', String(PORT + 2)]), { exitCode: 0, accepted: true });
    t.like(await injectOnce(open.ns, ['--self-test', String(PORT)]), { exitCode: 0, accepted: true });
    t.like(await injectOnce(closed.ns, ['--self-test', String(PORT)]), { exitCode: 0, accepted: false });
    t.true((await droppedByFirewall(closed.ns)) >= 1, 'the firewall did drop the self-test packet');
  });
});

e2e('without CAP_NET_RAW, opening the injector fails with E_INJECT_PERMISSION and says what to do', async (t) => {
  const answer = await injectOnce(undefined, ['--open', 'injector'], ['setpriv', '--inh-caps=-all', '--bounding-set=-net_raw']);
  t.is(answer.exitCode, 1);
  t.is(answer.code, 'E_INJECT_PERMISSION');
  t.regex(answer.message ?? '', /raw IPv4 socket.*EPERM.*CAP_NET_RAW/);
  t.notRegex(answer.stderr, /at .*\.js/, 'no stack trace');
  // With the capability, the same script opens both families.
  t.like(await injectOnce(undefined, ['--open', 'injector']), { exitCode: 0, ok: true, families: [4, 6] });
});

e2e('without CAP_NET_ADMIN, opening the pinholer fails with E_PINHOLE_PERMISSION and says what to do', async (t) => {
  const answer = await injectOnce(undefined, ['--open', 'pinholer'], ['setpriv', '--inh-caps=-all', '--bounding-set=-net_admin']);
  t.is(answer.exitCode, 1);
  t.is(answer.code, 'E_PINHOLE_PERMISSION');
  t.regex(answer.message ?? '', /EPERM.*CAP_NET_ADMIN/);
  t.like(await injectOnce(undefined, ['--open', 'pinholer']), { exitCode: 0, ok: true });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}
