/**
 * Which sources could never arrive from outside, and which destinations are R2's own: read from
 * the decoders' canonical text, against a stand-in for the interfaces.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import test from 'ava';
import { broadcastOf, canonicalAddress, LocalAddresses } from '../src/net/local.js';
import { addressClass, isOwnUnicast, martianSource } from '../src/net/martian.js';
import { formatIpv6 } from '../src/net/ipv6.js';
import { ipv6Bytes } from '../src/net/address.js';

const WAN: NetworkInterfaceInfo[] = [
  { address: '192.0.2.1', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.0.2.1/24' },
  { address: '2001:db8:100::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: '2001:db8:100::1/64', scopeid: 0 },
];
const LO: NetworkInterfaceInfo[] = [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }];

function local(interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]> = () => ({ lo: LO, wan: WAN }), clock = { now: 0 }): LocalAddresses {
  return new LocalAddresses({ read: interfaces, now: () => clock.now });
}

const canonical = (text: string): string => formatIpv6(ipv6Bytes(text)!, 0);

test('every class of source that could never arrive from outside is named; ordinary unicast is not', (t) => {
  const cases: [4 | 6, string, ReturnType<typeof addressClass>][] = [
    [4, '127.0.0.1', 'source-loopback'],
    [4, '127.255.0.9', 'source-loopback'],
    [4, '0.0.0.0', 'source-unspecified'],
    [4, '0.1.2.3', 'source-unspecified'],
    [4, '224.0.0.1', 'source-multicast'],
    [4, '239.255.255.255', 'source-multicast'],
    [4, '255.255.255.255', 'source-broadcast'],
    [4, '240.0.0.1', 'source-reserved'],
    [4, '169.254.7.7', 'source-link-local'],
    [4, '198.51.100.7', undefined],
    [4, '169.255.0.1', undefined],
    [6, '::', 'source-unspecified'],
    [6, '::1', 'source-loopback'],
    [6, canonical('::ffff:198.51.100.7'), 'source-mapped'],
    [6, canonical('::198.51.100.7'), 'source-mapped'],
    [6, canonical('ff02::1'), 'source-multicast'],
    [6, canonical('fe80::1'), 'source-link-local'],
    [6, canonical('febf::1'), 'source-link-local'],
    [6, canonical('fec0::1'), undefined],
    [6, canonical('ff::1'), undefined],
    [6, canonical('2001:db8::7'), undefined],
    [6, canonical('64:ff9b::c633:6407'), undefined],
  ];
  for (const [family, address, expected] of cases) t.is(addressClass(family, address), expected, address);
});

test('R2\'s own addresses and the directed broadcast of its subnets are refused as sources', (t) => {
  const l = local();
  t.is(martianSource(4, '192.0.2.1', l), 'source-own');
  t.is(martianSource(4, '192.0.2.255', l), 'source-broadcast');
  t.is(martianSource(6, '2001:db8:100::1', l), 'source-own');
  t.is(martianSource(4, '192.0.2.66', l), undefined);
  t.is(broadcastOf('192.0.2.1', 24), '192.0.2.255');
  t.is(broadcastOf('192.0.2.1', 31), undefined);
});

test('only R2\'s own unicast addresses are destinations worth re-sending to', (t) => {
  const l = local();
  t.true(isOwnUnicast(4, '192.0.2.1', l));
  t.true(isOwnUnicast(6, '2001:db8:100::1', l));
  t.false(isOwnUnicast(4, '127.0.0.1', l), 'loopback is R2\'s, yet never a destination from outside');
  t.false(isOwnUnicast(4, '198.51.100.2', l), 'a LAN host behind R2');
});

test('a new address is found by reading again on a miss, at most once a second; the readings are kept meanwhile', (t) => {
  const clock = { now: 0 };
  let reads = 0;
  let wan = WAN;
  const l = local(() => {
    reads++;
    return { lo: LO, wan };
  }, clock);
  t.false(l.isOwn('192.0.2.2'));
  wan = [...WAN, { ...WAN[0]!, address: '192.0.2.2', cidr: '192.0.2.2/24' }];
  for (let i = 0; i < 100; i++) l.isOwn('198.51.100.9');
  const before = reads;
  t.false(l.isOwn('192.0.2.2'), 'within a second of the last miss: not read again');
  t.is(reads, before);
  clock.now = 1001;
  t.true(l.isOwn('192.0.2.2'));
});

test('addresses as node prints them are written as the decoders write them', (t) => {
  t.is(canonicalAddress('2001:DB8:0:0::1'), '2001:db8::1');
  t.is(canonicalAddress('2001:db8::1:0:0:1'), '2001:db8::1:0:0:1');
  t.is(canonicalAddress('192.0.2.1'), '192.0.2.1');
  t.is(canonicalAddress('nonsense'), undefined);
});

test('an IPv4 address after the first of its interface is secondary (the kernel prefers the first as source)', (t) => {
  const l = local(() => ({ lo: LO, wan: [...WAN, { ...WAN[0]!, address: '192.0.2.2', cidr: '192.0.2.2/24' }] }));
  t.false(l.isSecondaryIpv4('192.0.2.1'));
  t.true(l.isSecondaryIpv4('192.0.2.2'));
  t.false(l.isSecondaryIpv4('127.0.0.1'));
});
