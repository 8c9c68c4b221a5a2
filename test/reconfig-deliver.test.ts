/**
 * Handing packets to WireGuard: the pinhole decision (self-test, modes, learning) and its order
 * with the re-send, with stand-ins for the raw socket and conntrack (the real ones are tested in
 * e2e-inject and e2e-fastpath).
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { ok, fail } from '../src/common/result.js';
import { LocalAddresses } from '../src/net/local.js';
import { Delivery, HANDOVER_SETTLE_MS, MAX_OUTSTANDING, PINHOLE_TIMEOUT_SECONDS, ipDelivered, selfTestLoopback, type PacketInjector, type PacketPinholer, type UdpTuple } from '../src/reconfig/deliver.js';
import type { Datagram } from '../src/net/packet.js';
import { memoryLogger } from './helpers/memory-logger.js';

const SNMP = `Ip: Forwarding DefaultTTL InReceives InDelivers
Ip: 1 64 100 41
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 41 2 0 40 0 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
`;

function snmpWith(delivered: number): string {
  return SNMP.replace('Ip: 1 64 100 41', `Ip: 1 64 100 ${delivered}`);
}

/** R2's addresses, as the stand-in for its interfaces says */
const R2_LOCAL = new LocalAddresses({
  read: () => ({ wan: [{ address: '192.0.2.1', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.0.2.1/24' }] }),
});

const datagram: Datagram = {
  family: 4,
  src: '198.51.100.7',
  dst: '192.0.2.1',
  ttl: 60,
  protocol: 'udp',
  srcPort: 40000,
  dstPort: 51820,
  tcpFlags: 0,
  payload: Buffer.from('01000000', 'hex'),
};

function standIns(families: (4 | 6)[] = [4, 6]) {
  const order: string[] = [];
  const injector: PacketInjector = {
    families: new Set(families),
    inject: (tuple: UdpTuple) => {
      order.push(`inject ${tuple.src}:${tuple.srcPort}`);
      return ok(true);
    },
    close: () => order.push('close injector'),
  };
  const pinholer: PacketPinholer = {
    open: (tuple: UdpTuple, timeout: number) => {
      order.push(`pinhole ${tuple.src}:${tuple.srcPort}→${tuple.dst}:${tuple.dstPort} ${timeout}s`);
      return ok('opened' as const);
    },
    remove: (tuple: UdpTuple) => {
      order.push(`remove ${tuple.src}:${tuple.srcPort}`);
      return ok(true);
    },
    close: () => order.push('close pinholer'),
  };
  return { order, injector, pinholer };
}

test('the IP delivery counter (Ip: InDelivers) is read from /proc/net/snmp, and from this machine’s', (t) => {
  t.is(ipDelivered(SNMP), 41);
  t.is(ipDelivered('Ip: 1\nIp: 2\n'), undefined);
  t.is(ipDelivered(''), undefined);
  t.is(ipDelivered('Udp: InDatagrams NoPorts\nUdp: 5 0\n'), undefined, 'the UDP counter is not the one');
  t.is(ipDelivered('Ip: InDelivers\nIp: many\n'), undefined);
  const real = readFileSync('/proc/net/snmp', 'utf8');
  const [names, values] = real.split('\n').filter((line) => line.startsWith('Ip: ')).map((line) => line.split(/\s+/));
  t.is(ipDelivered(real), Number(values![names!.indexOf('InDelivers')]));
});

test('the self-test says lo is accepted only if every try moves the counter', async (t) => {
  const { injector } = standIns();
  let delivered = 100;
  let perSend = 1;
  const sendAndCount: PacketInjector = { ...injector, inject: (tuple, payload) => ((delivered += perSend), injector.inject(tuple, payload)) };
  t.true(await selfTestLoopback(sendAndCount, 51820, () => snmpWith(delivered)));
  perSend = 0;
  t.false(await selfTestLoopback(sendAndCount, 51820, () => snmpWith(delivered)));
  t.is(await selfTestLoopback(standIns([6]).injector, 51820, () => snmpWith(delivered)), undefined, 'no IPv4 raw socket: cannot tell');
  t.is(await selfTestLoopback(sendAndCount, 51820, () => 'no counters here'), undefined);
  // Delivery deferred past the send call (a busy machine) still counts.
  let reads = 0;
  perSend = 0;
  const late = (): string => snmpWith(delivered + (++reads % 3 === 0 ? 1 : 0));
  t.true(await selfTestLoopback(sendAndCount, 51820, late));
});

test('the self-test sends a packet WireGuard ignores to the listen port on 127.0.0.1', async (t) => {
  const sent: { tuple: UdpTuple; payload: Buffer }[] = [];
  const injector: PacketInjector = { families: new Set([4]), inject: (tuple, payload) => (sent.push({ tuple, payload }), ok(true)), close: () => undefined };
  await selfTestLoopback(injector, 51999, () => SNMP);
  t.is(sent.length, 1, 'the counter did not move: no need to try again');
  t.like(sent[0]!.tuple, { family: 4, dst: '127.0.0.1', dstPort: 51999 });
  t.is(sent[0]!.payload.readUInt32LE(0), 0, 'message type 0 is no WireGuard message');
});

test('with a pinhole, the conntrack entry is made before the packet is re-sent', async (t) => {
  const { order, injector, pinholer } = standIns();
  const { logger } = memoryLogger();
  const delivery = new Delivery({ localAddresses: R2_LOCAL, logger, injector, pinholer, mode: 'always' });
  await delivery.prepare(51820, () => Promise.resolve(true));
  t.true(delivery.deliver(datagram).ok);
  t.deepEqual(order, [`pinhole 198.51.100.7:40000→192.0.2.1:51820 ${PINHOLE_TIMEOUT_SECONDS}s`, 'inject 198.51.100.7:40000']);
  t.true(PINHOLE_TIMEOUT_SECONDS <= 2, 'a pinhole nothing used is gone within seconds');
});

test('a hand-over WireGuard did not take up has its conntrack entry removed when it settles; one it took up keeps it', async (t) => {
  const { order, injector, pinholer } = standIns();
  const { logger } = memoryLogger();
  let now = 0;
  const delivery = new Delivery({ localAddresses: R2_LOCAL, logger, injector, pinholer, mode: 'always', now: () => now });
  await delivery.prepare(51820, () => Promise.resolve(true));
  const stranger = { ...datagram, src: '203.0.113.66', srcPort: 666 };
  t.true(delivery.deliver(datagram).ok);
  t.true(delivery.deliver(stranger).ok);
  t.is(delivery.nextSettleMs(), HANDOVER_SETTLE_MS);
  delivery.settle(() => false);
  t.false(order.some((line) => line.startsWith('remove')), 'nothing is settled before it is due');
  now = HANDOVER_SETTLE_MS;
  delivery.settle((tuple) => tuple.src === datagram.src);
  t.deepEqual(order.filter((line) => line.startsWith('remove')), ['remove 203.0.113.66:666']);
  t.like(delivery, { removed: 1, kept: 1 });
  t.is(delivery.nextSettleMs(), undefined);
});

test('hand-overs waiting to settle are bounded: past the bound nothing more is pinholed or re-sent', async (t) => {
  const { order, injector, pinholer } = standIns();
  const { logger } = memoryLogger();
  const delivery = new Delivery({ localAddresses: R2_LOCAL, logger, injector, pinholer, mode: 'always', now: () => 0 });
  await delivery.prepare(51820, () => Promise.resolve(true));
  let refused = 0;
  for (let i = 0; i < MAX_OUTSTANDING + 10; i++) {
    if (!delivery.deliver({ ...datagram, srcPort: 1000 + i }).ok) refused++;
  }
  t.is(refused, 10);
  t.is(order.filter((line) => line.startsWith('pinhole')).length, MAX_OUTSTANDING);
});

test('auto follows the self-test; never and a missing conntrack mean no pinhole; only auto learns', async (t) => {
  const { logger, raw } = memoryLogger();
  const cases: [ConstructorParameters<typeof Delivery>[0]['mode'], boolean | undefined, boolean, boolean][] = [
    ['auto', true, true, false],
    ['auto', false, true, true],
    ['auto', undefined, true, true],
    ['never', false, true, false],
    ['always', true, true, true],
    ['always', true, false, false],
  ];
  for (const [mode, accepted, withPinholer, expected] of cases) {
    const { injector, pinholer } = standIns();
    const delivery = new Delivery({ localAddresses: R2_LOCAL, logger, injector, pinholer: withPinholer ? pinholer : undefined, mode });
    await delivery.prepare(51820, () => Promise.resolve(accepted));
    t.is(delivery.pinholing, expected, `${mode}, self-test ${String(accepted)}, conntrack ${withPinholer}`);
  }
  const { injector, pinholer } = standIns();
  const auto = new Delivery({ localAddresses: R2_LOCAL, logger, injector, pinholer, mode: 'auto' });
  await auto.prepare(51820, () => Promise.resolve(true));
  t.true(auto.learnPinholeNeeded());
  t.false(auto.learnPinholeNeeded(), 'once is enough');
  t.true(auto.pinholing);
  const never = new Delivery({ localAddresses: R2_LOCAL, logger, injector, pinholer, mode: 'never' });
  t.false(never.learnPinholeNeeded());
  t.true(raw.some((line) => line.includes('"event":"delivery"')));
});

test('a family without a raw socket, or a failed send, is a reason, never a throw', async (t) => {
  const { logger } = memoryLogger();
  const { injector, pinholer } = standIns([6]);
  const delivery = new Delivery({ localAddresses: R2_LOCAL, logger, injector, pinholer, mode: 'never' });
  t.false(delivery.canInject(4));
  t.deepEqual(delivery.deliver(datagram), fail('no raw socket for this family'));
  const failing: PacketInjector = { families: new Set([4]), inject: () => fail('EPERM'), close: () => undefined };
  const sending = new Delivery({ localAddresses: R2_LOCAL, logger, injector: failing, pinholer: undefined, mode: 'never' });
  await sending.prepare(51820, () => Promise.resolve(true));
  t.deepEqual(sending.deliver(datagram), fail('EPERM'));
});

test('nothing but R2 itself on the listen port is ever re-sent, whatever the caller hands over', async (t) => {
  const { order, injector, pinholer } = standIns();
  const { logger } = memoryLogger();
  const delivery = new Delivery({ localAddresses: R2_LOCAL, logger, injector, pinholer, mode: 'always' });
  t.false(delivery.deliver(datagram).ok, 'before the listen port is known: nothing');
  await delivery.prepare(51820, () => Promise.resolve(true));
  for (const other of [{ dst: '198.51.100.2' }, { dst: '127.0.0.1' }, { dstPort: 51821 }]) {
    t.deepEqual(delivery.deliver({ ...datagram, ...other }), fail('not addressed to R2 on the listen port'));
  }
  t.deepEqual(order, [], 'no pinhole, no packet');
  t.true(delivery.deliver(datagram).ok);
});

test('a packet to a secondary IPv4 address of R2 gets a pinhole even where the firewall accepts lo', async (t) => {
  const { order, injector, pinholer } = standIns();
  const { logger } = memoryLogger();
  const local = new LocalAddresses({
    read: () => ({ wan: ['192.0.2.1', '192.0.2.2'].map((address) => ({ address, netmask: '255.255.255.0', family: 'IPv4' as const, mac: '02:00:00:00:00:01', internal: false, cidr: `${address}/24` })) }),
  });
  const delivery = new Delivery({ localAddresses: local, logger, injector, pinholer, mode: 'auto' });
  await delivery.prepare(51820, () => Promise.resolve(true));
  t.false(delivery.pinholing, 'the firewall accepts lo');
  t.true(delivery.deliver(datagram).ok);
  t.deepEqual(order.filter((line) => line.startsWith('pinhole')), [], 'the first address: no pinhole');
  t.like(delivery.deliver({ ...datagram, dst: '192.0.2.2' }), { ok: true, value: { pinholed: true } });
});
