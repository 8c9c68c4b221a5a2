/**
 * The example hooks in examples/hooks/, each run the way reconfig-wg runs a --hook (split
 * without a shell, placeholders filled, RECONFIG_WG_* set) against a stand-in on this machine:
 * a `logger` that records its arguments, an HTTP server that records the POST (real curl), and
 * a DNS server on 127.0.0.1 that decodes the RFC 2136 update (real nsupdate) and answers it.
 */
import { createSocket } from 'node:dgram';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';
import { parseCommand } from '../src/common/command.js';
import { runHook, type HookValues } from '../src/reconfig/tell/hook.js';
import { memoryLogger } from './helpers/memory-logger.js';

const HOOKS = fileURLToPath(new URL('../../examples/hooks/', import.meta.url));
const hasTool = async (tool: string): Promise<boolean> => (await execa('sh', ['-c', `command -v ${tool}`], { reject: false })).exitCode === 0;
const withCurl = (await hasTool('curl')) ? test : test.skip;
const withNsupdate = (await hasTool('nsupdate')) ? test : test.skip;

const PEER = 'Kom+SrR25jnwN16JPGIytgHWkpg2q05bPAuBODzQlg8=';
const change = (to: string, host: string, port: string): HookValues => ({ interface: 'wg0', peer: PEER, from: '192.0.2.10:7844', to, host, port, how: 'injected' });
const V4 = change('192.0.2.10:11361', '192.0.2.10', '11361');
const V6 = change('[2001:db8::7]:51820', '2001:db8::7', '51820');

/** Runs a --hook as the daemon does; returns the outcome and what it logged. */
async function hook(text: string, values: HookValues) {
  const parsed = parseCommand(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  const log = memoryLogger();
  const outcome = await runHook(parsed.value, values, log.logger, 10_000);
  return { outcome, log };
}

test.serial('syslog.sh writes one line to the system log naming the peer, both endpoints and how', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-hook-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // the stand-in logger, first on the PATH the hook inherits
  writeFileSync(join(dir, 'logger'), `#!/bin/sh\nfor word in "$@"; do printf '%s\\n' "$word"; done >'${join(dir, 'logged')}'\n`);
  chmodSync(join(dir, 'logger'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path ?? ''}`;
  t.teardown(() => {
    process.env.PATH = path;
  });
  const { outcome } = await hook(join(HOOKS, 'syslog.sh'), V4);
  t.deepEqual(outcome, { kind: 'exited', exitCode: 0 });
  t.deepEqual(readFileSync(join(dir, 'logged'), 'utf8').split('\n').slice(0, -1), [
    '-t', 'reconfig-wg-hook', '-p', 'daemon.notice',
    `peer ${PEER} on wg0 moved from 192.0.2.10:7844 to 192.0.2.10:11361 (injected)`,
  ]);
  // outside reconfig-wg it says what it is for, and fails
  const alone = await execa(join(HOOKS, 'syslog.sh'), [], { reject: false, env: { RECONFIG_WG_PEER: '' } });
  t.not(alone.exitCode, 0);
  t.regex(alone.stderr, /run this as reconfig-wg's --hook/);
});

withCurl('ntfy.sh POSTs the change to the topic URL, with the token from NTFY_TOKEN, and a refused POST fails the hook', async (t) => {
  const received: { method?: string; url?: string; headers: Record<string, unknown>; body: string }[] = [];
  let status = 200;
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ method: request.method, url: request.url, headers: request.headers, body });
      response.writeHead(status).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/my-router`;

  process.env.NTFY_TOKEN = 'tk_example';
  t.teardown(() => delete process.env.NTFY_TOKEN);
  const { outcome } = await hook(`${join(HOOKS, 'ntfy.sh')} ${url}`, V4);
  t.deepEqual(outcome, { kind: 'exited', exitCode: 0 });
  t.is(received.length, 1);
  t.like(received[0], { method: 'POST', url: '/my-router', body: `${PEER} is now at 192.0.2.10:11361 (was 192.0.2.10:7844; injected)` });
  t.like(received[0]!.headers, { title: 'WireGuard peer moved on wg0', authorization: 'Bearer tk_example' });

  status = 403;
  const refused = await hook(`${join(HOOKS, 'ntfy.sh')} ${url}`, V4);
  t.deepEqual(refused.outcome, { kind: 'exited', exitCode: 22 }, 'curl --fail: the hook fails, and reconfig-wg logs it');
  t.is(refused.log.events('hook.failed').length, 1);
});

interface DnsUpdate {
  readonly zone: string;
  readonly records: { name: string; type: number; class: number; ttl: number; data: string }[];
}

/** A DNS server on 127.0.0.1 that takes RFC 2136 updates, records them and answers NOERROR. */
async function dnsStandIn(): Promise<{ port: number; updates: DnsUpdate[]; close: () => void }> {
  const updates: DnsUpdate[] = [];
  const socket = createSocket('udp4');
  const readName = (message: Buffer, start: number): [string, number] => {
    const labels: string[] = [];
    let at = start;
    let end = -1;
    for (;;) {
      const length = message[at]!;
      if (length === 0) break;
      if ((length & 0xc0) === 0xc0) {
        if (end === -1) end = at + 2;
        at = message.readUInt16BE(at) & 0x3fff;
        continue;
      }
      labels.push(message.subarray(at + 1, at + 1 + length).toString());
      at += 1 + length;
    }
    return [labels.join('.'), end === -1 ? at + 1 : end];
  };
  socket.on('message', (message, remote) => {
    const opcode = (message[2]! >> 3) & 0xf;
    if (opcode === 5) {
      let [zone, at] = readName(message, 12);
      at += 4; // zone type SOA, class IN
      const prerequisites = message.readUInt16BE(6);
      const count = message.readUInt16BE(8);
      const records: DnsUpdate['records'] = [];
      for (let i = 0; i < prerequisites + count; i++) {
        const [name, next] = readName(message, at);
        const type = message.readUInt16BE(next);
        const klass = message.readUInt16BE(next + 2);
        const ttl = message.readUInt32BE(next + 4);
        const length = message.readUInt16BE(next + 8);
        const rdata = message.subarray(next + 10, next + 10 + length);
        const data = type === 1 && length === 4 ? [...rdata].join('.') : type === 28 && length === 16 ? (rdata.toString('hex').match(/.{4}/g) ?? []).join(':') : rdata.toString('hex');
        if (i >= prerequisites) records.push({ name, type, class: klass, ttl, data });
        at = next + 10 + length;
      }
      updates.push({ zone, records });
    }
    // the answer: the same id and zone section, QR set, the opcode kept, rcode NOERROR
    const header = Buffer.from(message.subarray(0, 12));
    header[2] = 0x80 | (opcode << 3);
    header[3] = 0;
    const [, zoneEnd] = readName(message, 12);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(0, 6);
    header.writeUInt16BE(0, 8);
    header.writeUInt16BE(0, 10);
    socket.send(Buffer.concat([header, message.subarray(12, zoneEnd + 4)]), remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, updates, close: () => socket.close() };
}

withNsupdate('nsupdate.sh replaces the A record (AAAA for IPv6) of the peer\'s name with its new address', async (t) => {
  const dns = await dnsStandIn();
  t.teardown(dns.close);
  const server = `127.0.0.1#${dns.port}`;
  const v4 = await hook(`${join(HOOKS, 'nsupdate.sh')} ${server} example.org road.example.org`, V4);
  t.deepEqual(v4.outcome, { kind: 'exited', exitCode: 0 }, JSON.stringify(v4.log.events('command.output')));
  const v6 = await hook(`${join(HOOKS, 'nsupdate.sh')} ${server} example.org road.example.org`, V6);
  t.deepEqual(v6.outcome, { kind: 'exited', exitCode: 0 }, JSON.stringify(v6.log.events('command.output')));
  t.deepEqual(dns.updates, [
    {
      zone: 'example.org',
      records: [
        { name: 'road.example.org', type: 1, class: 255, ttl: 0, data: '' },
        { name: 'road.example.org', type: 1, class: 1, ttl: 60, data: '192.0.2.10' },
      ],
    },
    {
      zone: 'example.org',
      records: [
        { name: 'road.example.org', type: 28, class: 255, ttl: 0, data: '' },
        { name: 'road.example.org', type: 28, class: 1, ttl: 60, data: '2001:0db8:0000:0000:0000:0000:0000:0007' },
      ],
    },
  ]);
});

withNsupdate('nsupdate.sh with a file of names updates the peer\'s own name and leaves a peer without one alone', async (t) => {
  const dns = await dnsStandIn();
  t.teardown(dns.close);
  const dir = mkdtempSync(join(tmpdir(), 'rwg-hook-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const names = join(dir, 'names');
  writeFileSync(names, `${PEER} road.example.org\nxTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg= other.example.org\n`);
  const named = await hook(`${join(HOOKS, 'nsupdate.sh')} 127.0.0.1#${dns.port} example.org ${names}`, V4);
  t.deepEqual(named.outcome, { kind: 'exited', exitCode: 0 });
  const stranger = await hook(`${join(HOOKS, 'nsupdate.sh')} 127.0.0.1#${dns.port} example.org ${names}`, { ...V4, peer: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' });
  t.deepEqual(stranger.outcome, { kind: 'exited', exitCode: 0 });
  t.is(dns.updates.length, 1);
  t.is(dns.updates[0]!.records[1]!.name, 'road.example.org');
});
