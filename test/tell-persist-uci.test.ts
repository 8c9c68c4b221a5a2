/**
 * Persisting to UCI through the `uci` tool, here OpenWrt's uci played by a stand-in that keeps
 * UCI's file format (test/helpers/uci-standin.ts): the right peer section gets endpoint_host and
 * endpoint_port, committed; other sections and other interfaces are left alone; nothing is
 * set or committed when the endpoint is already there.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { parseUciShow, splitEndpoint, uciPersister } from '../src/reconfig/tell/persist-uci.js';
import { installUciStandin, networkConfig } from './helpers/uci.js';

const A = 'Kom+SrR25jnwN16JPGIytgHWkpg2q05bPAuBODzQlg8=';
const B = 'sFRHojQwLZxzePZWD4qLlwmbxu8tQi1TvbqlEMtvIR8=';
const C = 'Bb+LewcjAClMRZWlDcyoWxEQqWagcnYrTUPq289vpFU=';

function setup(t: { teardown(fn: () => void): void }, config: string): { dir: string; uci: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-uci-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const uci = installUciStandin(dir);
  const confDir = join(dir, 'config');
  mkdirSync(confDir);
  writeFileSync(join(confDir, 'network'), config);
  return { dir: confDir, uci, file: join(confDir, 'network') };
}

const uciGet = async (uci: string, dir: string, path: string): Promise<string> => (await execa(uci, ['-c', dir, 'get', path])).stdout;

test('the peer section whose public_key matches gets endpoint_host and endpoint_port, committed', async (t) => {
  const { dir, uci, file } = setup(t, networkConfig('wg0', [{ publicKey: A }, { publicKey: B, name: 'home', endpointHost: '192.0.2.77', endpointPort: '40000' }, { publicKey: C }]));
  const persister = uciPersister({ iface: 'wg0', confDir: dir, command: uci });
  t.is(await persister.persist(B, '192.0.2.10:7844'), 'updated');
  t.is(await uciGet(uci, dir, 'network.home.endpoint_host'), '192.0.2.10');
  t.is(await uciGet(uci, dir, 'network.home.endpoint_port'), '7844');
  t.is(await persister.persist(C, '[2001:db8:100::10]:51000'), 'updated');
  t.is(await uciGet(uci, dir, 'network.@wireguard_wg0[2].endpoint_host'), '2001:db8:100::10', 'IPv6 without brackets, as OpenWrt wants it');
  t.is(await uciGet(uci, dir, 'network.@wireguard_wg0[2].endpoint_port'), '51000');
  const text = readFileSync(file, 'utf8');
  t.regex(text, /option endpoint_host '192\.0\.2\.10'/, 'the file itself holds it: committed, not just pending');
  t.false((await execa(uci, ['-c', dir, 'get', 'network.@wireguard_wg0[0].endpoint_host'], { reject: false })).exitCode === 0, 'the other peer has no endpoint');
  t.is(await uciGet(uci, dir, 'network.wg0.listen_port'), '51820', 'the interface section is untouched');
});

test('only the interface asked for: a peer with the same key under another interface is left alone', async (t) => {
  const config = networkConfig('wg0', [{ publicKey: A }]) + networkConfig('wg1', [{ publicKey: A, endpointHost: '198.51.100.1', endpointPort: '1' }]).replace(/^# .*\n/, '').replace(/config interface 'loopback'[^]*?\n\n/, '');
  const { dir, uci } = setup(t, config);
  await uciPersister({ iface: 'wg0', confDir: dir, command: uci }).persist(A, '192.0.2.10:1');
  t.is(await uciGet(uci, dir, 'network.@wireguard_wg1[0].endpoint_host'), '198.51.100.1');
  t.is(await uciGet(uci, dir, 'network.@wireguard_wg0[0].endpoint_host'), '192.0.2.10');
});

test('nothing is set or committed when the section already has the endpoint', async (t) => {
  const { dir, uci, file } = setup(t, networkConfig('wg0', [{ publicKey: A, endpointHost: '192.0.2.10', endpointPort: '7844' }]));
  const before = statSync(file);
  const text = readFileSync(file, 'utf8');
  t.is(await uciPersister({ iface: 'wg0', confDir: dir, command: uci }).persist(A, '192.0.2.10:7844'), 'unchanged');
  t.is(readFileSync(file, 'utf8'), text, 'not even rewritten in canonical form');
  t.is(statSync(file).ino, before.ino);
  t.false(existsSync(join(dir, '.uci-standin-delta', 'network')), 'no pending change either');
});

test('without commit, uci set changes nothing on disk: the persister commits', async (t) => {
  // This is the stand-in keeping uci's semantics; the persister relies on commit writing.
  const { dir, uci, file } = setup(t, networkConfig('wg0', [{ publicKey: A }]));
  const text = readFileSync(file, 'utf8');
  await execa(uci, ['-c', dir, 'set', 'network.@wireguard_wg0[0].endpoint_host=192.0.2.9']);
  t.is(readFileSync(file, 'utf8'), text);
  t.is(await uciGet(uci, dir, 'network.@wireguard_wg0[0].endpoint_host'), '192.0.2.9', 'pending changes are visible to get');
  await execa(uci, ['-c', dir, 'commit', 'network']);
  t.regex(readFileSync(file, 'utf8'), /endpoint_host '192\.0\.2\.9'/);
});

test('a peer missing from the config, or uci missing, is an E_PERSIST error that says what to do', async (t) => {
  const { dir, uci } = setup(t, networkConfig('wg0', [{ publicKey: A }]));
  await t.throwsAsync(uciPersister({ iface: 'wg0', confDir: dir, command: uci }).persist(B, '192.0.2.1:1'), {
    message: /No wireguard_wg0 section in the UCI network config has public_key sFRH.*uci add network wireguard_wg0/,
  });
  await t.throwsAsync(uciPersister({ iface: 'wg0', confDir: dir, command: '/nonexistent/uci' }).persist(A, '192.0.2.1:1'), { message: /uci tool was not found.*--persist wg-quick or --persist none/ });
});

test('uci show output is parsed with quotes, lists and anonymous sections; garbage is refused without throwing', (t) => {
  const parsed = parseUciShow("network.lan=interface\nnetwork.lan.proto='static'\nnetwork.@wireguard_wg0[0]=wireguard_wg0\nnetwork.@wireguard_wg0[0].description='Bob'\\''s laptop'\nnetwork.@wireguard_wg0[0].allowed_ips='203.0.113.10/32' '2001:db8::10/128'\n");
  t.true(parsed.ok);
  if (!parsed.ok) return;
  t.is(parsed.value.length, 2);
  t.is(parsed.value[1]?.ref, '@wireguard_wg0[0]');
  t.deepEqual(parsed.value[1]?.options.get('description'), ["Bob's laptop"]);
  t.deepEqual(parsed.value[1]?.options.get('allowed_ips'), ['203.0.113.10/32', '2001:db8::10/128']);
  const secretless = parseUciShow("network.wg0=interface\nnetwork.wg0.private_key='c2VjcmV0'\nnetwork.p=wireguard_wg0\nnetwork.p.public_key='x'\n", 'network', 'wireguard_wg0');
  t.true(secretless.ok && secretless.value[0]?.options.size === 0 && secretless.value[1]?.options.get('public_key')?.[0] === 'x', 'other sections keep no options (no private_key in memory)');
  for (const bad of ['firewall.x=rule', "network.x.y='open", 'network.nosection.opt=1']) t.false(parseUciShow(bad).ok, bad);
});

test('endpoints split into host and port, IPv6 without brackets', (t) => {
  t.deepEqual(splitEndpoint('192.0.2.1:51820'), { host: '192.0.2.1', port: '51820' });
  t.deepEqual(splitEndpoint('[2001:db8::1]:7'), { host: '2001:db8::1', port: '7' });
});
