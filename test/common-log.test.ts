/**
 * What people and scripts read: pretty lines keep every field (the initiation's own
 * `timestamp` too), say the event once, and show epoch times as ISO time; a command's JSON
 * log lines keep their level and fields when port-knock passes them on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { createLogger } from '../src/common/log.js';
import { childRecord, startCommand } from '../src/common/child.js';
import { runBesideJournal } from './helpers/journal.js';
import { memoryLogger } from './helpers/memory-logger.js';

function prettyLines(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter((line) => line.length > 0));
      callback();
    },
  });
  return { lines, logger: createLogger({ name: 'test', format: 'pretty', level: 'info', destination }) };
}

test('a pretty line shows the initiation timestamp, which pino-pretty would take for its own', (t) => {
  const { lines, logger } = prettyLines();
  logger.info({ event: 'initiation.accepted', peer: 'AAAA', timestamp: '2026-11-23T08:18:11.504Z' }, 'authentic initiation from 192.0.2.10:7844');
  t.is(lines.length, 1);
  t.regex(lines[0]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: initiation\.accepted authentic initiation from 192\.0\.2\.10:7844 \(sent 2026-11-23T08:18:11\.504Z\) \{"peer":"AAAA"\}$/);
});

test('a pretty line says its event once when the message starts with it', (t) => {
  const { lines, logger } = prettyLines();
  logger.info({ event: 'stopped', counters: { knocks: 1 } }, 'stopped');
  logger.info({ event: 'knock' }, 'knock from 192.0.2.10');
  logger.info({ event: 'listening' }, 'watching any');
  t.regex(lines[0]!, /INFO: stopped \{"counters":\{"knocks":1\}\}$/);
  t.regex(lines[1]!, /INFO: knock from 192\.0\.2\.10$/);
  t.regex(lines[2]!, /INFO: listening watching any$/);
});

test('a pretty line shows capturedAt as ISO time; the JSON line keeps the number', (t) => {
  const { lines, logger } = prettyLines();
  const capturedAt = Date.UTC(2026, 10, 23, 8, 18, 11, 504) + 0.25;
  logger.info({ event: 'knock', capturedAt }, 'knock');
  t.true(lines[0]!.includes('"capturedAt":"2026-11-23T08:18:11.504Z"'), lines[0]);
  const json = memoryLogger();
  json.logger.info({ event: 'knock', capturedAt }, 'knock');
  t.is(json.events('knock')[0]?.capturedAt, capturedAt);
});

test('a JSON log line from a command is taken apart: level, message and fields; other lines are not', (t) => {
  const line = JSON.stringify({ level: 50, time: '2026-11-23T08:18:11.504Z', name: 'reconfig-wg', event: 'error', code: 'E_NO_INTERFACE', msg: 'Unable to access WireGuard interface nosuch0.' });
  t.deepEqual(childRecord(line), { level: 'error', msg: 'Unable to access WireGuard interface nosuch0.', fields: { name: 'reconfig-wg', event: 'error', code: 'E_NO_INTERFACE' } });
  for (const other of ['plain text', '{"not": "pino"}', '{broken', '[1,2]', '{"level": 35, "msg": "x"}']) t.is(childRecord(other), undefined, other);
});

test('a command that fails is logged as an error, with its own JSON error as fields, not nested in msg', async (t) => {
  const log = memoryLogger();
  const failing = `console.log(JSON.stringify({ level: 50, time: 1, name: 'reconfig-wg', event: 'error', code: 'E_NO_INTERFACE', msg: 'Unable to access WireGuard interface nosuch0.' })); process.exit(2);`;
  const run = await startCommand([process.execPath, '-e', failing], log.logger);
  t.truthy(run);
  await run!.exited;
  // the output lines may trail the exit by a moment
  for (let i = 0; i < 50 && log.events('command.output').length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  const output = log.events('command.output')[0];
  t.like(output, { level: 50, msg: 'Unable to access WireGuard interface nosuch0.', child: { event: 'error', code: 'E_NO_INTERFACE', name: 'reconfig-wg' } });
  t.like(log.events('command.exited')[0], { level: 50, exitCode: 2, code: 'E_COMMAND' });
});

test('a command that succeeds, or that we stop, is logged at info', async (t) => {
  const log = memoryLogger();
  const ok = await startCommand([process.execPath, '-e', 'process.exit(0)'], log.logger);
  await ok!.exited;
  const long = await startCommand([process.execPath, '-e', "process.on('SIGTERM', () => process.exit(143)); setTimeout(() => {}, 20000)"], log.logger);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await long!.stop(5000);
  const exits = log.events('command.exited');
  t.is(exits.length, 2);
  for (const exit of exits) t.is(exit.level, 30);
});

function readableLines(format: 'journal' | 'procd'): { out: string[]; err: string[]; logger: ReturnType<typeof createLogger> } {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (lines: string[]) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString().split('\n').filter((line) => line.length > 0));
        callback();
      },
    });
  return { out, err, logger: createLogger({ name: 'reconfig-wg', format, level: 'debug', destination: sink(out), errorDestination: sink(err) }) };
}

test('journal lines start with their syslog priority and read like the pretty ones, fields as JSON', (t) => {
  const { out, err, logger } = readableLines('journal');
  logger.debug({ event: 'session.learned', index: 7 }, 'session.learned');
  logger.info({ event: 'endpoint.updated', from: '192.0.2.10:1', to: '192.0.2.10:2', how: 'injected' }, 'peer now at 192.0.2.10:2 (injected)');
  logger.warn({ event: 'hook.failed', exitCode: 1 }, 'the hook exited 1');
  logger.error({ event: 'error', code: 'E_PERSIST' }, 'endpoint not saved');
  logger.fatal({ event: 'error', code: 'E_INTERNAL' }, 'gone');
  t.deepEqual(out, [
    '<7>session.learned {"index":7}',
    '<6>endpoint.updated peer now at 192.0.2.10:2 (injected) {"from":"192.0.2.10:1","to":"192.0.2.10:2","how":"injected"}',
    '<4>hook.failed the hook exited 1 {"exitCode":1}',
    '<3>error endpoint not saved {"code":"E_PERSIST"}',
    '<2>error gone {"code":"E_INTERNAL"}',
  ]);
  t.deepEqual(err, [], 'the journal gets everything on stdout');
});

test('procd lines carry their level in words; warnings and worse go to stderr, which logd records as daemon.err', (t) => {
  const { out, err, logger } = readableLines('procd');
  logger.info({ event: 'listening', port: 51820 }, 'watching any');
  logger.warn({ event: 'capture.drops', dropped: 3 }, 'the kernel dropped 3 packets');
  logger.error({ event: 'error', code: 'E_PERSIST', privateKey: 'x' }, 'endpoint not saved');
  t.deepEqual(out, ['info: listening watching any {"port":51820}']);
  t.deepEqual(err, ['warn: capture.drops the kernel dropped 3 packets {"dropped":3}', 'error: error endpoint not saved {"code":"E_PERSIST","privateKey":"[secret]"}']);
});

test('an initiation timestamp is said once on a readable line, and a message never breaks the line', (t) => {
  const { out, logger } = readableLines('journal');
  logger.info({ event: 'initiation.accepted', timestamp: '2026-11-23T08:18:11.504Z' }, 'authentic initiation');
  logger.info({ event: 'command.output' }, 'two\nlines');
  t.deepEqual(out, ['<6>initiation.accepted authentic initiation (sent 2026-11-23T08:18:11.504Z)', '<6>command.output two lines']);
});

const isRoot = process.getuid?.() === 0;

const KNOCK = fileURLToPath(new URL('../src/knock/cli.js', import.meta.url));
const RECONFIG = fileURLToPath(new URL('../src/reconfig/cli.js', import.meta.url));

(isRoot ? test : test.skip)('a daemon whose stdout is the journal writes lines with their priority; on another file, JSON', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pid = join(dir, 'pk.pid');
  // port-knock on lo, for a port range nothing sends to: it starts, says so, and is stopped
  const argv = [KNOCK, '-p', '39990', '--range', '5', '-d', 'lo', '-c', 'true', '--pid-file', pid];
  const journal = await runBesideJournal(process.execPath, argv, 'stdout', /listening/);
  t.regex(journal.out, /^<6>listening /m, journal.out + journal.err);
  t.notRegex(journal.out, /^\{/m, 'no JSON line');
  const file = await runBesideJournal(process.execPath, argv, 'stderr', /listening/);
  t.regex(file.out, /^\{"level":30,.*"event":"listening"/m, file.out + file.err);
});

test('a usage or start-up error on a stderr that is the journal carries priority 3 (err); elsewhere it is the plain line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const argv = [RECONFIG, '-i', 'nosuch0', '--persist', 'none', '--pid-file', join(dir, 'rwg.pid'), '--state-file', join(dir, 'rwg.json')];
  const journal = await runBesideJournal(process.execPath, argv, 'stderr');
  t.regex(journal.err, /^<3>reconfig-wg: .*nosuch0/m);
  const plain = await runBesideJournal(process.execPath, argv, 'stdout');
  t.regex(plain.err, /^reconfig-wg: .*nosuch0/m);
  const usage = await runBesideJournal(process.execPath, [RECONFIG, '--frobnicate'], 'stderr');
  t.is(usage.err, '<3>reconfig-wg: unknown flag --frobnicate. See --help.\n', 'a usage error too');
});
