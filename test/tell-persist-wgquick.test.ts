/**
 * Persisting to a wg-quick file: on a real file with several peers, comments, odd spacing and
 * case; only the right line changes (or one line is added), the result passes `wg-quick strip`,
 * nothing is written when nothing changed, and a kill -9 during writes leaves old or new.
 */
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';
import { setPeerEndpoint, wgQuickPersister } from '../src/reconfig/tell/persist-wgquick.js';

const FIXTURE = readFileSync(new URL('../../test/fixtures/wg-server.conf', import.meta.url), 'utf8');
const LAPTOP = 'Kom+SrR25jnwN16JPGIytgHWkpg2q05bPAuBODzQlg8=';
const HOME = 'sFRHojQwLZxzePZWD4qLlwmbxu8tQi1TvbqlEMtvIR8=';
const V6PEER = 'Bb+LewcjAClMRZWlDcyoWxEQqWagcnYrTUPq289vpFU=';
const WRITER = fileURLToPath(new URL('./helpers/wgquick-writer.js', import.meta.url));

function tempConf(t: { teardown(fn: () => void): void }, text = FIXTURE, name = 'wg7.conf'): string {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-wgquick-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
  chmodSync(dir, 0o700);
  return path;
}

/** Lines that differ, as [index, before, after]; both texts must have the same number of lines. */
function changedLines(before: string, after: string): [number, string, string][] {
  const a = before.split('\n');
  const b = after.split('\n');
  return a.flatMap((line, i) => (line === b[i] ? [] : [[i, line, b[i] ?? '']] as [number, string, string][]));
}

function edit(text: string, key: string, endpoint: string): { text: string; changed: boolean } {
  const result = setPeerEndpoint(text, key, endpoint);
  if (!result.ok) throw new Error(result.reason);
  return result.value;
}

test('an existing Endpoint is replaced in place: same indentation, tabs and trailing comment; no other line moves', (t) => {
  const after = edit(FIXTURE, HOME, '192.0.2.10:7844');
  t.true(after.changed);
  t.deepEqual(changedLines(FIXTURE, after.text), [[14, '\tEndpoint\t=\t192.0.2.77:40000\t# old home router', '\tEndpoint\t=\t192.0.2.10:7844\t# old home router']]);
});

test('an Endpoint above the PublicKey line is found and replaced; IPv6 endpoints keep their brackets', (t) => {
  const after = edit(FIXTURE, V6PEER, '[2001:db8:100::10]:3000');
  t.deepEqual(changedLines(FIXTURE, after.text), [[20, 'Endpoint = [2001:db8:100::9]:51000', 'Endpoint = [2001:db8:100::10]:3000']]);
});

test('a peer without an Endpoint gets one right after its PublicKey line, shaped like it', (t) => {
  const after = edit(FIXTURE, LAPTOP, '192.0.2.10:1234');
  const lines = after.text.split('\n');
  t.is(lines.length, FIXTURE.split('\n').length + 1);
  t.is(lines[9], `PublicKey = ${LAPTOP}`);
  t.is(lines[10], 'Endpoint = 192.0.2.10:1234');
  lines.splice(10, 1);
  t.is(lines.join('\n'), FIXTURE, 'everything else is byte for byte the same');
});

test('the added line copies odd spacing, and a file without a final newline and CRLF line ends are kept', (t) => {
  const text = `[Interface]\r\nListenPort = 1\r\n[Peer]\r\n  PublicKey   =  ${LAPTOP}`;
  const after = edit(text, LAPTOP, '192.0.2.5:5');
  t.is(after.text, `[Interface]\r\nListenPort = 1\r\n[Peer]\r\n  PublicKey   =  ${LAPTOP}\r\n  Endpoint   =  192.0.2.5:5`);
});

test('the same endpoint again changes nothing, also when written differently (IPv6 compression)', (t) => {
  t.false(edit(FIXTURE, HOME, '192.0.2.77:40000').changed);
  t.false(edit(FIXTURE, V6PEER, '[2001:0db8:0100::9]:51000').changed);
  t.is(edit(FIXTURE, HOME, '192.0.2.77:40000').text, FIXTURE);
});

test('an unknown peer, or a key that only appears in a comment or in [Interface], is refused, not added', (t) => {
  const unknown = setPeerEndpoint(FIXTURE, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', '192.0.2.1:1');
  t.false(unknown.ok);
  if (!unknown.ok) t.regex(unknown.reason, /no \[Peer\] with PublicKey = AAAA/);
  const commented = `[Peer]\n# PublicKey = ${LAPTOP}\nPublicKey = ${HOME}\n`;
  t.false(setPeerEndpoint(commented, LAPTOP, '192.0.2.1:1').ok);
  const inInterface = `[Interface]\nPublicKey = ${LAPTOP}\n`;
  t.false(setPeerEndpoint(inInterface, LAPTOP, '192.0.2.1:1').ok);
});

test('wg-quick strip accepts the edited file, and sees the new endpoints', async (t) => {
  const path = tempConf(t);
  const persister = wgQuickPersister(path);
  t.is(await persister.persist(LAPTOP, '192.0.2.10:1234'), 'updated');
  t.is(await persister.persist(HOME, '[2001:db8:100::10]:4321'), 'updated');
  const stripped = await execa('wg-quick', ['strip', path], { reject: false });
  t.is(stripped.exitCode, 0, stripped.stderr);
  t.regex(stripped.stdout, /PublicKey = Kom\+\S+\nEndpoint = 192\.0\.2\.10:1234\n/);
  t.regex(stripped.stdout, /Endpoint\t=\t\[2001:db8:100::10\]:4321\t# old home router\n/);
  t.notRegex(stripped.stdout, /192\.0\.2\.77/);
  t.notRegex(stripped.stdout, /PostUp|Address/, 'strip still removes the wg-quick-only keys');
});

test('the file keeps its mode; nothing is written when nothing changed; no temporary file is left', async (t) => {
  const path = tempConf(t);
  const persister = wgQuickPersister(path);
  t.is(await persister.persist(HOME, '192.0.2.10:7844'), 'updated');
  t.is(statSync(path).mode & 0o777, 0o600);
  const written = statSync(path);
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(await persister.persist(HOME, '192.0.2.10:7844'), 'unchanged');
  const again = statSync(path);
  t.is(again.ino, written.ino, 'not replaced');
  t.is(again.mtimeMs, written.mtimeMs, 'not touched');
  t.deepEqual(readdirSync(join(path, '..')), ['wg7.conf']);
});

test('a missing file or peer is an E_PERSIST error that names the file and the fix', async (t) => {
  const path = tempConf(t);
  await t.throwsAsync(wgQuickPersister(`${path}.nope`).persist(HOME, '192.0.2.1:1'), { message: /Cannot read the wg-quick file .*nope \(ENOENT\)\. Give its path with --persist wg-quick=PATH/ });
  const error = await t.throwsAsync(wgQuickPersister(path).persist('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', '192.0.2.1:1'));
  t.is((error as { code?: string }).code, 'E_PERSIST');
  t.is(readFileSync(path, 'utf8'), FIXTURE);
});

test('kill -9 in the middle of writing leaves the old file or the new one, never a mix', async (t) => {
  // A big file makes each write take long enough to be caught in the middle.
  const padding = Array.from({ length: 4000 }, (_, i) => `# padding line ${i} ${'x'.repeat(60)}`).join('\n');
  const path = tempConf(t, `${FIXTURE}\n${padding}\n`);
  const endpoints = ['192.0.2.10:1111', '192.0.2.10:2222'];
  const versions = new Set(endpoints.map((e) => edit(readFileSync(path, 'utf8'), HOME, e).text));
  versions.add(readFileSync(path, 'utf8'));
  let caughtDuring = 0;
  for (let round = 0; round < 12; round++) {
    const child = execa(process.execPath, [WRITER, path, HOME, ...endpoints], { reject: false, stdout: 'pipe' });
    // wait until it has written at least once, then kill it at a varying moment
    await new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 2 + ((round * 7) % 25)));
    child.kill('SIGKILL');
    const ended = await child;
    t.is(ended.signal, 'SIGKILL', 'it was still writing when killed (the writer is bounded, not done)');
    const text = readFileSync(path, 'utf8');
    t.true(versions.has(text), `round ${round}: the file is one whole version`);
    if (readdirSync(join(path, '..')).some((name) => name !== 'wg7.conf')) caughtDuring++;
  }
  t.log(`${caughtDuring} of 12 kills left a temporary file behind (killed mid-write); the config was whole every time`);
  // a temporary file left by a writer that is gone is removed by the next write
  writeFileSync(join(path, '..', '.wg7.conf.999999999.tmp'), 'half a file');
  await wgQuickPersister(path).persist(HOME, '192.0.2.10:3333');
  t.deepEqual(readdirSync(join(path, '..')), ['wg7.conf']);
});

test('a symbolic link to the config stays a link: the file it points to is replaced beside itself, in place', async (t) => {
  const target = tempConf(t, FIXTURE, 'server.conf');
  const linkDir = mkdtempSync(join(tmpdir(), 'rwg-wgquick-link-'));
  t.teardown(() => rmSync(linkDir, { recursive: true, force: true }));
  const link = join(linkDir, 'wg7.conf');
  symlinkSync(target, link);
  const persister = wgQuickPersister(link);
  await persister.verify();
  t.is(await persister.persist(HOME, '192.0.2.10:7844'), 'updated');
  t.true(lstatSync(link).isSymbolicLink(), 'the link is kept');
  t.is(readlinkSync(link), target);
  t.deepEqual(changedLines(FIXTURE, readFileSync(target, 'utf8')).map(([, , after]) => after), ['\tEndpoint\t=\t192.0.2.10:7844\t# old home router']);
  t.is(statSync(target).mode & 0o777, 0o600, 'the target keeps its mode');
  t.deepEqual(readdirSync(linkDir), ['wg7.conf'], 'nothing written beside the link');
  t.deepEqual(readdirSync(join(target, '..')), ['server.conf'], 'no temporary file left beside the target');
});
