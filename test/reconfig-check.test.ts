/**
 * `check`'s firewall reading, on rulesets loaded into real nftables in a namespace of their
 * own (root), and the pieces of `check` and `status` that are pure.
 */
import test from 'ava';
import { checkExitCode, formatChecks, runChecks, type CheckContext } from '../src/reconfig/check.js';
import { firewallVerdict } from '../src/reconfig/check-firewall.js';
import { formatStatus } from '../src/reconfig/status-command.js';
import { parseStatus, STATUS_VERSION, type Status } from '../src/reconfig/tell/status.js';
import { labId, nsRun, withScope } from '../scripts/lab/netns.js';

const isRoot = process.getuid?.() === 0;
const asRoot = isRoot ? test.serial : test.serial.skip;

async function verdictOf(ruleset: string, port = 51820) {
  return withScope(async (scope) => {
    const ns = await scope.addNamespace(`rwg-${labId()}-fw`);
    await nsRun(ns, 'nft', ['-f', '-'], ruleset);
    const json = await nsRun(ns, 'nft', ['-j', 'list', 'ruleset']);
    const finding = firewallVerdict(json, port);
    if (!finding.ok) throw new Error(finding.reason);
    return finding.value;
  });
}

asRoot('a rule dropping new UDP to the port is found; another port is not affected by it', async (t) => {
  const ruleset = `table inet filter {
    chain input {
      type filter hook input priority 0; policy accept;
      ct state established,related accept
      udp dport 51820 ct state new counter drop
    }
  }`;
  t.like(await verdictOf(ruleset), { verdict: 'drop', decidedBy: 'inet filter/input rule 2' });
  t.like(await verdictOf(ruleset, 51821), { verdict: 'accept', decidedBy: 'inet filter/input policy' });
});

asRoot('a drop policy with only established traffic accepted drops; an accept rule for the port (in a set) opens it', async (t) => {
  const closed = `table ip filter {\n chain input {\n type filter hook input priority 0; policy drop;\n ct state { established, related } accept\n tcp dport 22 accept\n }\n}`;
  t.like(await verdictOf(closed), { verdict: 'drop', decidedBy: 'ip filter/input policy' });
  const open = `table ip filter {\n chain input {\n type filter hook input priority 0; policy drop;\n ct state { established, related } accept\n udp dport { 53, 51000-52000 } accept\n }\n}`;
  t.like(await verdictOf(open), { verdict: 'accept', decidedBy: 'ip filter/input rule 2' });
});

asRoot('jumps are followed; rules that hinge on the incoming interface are named as conditional', async (t) => {
  const zones = `table inet fw {
    chain input {
      type filter hook input priority 0; policy accept;
      iifname "lo" accept
      ct state established,related accept
      iifname "wan" jump input_wan
      jump reject_all
    }
    chain input_wan {
      udp dport 51999 accept
      jump reject_all
    }
    chain reject_all {
      reject
    }
  }`;
  const finding = await verdictOf(zones);
  t.is(finding.verdict, 'drop');
  t.is(finding.decidedBy, 'inet fw/reject_all rule 1');
  t.deepEqual(finding.conditional, [
    { where: 'inet fw/input rule 1', verdict: 'accept' },
    { where: 'inet fw/input rule 3', verdict: 'drop' },
  ]);
  t.like(await verdictOf(zones, 51999), { verdict: 'drop', conditional: [{ verdict: 'accept' }, { verdict: 'accept' }] });
});

asRoot('no ruleset at all accepts', async (t) => {
  t.like(await verdictOf('table inet empty { }'), { verdict: 'accept', decidedBy: 'no nftables input chain' });
});

test('output nft cannot have printed is a failure, not an exception', (t) => {
  t.false(firewallVerdict('not json', 1).ok);
  t.false(firewallVerdict('{"something":1}', 1).ok);
});

test('check: an item that throws is a FAIL with its message; later items still run; exit 1 only on FAIL', async (t) => {
  const context = {} as CheckContext;
  const results = await runChecks(context, [
    { name: 'first', run: async () => ({ name: 'first', state: 'ok', detail: 'fine' }) },
    { name: 'boom', run: async () => { throw new Error('Unable to access WireGuard interface wg9. List the interfaces with wg show interfaces.'); } },
    { name: 'third', run: async () => ({ name: 'third', state: 'warn', detail: 'so-so', fix: 'do this' }) },
  ]);
  t.deepEqual(results.map((r) => [r.name, r.state]), [['first', 'ok'], ['boom', 'fail'], ['third', 'warn']]);
  t.is(checkExitCode(results), 1);
  t.is(checkExitCode([results[0]!, results[2]!]), 0, 'warnings do not block');
  const text = formatChecks(results);
  t.regex(text, /^FAIL  boom   Unable to access WireGuard interface wg9/m);
  t.regex(text, /^warn  third  so-so\n\s+fix: do this$/m);
});

const status: Status = {
  version: STATUS_VERSION,
  interface: 'wg0',
  pid: 4242,
  listenPort: 51820,
  startedAt: '2026-11-23T10:00:00.000Z',
  updatedAt: '2026-11-23T10:05:00.000Z',
  persist: 'wg-quick',
  capture: { received: 9, dropped: 0 },
  ignored: { 'bad-mac1': 3, replay: 1 },
  peers: [
    { publicKey: 'Kom+SrR25jnwN16JPGIytgHWkpg2q05bPAuBODzQlg8=', endpoint: '192.0.2.10:7844', lastChange: { at: '2026-11-23T10:04:00.000Z', how: 'injected', from: null, to: '192.0.2.10:7844' }, counts: { authentic: 2, updated: 1, replay: 1 } },
    { publicKey: 'sFRHojQwLZxzePZWD4qLlwmbxu8tQi1TvbqlEMtvIR8=', endpoint: null, lastChange: null, counts: {} },
  ],
};

test('status for people: a line per peer with its endpoint, last change and counts', (t) => {
  const text = formatStatus(status, true, Date.parse('2026-11-23T10:05:30.000Z'));
  t.regex(text, /^reconfig-wg on wg0: running \(pid 4242\), since 2026-11-23T10:00:00\.000Z$/m);
  t.regex(text, /listen port 51820; persist: wg-quick; capture: 9 received, 0 dropped/);
  t.regex(text, /ignored: bad-mac1 3, replay 1/);
  t.regex(text, /^Kom\+\S+\s+192\.0\.2\.10:7844\s+2026-11-23T10:04:00\.000Z \(90 s ago\)\s+injected\s+authentic 2, updated 1, replay 1$/m);
  t.regex(text, /^sFRH\S+\s+\(none\)\s+-\s+-\s+-$/m);
  t.regex(formatStatus(status, false), /not running \(pid 4242 is gone; it did not stop cleanly\)/);
});

test('a status file is read back as written, and a broken one says what is wrong', (t) => {
  t.deepEqual(parseStatus(JSON.stringify(status)), { ok: true, value: status });
  t.deepEqual(parseStatus('{'), { ok: false, reason: 'is not valid JSON' });
  t.like(parseStatus(JSON.stringify({ ...status, version: 99 })), { ok: false });
  t.like(parseStatus(JSON.stringify({ ...status, peers: [{ publicKey: 1 }] })), { ok: false });
});

/** Only the inject and pinhole items, with the interface already found (listen port 51820). */
async function deliveryItems(overrides: Partial<CheckContext>) {
  const items = (await import('../src/reconfig/check.js')).CHECK_ITEMS.filter((item) => item.name === 'inject' || item.name === 'pinhole');
  const context = {
    found: { iface: 'wg0', config: { name: 'wg0', privateKey: undefined, publicKey: undefined, listenPort: 51820, peers: new Map() } },
    openInjector: () => { throw new Error('unused'); },
    openPinholer: () => ({ open: () => ({ ok: true as const, value: true as const }), close: () => undefined }),
    ...overrides,
  } as CheckContext;
  return runChecks(context, items);
}

test('check: without a raw socket, injection is a warning that says the daemon falls back to wg set', async (t) => {
  const [inject, pinhole] = await deliveryItems({
    openInjector: () => { throw new Error('Not allowed to open a raw socket (EPERM). Run as root.'); },
  });
  t.like(inject, { name: 'inject', state: 'warn' });
  t.regex(inject!.detail, /Not allowed to open a raw socket \(EPERM\)\. Run as root: reconfig-wg runs without injection \(wg set after a verified initiation/);
  t.like(pinhole, { name: 'pinhole', state: 'ok' });
  t.is(checkExitCode([inject!, pinhole!]), 0, 'the daemon can still run');
});

test('check: a firewall dropping re-sent packets on lo without conntrack support is a warning naming both fixes', async (t) => {
  // a raw socket whose loopback packets never arrive: the UDP delivery counter does not move
  const injector = { families: new Set<4 | 6>([4]), inject: () => ({ ok: true as const, value: true as const }), close: () => undefined };
  const [inject, pinhole] = await deliveryItems({
    openInjector: () => injector,
    openPinholer: () => { throw new Error('No conntrack netlink here (EPROTONOSUPPORT).'); },
  });
  t.like(inject, { state: 'ok' });
  t.regex(inject!.detail, /raw sockets open for IPv4; the firewall drops re-sent packets on lo/);
  t.like(pinhole, { state: 'warn' });
  t.regex(pinhole!.detail, /No conntrack netlink here \(EPROTONOSUPPORT\); the firewall drops re-sent packets on lo, so injection cannot work/);
  t.regex(pinhole!.fix ?? '', /nf_conntrack_netlink.*or accept lo in the firewall/);
});

test('check: a hub with forwarding off or ICMP redirects on the interface is a warning naming the sysctls', async (t) => {
  const item = (await import('../src/reconfig/check.js')).CHECK_ITEMS.filter((i) => i.name === 'forwarding');
  const peer = (key: string, allowedIps: string[]) => [key, { publicKey: key, endpoint: undefined, keepalive: 0, allowedIps }] as const;
  const hub = new Map([peer('a', ['203.0.113.10/32']), peer('b', ['203.0.113.11/32', '2001:db8::11/128'])]);
  const context = (peers: Map<string, unknown>, sysctls: Record<string, string>) =>
    ({ found: { iface: 'wg0', config: { name: 'wg0', privateKey: undefined, publicKey: undefined, listenPort: 51820, peers } }, readSysctl: (name: string) => sysctls[name] }) as unknown as CheckContext;
  const good = { 'net/ipv4/ip_forward': '1', 'net/ipv6/conf/all/forwarding': '1', 'net/ipv4/conf/all/send_redirects': '0', 'net/ipv4/conf/wg0/send_redirects': '0' };
  t.like((await runChecks(context(hub, good), item))[0], { state: 'ok' });
  const [bad] = await runChecks(context(hub, { ...good, 'net/ipv4/ip_forward': '0', 'net/ipv4/conf/wg0/send_redirects': '1' }), item);
  t.like(bad, { state: 'warn' });
  t.regex(bad!.detail, /net\.ipv4\.ip_forward is 0 \(peers cannot reach each other.*net\.ipv4\.conf\.wg0\.send_redirects is 1 \(ICMP redirects between spokes on wg0\)/);
  t.regex(bad!.fix ?? '', /^sysctl -w net\.ipv4\.ip_forward=1 net\.ipv4\.conf\.wg0\.send_redirects=0/);
  t.regex((await runChecks(context(hub, { ...good, 'net/ipv6/conf/all/forwarding': '0' }), item))[0]!.detail, /net\.ipv6\.conf\.all\.forwarding is 0/);
  const v4only = new Map([peer('a', ['203.0.113.10/32']), peer('b', ['203.0.113.11/32'])]);
  t.like((await runChecks(context(v4only, { ...good, 'net/ipv6/conf/all/forwarding': '0' }), item))[0], { state: 'ok' }, 'IPv6 forwarding matters only with IPv6 allowed IPs');
  t.like((await runChecks(context(new Map([peer('a', ['203.0.113.10/32'])]), {}), item))[0], { state: 'ok' }, 'one peer: nothing to forward between peers');
});

test('status with the registry: a line for people, read back as written', (t) => {
  const withRegistry: Status = { ...status, registry: { listen: '203.0.113.1:5182', zone: 'wg.internal', state: 'serving', peers: 1, answered: { NOERROR: 4 }, refused: { any: 1 }, ignored: { 'not-peer': 2 } } };
  t.regex(formatStatus(withRegistry, true), /^registry: _wireguard\._udp\.wg\.internal on 203\.0\.113\.1:5182, serving 1 peer; answered: NOERROR 4; refused: any 1; ignored: not-peer 2$/m);
  t.deepEqual(parseStatus(JSON.stringify(withRegistry)), { ok: true, value: withRegistry });
  t.like(parseStatus(JSON.stringify({ ...withRegistry, registry: { ...withRegistry.registry, state: 'dancing' } })), { ok: false });
  t.notRegex(formatStatus(status, true), /registry/);
});
