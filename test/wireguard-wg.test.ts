import test from 'ava';
import { parseDump, resolveInterface, type WgRunner } from '../src/wireguard/wg.js';
import { formatEndpoint, sameEndpoint } from '../src/reconfig/endpoint.js';
import { planEndpointChange } from '../src/reconfig/apply.js';

const DUMP = [
  'EK2UANMY2RvhC3DCCgdg/axgIKqptzEu/ejAx4sTLWw=\tVep32wLWGLiPsoAR5fRfUUqv+U9UHnxb4Z3kye24pUE=\t51820\toff',
  'jjBs3cAVFudLgZfkCwAzfSkCdREV7HlPB0zSxWxBQzw=\t(none)\t[2001:db8::1]:5000\t10.9.0.2/32,2001:db8:9::2/128\t1700000000\t0\t0\t25',
  'rWwNTsEVK8+cxQZVdLWiN9fuCc55BKJoITa6I1i8uFE=\t(none)\t(none)\t(none)\t0\t0\t0\toff',
  '',
].join('\n');

test('wg show dump output parses into the interface and its peers', (t) => {
  const config = parseDump('wg0', DUMP);
  t.truthy(config);
  t.is(config?.listenPort, 51820);
  t.is(config?.publicKey, 'Vep32wLWGLiPsoAR5fRfUUqv+U9UHnxb4Z3kye24pUE=');
  t.deepEqual([...(config?.peers.values() ?? [])], [
    { publicKey: 'jjBs3cAVFudLgZfkCwAzfSkCdREV7HlPB0zSxWxBQzw=', endpoint: '[2001:db8::1]:5000', keepalive: 25, allowedIps: ['10.9.0.2/32', '2001:db8:9::2/128'], latestHandshake: 1700000000 },
    { publicKey: 'rWwNTsEVK8+cxQZVdLWiN9fuCc55BKJoITa6I1i8uFE=', endpoint: undefined, keepalive: 0, allowedIps: [], latestHandshake: 0 },
  ]);
});

test('a dump that is not wg dump output is refused, not half-read', (t) => {
  t.is(parseDump('wg0', ''), undefined);
  t.is(parseDump('wg0', 'just some text'), undefined);
  t.is(parseDump('wg0', `${DUMP}short\tline\n`), undefined);
});

const runner = (stdout: string): WgRunner => async () => ({ exitCode: 0, stdout, stderr: '' });

test('without -i the only interface is chosen; none or several are errors that say what to do', async (t) => {
  t.is(await resolveInterface(undefined, runner('wg0\n')), 'wg0');
  t.is(await resolveInterface('wg7', runner('wg0 wg1\n')), 'wg7');
  await t.throwsAsync(resolveInterface(undefined, runner('')), { message: /No WireGuard interface is up/ });
  await t.throwsAsync(resolveInterface(undefined, runner('wg0 wg1\n')), { message: /Several WireGuard interfaces are up \(wg0, wg1\)\. Choose one with -i/ });
});

test('endpoints are written as wg takes them and compared in canonical form', (t) => {
  t.is(formatEndpoint('192.0.2.7', 51820), '192.0.2.7:51820');
  t.is(formatEndpoint('2001:db8::7', 51820), '[2001:db8::7]:51820');
  t.true(sameEndpoint('[2001:db8:0:0::7]:1', '[2001:db8::7]:1'));
  t.false(sameEndpoint('192.0.2.7:1', '192.0.2.7:2'));
  t.false(sameEndpoint(undefined, '192.0.2.7:1'));
});

test('the endpoint change always ends on an off-to-on keepalive edge and restores the peer setting', (t) => {
  const off = planEndpointChange({ publicKey: 'k', endpoint: undefined, keepalive: 0 }, '192.0.2.7:1');
  t.deepEqual(off.steps, [['endpoint', '192.0.2.7:1', 'persistent-keepalive', '1'], ['persistent-keepalive', 'off']]);
  const on = planEndpointChange({ publicKey: 'k', endpoint: undefined, keepalive: 25 }, '192.0.2.7:1');
  t.deepEqual(on.steps, [['endpoint', '192.0.2.7:1', 'persistent-keepalive', 'off'], ['persistent-keepalive', '25']]);
});
