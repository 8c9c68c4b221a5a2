/**
 * The Teller: a confirmed change → status file → persisted config → hook, per peer in order,
 * never two hooks for one peer at once, failures logged and harmless. Real files, a real
 * wg-quick persister and a real hook process (test/helpers/hook-recorder.ts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { Teller, type Snapshot } from '../src/reconfig/tell/index.js';
import { wgQuickPersister } from '../src/reconfig/tell/persist-wgquick.js';
import { parseStatus } from '../src/reconfig/tell/status.js';
import { memoryLogger } from './helpers/memory-logger.js';

const RECORDER = fileURLToPath(new URL('./helpers/hook-recorder.js', import.meta.url));
const A = 'Kom+SrR25jnwN16JPGIytgHWkpg2q05bPAuBODzQlg8=';
const B = 'sFRHojQwLZxzePZWD4qLlwmbxu8tQi1TvbqlEMtvIR8=';

interface HookRun {
  args: string[];
  env: { [key: string]: string };
  startedAt: number;
  endedAt: number;
}

function rig(t: { teardown(fn: () => void): void }, options: { hook?: string[]; sleepMs?: number; exitCode?: number; hookTimeoutMs?: number; hookArgs?: string[]; dryRun?: boolean; conf?: string } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-teller-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const conf = join(dir, 'wg0.conf');
  writeFileSync(conf, options.conf ?? `[Interface]\nListenPort = 51820\n\n[Peer]\nPublicKey = ${A}\n\n[Peer]\nPublicKey = ${B}\n`);
  const records = join(dir, 'hook.jsonl');
  const statusFile = join(dir, 'run', 'wg0.json');
  const endpoints = new Map<string, string | undefined>([
    [A, undefined],
    [B, undefined],
  ]);
  const counts = new Map<string, Record<string, number>>();
  let drops = 0;
  const snapshot = (): Snapshot => ({
    listenPort: 51820,
    peers: [...endpoints].map(([publicKey, endpoint]) => ({ publicKey, endpoint })),
    peerCounts: (peer) => counts.get(peer) ?? {},
    ignored: { 'bad-mac1': 2 },
    capture: { received: 5, dropped: drops },
  });
  const { logger, events } = memoryLogger();
  const teller = new Teller({
    logger,
    iface: 'wg0',
    statusFile,
    persistLabel: `wg-quick=${conf}`,
    persister: wgQuickPersister(conf),
    hook: options.hook ?? [process.execPath, RECORDER, records, String(options.sleepMs ?? 0), String(options.exitCode ?? 0), ...(options.hookArgs ?? ['{interface}', '{peer}', '{from}', '{to}', '{host}', '{port}', '{how}'])],
    hookTimeoutMs: options.hookTimeoutMs ?? 10_000,
    dryRun: options.dryRun ?? false,
    snapshot,
  });
  /** what wg show would say after the change, then tell it */
  const change = (peer: string, to: string, how?: 'injected' | 'set' | 'roamed'): void => {
    const from = endpoints.get(peer);
    endpoints.set(peer, to);
    counts.set(peer, { accepted: (counts.get(peer)?.accepted ?? 0) + 1, updated: (counts.get(peer)?.updated ?? 0) + 1 });
    teller.tell({ peer, from, to, ...(how === undefined ? {} : { how }) });
  };
  const hookRuns = (): HookRun[] => (existsSync(records) ? readFileSync(records, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as HookRun) : []);
  const status = () => {
    const parsed = parseStatus(readFileSync(statusFile, 'utf8'));
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.value;
  };
  return { teller, conf, statusFile, change, hookRuns, status, events, setDrops: (n: number) => (drops = n) };
}

test('a change is told: status file, persisted endpoint, and the hook with its arguments and environment', async (t) => {
  const r = rig(t);
  r.teller.start();
  t.deepEqual(r.status().peers.map((p) => p.lastChange), [null, null], 'the status exists from the start');
  r.change(A, '192.0.2.10:7844', 'injected');
  t.like(r.status().peers[0], { publicKey: A, endpoint: '192.0.2.10:7844', lastChange: { how: 'injected', from: null, to: '192.0.2.10:7844' }, counts: { accepted: 1, updated: 1 } });
  await r.teller.settled();
  t.regex(readFileSync(r.conf, 'utf8'), new RegExp(`PublicKey = ${A.replace(/[+/]/g, '\\$&')}\nEndpoint = 192\\.0\\.2\\.10:7844\n`));
  const [run] = r.hookRuns();
  t.deepEqual(run?.args, ['wg0', A, '', '192.0.2.10:7844', '192.0.2.10', '7844', 'injected']);
  t.deepEqual(run?.env, {
    RECONFIG_WG_INTERFACE: 'wg0',
    RECONFIG_WG_PEER: A,
    RECONFIG_WG_FROM: '',
    RECONFIG_WG_TO: '192.0.2.10:7844',
    RECONFIG_WG_HOST: '192.0.2.10',
    RECONFIG_WG_PORT: '7844',
    RECONFIG_WG_HOW: 'injected',
  });
  t.like(r.events('persist.updated')[0], { peer: A, endpoint: '192.0.2.10:7844' });
  t.true(r.events('command.output').some((e) => e.msg === `hook saw wg0 ${A}  192.0.2.10:7844 192.0.2.10 7844 injected`), 'its stdout is logged');
  t.true(r.events('command.output').some((e) => e.stream === 'stderr'), 'and its stderr');
  t.like(r.events('command.exited')[0], { exitCode: 0 });
});

test('IPv6 endpoints: {host} without brackets, {port} alone; placeholders inside a word; from is the old endpoint', async (t) => {
  const r = rig(t, { hookArgs: ['--peer={peer}', 'at', '{host}/{port}', 'was={from}'] });
  r.teller.start();
  r.change(B, '192.0.2.10:1');
  await r.teller.settled();
  r.change(B, '[2001:db8:100::10]:51000', 'roamed');
  await r.teller.settled();
  const runs = r.hookRuns();
  t.deepEqual(runs[1]?.args, [`--peer=${B}`, 'at', '2001:db8:100::10/51000', 'was=192.0.2.10:1']);
  t.is(runs[1]?.env.RECONFIG_WG_HOW, 'roamed');
  t.is(runs[0]?.env.RECONFIG_WG_HOW, 'set', "'set' when the listener does not say");
});

test('never two hooks for the same peer at once; changes that pile up are told once, newest last', async (t) => {
  const r = rig(t, { sleepMs: 300 });
  r.teller.start();
  r.change(A, '192.0.2.10:1');
  r.change(A, '192.0.2.10:2');
  r.change(A, '192.0.2.10:3');
  r.change(B, '192.0.2.11:1');
  await r.teller.settled();
  const runs = r.hookRuns();
  const forA = runs.filter((run) => run.args[1] === A).sort((x, y) => x.startedAt - y.startedAt);
  t.deepEqual(forA.map((run) => run.args[3]), ['192.0.2.10:1', '192.0.2.10:3'], 'the middle one was folded into the last');
  t.is(forA[1]?.args[2], '192.0.2.10:1', 'from is what the world last heard');
  t.true((forA[1]?.startedAt ?? 0) >= (forA[0]?.endedAt ?? Infinity), 'the second started after the first ended');
  t.is(runs.filter((run) => run.args[1] === B).length, 1, 'the other peer was told too');
  t.regex(readFileSync(r.conf, 'utf8'), /Endpoint = 192\.0\.2\.10:3\n/);
});

test('a failing hook is logged and harmless: the next change is told as usual', async (t) => {
  const r = rig(t, { exitCode: 3 });
  r.teller.start();
  r.change(A, '192.0.2.10:1');
  await r.teller.settled();
  t.like(r.events('hook.failed')[0], { exitCode: 3, peer: A });
  r.change(A, '192.0.2.10:2');
  await r.teller.settled();
  t.is(r.hookRuns().length, 2);
  t.regex(readFileSync(r.conf, 'utf8'), /Endpoint = 192\.0\.2\.10:2\n/);
});

test('a hook that outlives its timeout is stopped, and the queue moves on', async (t) => {
  const r = rig(t, { sleepMs: 20_000, hookTimeoutMs: 300 });
  r.teller.start();
  const started = Date.now();
  r.change(A, '192.0.2.10:1');
  await r.teller.settled();
  const took = Date.now() - started;
  t.like(r.events('hook.timeout')[0], { timeoutMs: 300 });
  t.true(took < 10_000, `stopped long before it would have ended by itself (${took} ms)`);
  t.like(r.events('command.exited')[0], { signal: 'SIGTERM' });
  t.is(r.hookRuns().length, 0, 'it never got to record');
});

test('a persist failure is logged and the hook still runs; a hook that cannot start is logged; nothing throws', async (t) => {
  const r = rig(t, { conf: `[Interface]\nListenPort = 1\n` });
  r.teller.start();
  r.change(A, '192.0.2.10:1');
  await r.teller.settled();
  t.like(r.events('error')[0], { code: 'E_PERSIST', peer: A });
  t.is(r.hookRuns().length, 1, 'the hook still ran');

  const missing = rig(t, { hook: ['/nonexistent/hook', '{to}'] });
  missing.teller.start();
  missing.change(A, '192.0.2.10:1');
  await missing.teller.settled();
  t.like(missing.events('error')[0], { code: 'E_COMMAND' });
  t.regex(String(missing.events('error')[0]?.msg), /cannot start \/nonexistent\/hook.*Check the program in --hook/);
  t.regex(readFileSync(missing.conf, 'utf8'), /Endpoint = 192\.0\.2\.10:1\n/, 'persisted all the same');
});

test('the status file is rewritten on refresh only when something in it moved; stop removes it', async (t) => {
  const r = rig(t);
  r.teller.start();
  const first = statSync(r.statusFile);
  await new Promise((resolve) => setTimeout(resolve, 20));
  r.teller.refresh();
  t.is(statSync(r.statusFile).ino, first.ino, 'nothing moved: not rewritten');
  r.setDrops(4);
  r.teller.refresh();
  t.deepEqual(r.status().capture, { received: 5, dropped: 4 });
  t.is(r.status().pid, process.pid);
  t.deepEqual(r.status().ignored, { 'bad-mac1': 2 });
  await r.teller.stop();
  t.false(existsSync(r.statusFile));
});

test('in a dry run nothing is persisted and no hook runs', async (t) => {
  const r = rig(t, { dryRun: true });
  r.teller.start();
  const conf = readFileSync(r.conf, 'utf8');
  r.change(A, '192.0.2.10:1');
  await r.teller.settled();
  t.is(readFileSync(r.conf, 'utf8'), conf);
  t.is(r.hookRuns().length, 0);
  t.like(r.events('tell.skipped')[0], { dryRun: true });
});

test('a burst of changes writes the status file once at the start and once at the end of a 100 ms window', async (t) => {
  const r = rig(t, { sleepMs: 0 });
  r.teller.start();
  const inode = (): number => statSync(r.statusFile).ino;
  const before = inode();
  r.change(A, '192.0.2.10:1');
  const first = inode();
  t.not(first, before, 'the first change is written at once (an atomic replace: a new inode)');
  t.like(r.status().peers[0], { endpoint: '192.0.2.10:1' });
  r.change(A, '192.0.2.10:2');
  r.change(B, '192.0.2.11:1');
  t.is(inode(), first, 'the rest of the burst waits for the end of the window');
  t.like(r.status().peers[1], { lastChange: null });
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.not(inode(), first, 'written at the end of the window');
  t.like(r.status().peers[0], { endpoint: '192.0.2.10:2', lastChange: { to: '192.0.2.10:2' } });
  t.like(r.status().peers[1], { endpoint: '192.0.2.11:1', lastChange: { to: '192.0.2.11:1' } });
  await r.teller.settled();
});

test('settled() writes what a change left waiting in the window', async (t) => {
  const r = rig(t, { sleepMs: 0 });
  r.teller.start();
  r.change(A, '192.0.2.10:1');
  r.change(B, '192.0.2.11:5');
  await r.teller.settled();
  t.like(r.status().peers[1], { lastChange: { to: '192.0.2.11:5' } });
});
