import test from 'ava';
import { contains, parsePrefix, parseAddress, type Prefix } from '../src/mesh/prefix.js';
import { selectPrefixes } from '../src/mesh/scope.js';
import { parseRegistry, parseScope, normalizeMeshOptions } from '../src/mesh/options.js';

const p = (text: string): Prefix => {
  const r = parsePrefix(text);
  if (!r.ok) throw new Error(`${text}: ${r.reason}`);
  return r.value;
};
const context = {
  scope: [p('203.0.113.0/24'), p('2001:db8:ff::/64')],
  foreign: [p('203.0.113.0/24'), p('203.0.113.99/32')],
  registry: parseAddress('203.0.113.1')!,
  takenByOthers: [p('203.0.113.30/32')],
};

test('prefixes are canonical, host bits refused unless masked on purpose', (t) => {
  t.is(p('2001:DB8:0:0::0/64').text, '2001:db8::/64');
  t.false(parsePrefix('203.0.113.10/24').ok);
  t.is((parsePrefix('203.0.113.10/24', { allowHostBits: true }) as { value: Prefix }).value.text, '203.0.113.0/24');
  t.false(parsePrefix('203.0.113.0/33').ok);
  t.false(parsePrefix('fe80::1%eth0/64').ok);
  t.true(contains(p('203.0.113.0/24'), p('203.0.113.20/32')));
  t.false(contains(p('203.0.113.20/32'), p('203.0.113.0/24')));
});

test('a specific within the scope and the hub\'s aggregate is taken', (t) => {
  const result = selectPrefixes([p('203.0.113.20/32'), p('2001:db8:ff::20/128')], context);
  t.deepEqual(result.accepted.map((x) => x.text), ['203.0.113.20/32', '2001:db8:ff::20/128']);
  t.deepEqual(result.refused, []);
});

test('what would take traffic from the hub or anyone else is refused, with the reason', (t) => {
  const result = selectPrefixes([p('0.0.0.0/0'), p('198.51.100.0/24'), p('203.0.113.0/24'), p('203.0.113.96/30'), p('203.0.113.0/30'), p('203.0.113.30/32'), p('203.0.113.28/30')], context);
  t.deepEqual(result.accepted, []);
  t.deepEqual(
    result.refused.map((r) => `${r.prefix} ${r.reason}`),
    [
      '0.0.0.0/0 default-route',
      '198.51.100.0/24 outside-scope',
      '203.0.113.0/24 claimed-by-other-peer',
      '203.0.113.96/30 claimed-by-other-peer',
      '203.0.113.0/30 covers-the-registry',
      '203.0.113.30/32 given-to-another-direct-peer',
      '203.0.113.28/30 given-to-another-direct-peer',
    ],
  );
});

test('--registry takes an address with or without a port, IPv6 in brackets', (t) => {
  t.deepEqual(parseRegistry('203.0.113.1'), { address: '203.0.113.1', port: 5182 });
  t.deepEqual(parseRegistry('203.0.113.1:5353'), { address: '203.0.113.1', port: 5353 });
  t.deepEqual(parseRegistry('[2001:db8::1]:53'), { address: '2001:db8::1', port: 53 });
  t.deepEqual(parseRegistry('2001:db8::1'), { address: '2001:db8::1', port: 5182 });
  t.throws(() => parseRegistry('hub.example'), { message: /not an address/ });
  t.throws(() => parseRegistry('203.0.113.1:0'), { message: /port/ });
});

test('--scope refuses a default route and what is not a prefix', (t) => {
  t.throws(() => parseScope('0.0.0.0/0'), { message: /default route/ });
  t.throws(() => parseScope('::/0'), { message: /default route/ });
  t.throws(() => parseScope('203.0.113.1/24'), { message: /host bits/ });
  t.deepEqual(parseScope('203.0.113.0/24, 2001:db8:ff::/64').map((x) => x.text), ['203.0.113.0/24', '2001:db8:ff::/64']);
});

test('mesh options need --registry and keep numbers in range', (t) => {
  t.throws(() => normalizeMeshOptions({}), { message: /--registry/ });
  t.throws(() => normalizeMeshOptions({ registry: '203.0.113.1', keepalive: '0' }), { message: /--keepalive/ });
  t.throws(() => normalizeMeshOptions({ registry: '203.0.113.1', maxPeers: '5000' }), { message: /--max-peers/ });
  const options = normalizeMeshOptions({ registry: '203.0.113.1', keepalive: '2' });
  t.is(options.deadAfterMs, 4_000);
  t.is(options.zone, 'wg.internal');
});
