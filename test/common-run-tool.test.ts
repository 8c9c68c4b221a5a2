/**
 * Running tools and commands through execa: a tool's timeout stops it (TERM, then KILL), a
 * missing tool is a result, no error message ever carries what `wg` printed (its dump holds the
 * private key), and execa leaves the process's own signal and exit handling alone.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { startCommand } from '../src/common/child.js';
import { runTool } from '../src/common/run-tool.js';
import { runWg } from '../src/wireguard/wg.js';
import { memoryLogger } from './helpers/memory-logger.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';

test('a tool that outlives its timeout is stopped, TERM then KILL, and says so in our words only', async (t) => {
  const started = Date.now();
  // it prints the key, then ignores TERM: only KILL ends it
  const result = await runTool('sh', ['-c', `echo ${KEY}; trap '' TERM; exec sleep 20`], 300);
  const took = Date.now() - started;
  t.is(result.exitCode, undefined);
  t.is(result.failure, 'no answer within 0.3 s');
  t.true(took < 5000, `KILL followed TERM (${took} ms)`);
  t.false(result.failure!.includes(KEY));
});

test('a missing tool is a result: missing, with the reason, never a throw', async (t) => {
  const result = await runTool('/nonexistent/tool', ['x']);
  t.like(result, { exitCode: undefined, missing: true });
  t.regex(result.failure ?? '', /ENOENT/);
  const ran = await runTool('sh', ['-c', 'echo out; echo err >&2; exit 3']);
  t.deepEqual(ran, { exitCode: 3, stdout: 'out\n', stderr: 'err\n', missing: false, failure: undefined });
});

test('a wg that fails or dies after printing the private key: no error message carries the key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-wg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = process.env.PATH;
  t.teardown(() => {
    process.env.PATH = path;
  });
  process.env.PATH = `${dir}:${path ?? ''}`;
  const wg = (body: string): void => {
    writeFileSync(join(dir, 'wg'), `#!/bin/sh\necho "wg0\t${KEY}\tpub\t51820\toff"\n${body}\n`);
    chmodSync(join(dir, 'wg'), 0o755);
  };
  wg('kill -TERM $$');
  const killed = await runWg(['show', 'wg0', 'dump']).then(
    () => undefined,
    (error: Error) => error,
  );
  t.truthy(killed);
  t.is(killed!.message, 'wg show did not complete: ended by SIGTERM');
  t.false(JSON.stringify(killed).includes(KEY));
  wg('echo "Unable to access interface: No such device" >&2; exit 1');
  const failed = await runWg(['show', 'wg0', 'dump']);
  t.is(failed.exitCode, 1);
  t.is(failed.stderr, 'Unable to access interface: No such device\n');
});

test('execa installs no exit or signal hooks: the daemons handle SIGTERM, SIGHUP and SIGUSR1 themselves', async (t) => {
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT'] as const;
  const before = [...signals.map((s) => process.listenerCount(s)), process.listenerCount('exit')];
  const log = memoryLogger();
  const run = await startCommand(['sh', '-c', 'sleep 5'], log.logger);
  await runTool('sh', ['-c', 'exit 0']);
  const during = [...signals.map((s) => process.listenerCount(s)), process.listenerCount('exit')];
  await run!.stop(1000);
  t.deepEqual(during, before);
  t.deepEqual([...signals.map((s) => process.listenerCount(s)), process.listenerCount('exit')], before);
});

test('a command\'s output becomes log lines, one per line, the last one without a newline too', async (t) => {
  const log = memoryLogger();
  const run = await startCommand(['sh', '-c', 'printf "one\\ntwo\\n"; printf "err\\n" >&2; printf "last"'], log.logger);
  await run!.exited;
  for (let i = 0; i < 50 && log.events('command.output').length < 4; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  const lines = log.events('command.output').map((line) => `${String(line.stream)}:${String(line.msg)}`);
  t.deepEqual(lines.filter((line) => line.startsWith('stdout')), ['stdout:one', 'stdout:two', 'stdout:last']);
  t.deepEqual(lines.filter((line) => line.startsWith('stderr')), ['stderr:err']);
});
