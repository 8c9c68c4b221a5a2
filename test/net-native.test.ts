/**
 * The socket addon is defensive: a wrong argument type is a TypeError, a bad descriptor or
 * length is a negative errno, and nothing takes the process down. No privileges needed.
 */
import test from 'ava';
import { errnoName, errnoText, loadNativeSockets, type NativeSockets } from '../src/net/native.js';

const errno = (value: unknown): string => (typeof value === 'number' ? errnoName(value) : 'not an errno');

function sockets(): NativeSockets {
  const native = loadNativeSockets();
  if ('error' in native) throw new Error(native.error);
  return native.sockets;
}

test('the addon loads from the built tree and has exactly its primitives', (t) => {
  t.deepEqual(Object.keys(sockets()).sort(), [
    'attachFilter',
    'close',
    'closeInBackground',
    'duplicate',
    'netlinkReceive',
    'netlinkSend',
    'openNetlinkGeneric',
    'openNetlinkNetfilter',
    'openRaw',
    'openUdpOnDevice',
    'packetSockets',
    'receiveFrom',
    'sendTo',
    'sendToUdp',
    'unwatch',
    'watch',
  ]);
});

test('wrong argument types throw a TypeError instead of crashing', (t) => {
  const native = sockets() as unknown as Record<string, (...args: unknown[]) => unknown>;
  t.throws(() => native.openRaw!('4'), { instanceOf: TypeError });
  t.throws(() => native.sendTo!(3, 4, 'c0000201', Buffer.alloc(28)), { instanceOf: TypeError });
  t.throws(() => native.sendTo!(3, 4, Buffer.alloc(4)), { instanceOf: TypeError });
  t.throws(() => native.netlinkSend!(3, [1, 2, 3]), { instanceOf: TypeError });
  t.throws(() => native.netlinkReceive!(), { instanceOf: TypeError });
  t.throws(() => native.close!(null), { instanceOf: TypeError });
  t.throws(() => native.openUdpOnDevice!(4, 7, Buffer.alloc(4), 53), { instanceOf: TypeError });
  t.throws(() => native.receiveFrom!(3), { instanceOf: TypeError });
  t.throws(() => native.sendToUdp!(3, 4, Buffer.alloc(4), 53, 'x'), { instanceOf: TypeError });
  t.throws(() => native.watch!(3, 'not a function'), { instanceOf: TypeError });
  t.throws(() => native.unwatch!({}), { instanceOf: TypeError });
  t.throws(() => native.openNetlinkNetfilter!('1'), { instanceOf: TypeError });
});

test('bad descriptors, families and lengths are negative errno numbers with names', (t) => {
  const native = sockets();
  t.is(errnoName(native.openRaw(5 as 4)), 'EAFNOSUPPORT');
  t.is(errnoName(native.sendTo(-1, 4, Buffer.alloc(4), Buffer.alloc(28))), 'EINVAL');
  t.is(errnoName(native.sendTo(1_000_000, 4, Buffer.alloc(3), Buffer.alloc(28))), 'EINVAL', 'an address of the wrong length');
  t.is(errnoName(native.sendTo(1_000_000, 4, Buffer.alloc(4), Buffer.alloc(0))), 'EINVAL', 'an empty packet');
  t.is(errnoName(native.sendTo(1_000_000, 6, Buffer.alloc(16), Buffer.alloc(48))), 'EBADF');
  t.is(errnoName(native.netlinkSend(1_000_000, Buffer.alloc(8))), 'EINVAL', 'shorter than a netlink header');
  t.is(errnoName(native.netlinkSend(1_000_000, Buffer.alloc(16))), 'EBADF');
  t.is(errnoName(native.close(-3)), 'EBADF');
  t.is(errnoName(native.openUdpOnDevice(4, '', Buffer.alloc(4), 53)), 'EINVAL', 'no device');
  t.is(errnoName(native.openUdpOnDevice(4, 'a-name-longer-than-ifnamsiz', Buffer.alloc(4), 53)), 'EINVAL');
  t.is(errnoName(native.openUdpOnDevice(6, 'lo', Buffer.alloc(4), 53)), 'EINVAL', 'an address of the wrong length');
  t.is(errnoName(native.openUdpOnDevice(4, 'lo', Buffer.alloc(4), 70_000)), 'EINVAL', 'a port out of range');
  t.is(errno(native.receiveFrom(1_000_000, 0)), 'EINVAL', 'no room');
  t.is(errno(native.receiveFrom(1_000_000, 512)), 'EBADF');
  t.is(errnoName(native.sendToUdp(1_000_000, 4, Buffer.alloc(4), 0, Buffer.alloc(1))), 'EINVAL', 'port 0');
  t.is(errnoText(-1), 'EPERM (operation not permitted)');
  t.is(errnoText(-100_000), 'errno 100000');
});

test('a netlink socket opens, and a read with nothing sent times out within its bound', (t) => {
  const native = sockets();
  const fd = native.openNetlinkNetfilter();
  t.true(fd >= 0, errnoText(fd));
  const start = Date.now();
  const answer = native.netlinkReceive(fd, 50);
  t.is(typeof answer === 'number' ? errnoName(answer) : 'a datagram', 'ETIMEDOUT');
  t.true(Date.now() - start < 5000);
  t.is(native.close(fd), 0);
});

test('a duplicate keeps a socket open after its first descriptor closes; closed in the background, it is gone', async (t) => {
  const native = sockets();
  const fd = native.openNetlinkGeneric();
  t.true(fd >= 0, errnoText(fd));
  const copy = native.duplicate(fd);
  t.true(copy >= 0 && copy !== fd, errnoText(copy));
  t.is(native.close(fd), 0);
  // The socket still answers through the duplicate: a read times out rather than failing.
  const answer = native.netlinkReceive(copy, 10);
  t.is(typeof answer === 'number' ? errnoName(answer) : 'a datagram', 'ETIMEDOUT');
  t.is(native.closeInBackground(copy), 0);
  let closed = false;
  for (let i = 0; i < 100 && !closed; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    closed = native.netlinkReceive(copy, 0) === -9; // EBADF: the pool thread closed it
  }
  t.true(closed, 'closed in the thread pool');
  t.is(errnoName(native.duplicate(-1)), 'EBADF');
  t.is(errnoName(native.closeInBackground(-1)), 'EBADF');
  const packet = native.packetSockets();
  t.true(Array.isArray(packet), 'a list of descriptors');
});

test('attachFilter says why it cannot: a bad expression in libpcap’s words, a bad link type or descriptor as errno', (t) => {
  const native = sockets();
  t.regex(String(native.attachFilter(1_000_000, 113, 1920, 'udp and and')), /syntax error/);
  t.is(errno(native.attachFilter(1_000_000, 105, 1920, 'udp')), 'EINVAL', 'a link type it does not rewrite for');
  t.is(errno(native.attachFilter(1_000_000, 113, 1920, 'udp')), 'EBADF');
  t.is(errno(native.attachFilter(-1, 113, 1920, 'udp')), 'EBADF');
  t.throws(() => (native.attachFilter as (...args: unknown[]) => unknown)(3, 113, 1920, 7), { instanceOf: TypeError });
});

test('a UDP socket bound to lo hears a datagram sent to it, through watch, and unwatch stops that', async (t) => {
  const { createSocket } = await import('node:dgram');
  const native = sockets();
  const port = 40_000 + Math.floor(Math.random() * 20_000);
  const bound = native.openUdpOnDevice(4, 'lo', Buffer.from([127, 0, 0, 1]), port);
  t.true(bound >= 0, errnoText(bound));
  t.is(errno(native.receiveFrom(bound, 512)), 'EAGAIN', 'nothing waiting yet');
  const got: string[] = [];
  const arrived = new Promise<void>((resolve) => {
    const handle = native.watch(bound, (status) => {
      t.is(status, 0);
      for (let i = 0; i < 8; i += 1) {
        const datagram = native.receiveFrom(bound, 4);
        if (typeof datagram === 'number') break;
        got.push(`${datagram.data.toString()} ${datagram.address.join('.')} ${datagram.truncated}`);
        native.sendToUdp(bound, 4, datagram.address, datagram.port, Buffer.from('pong'));
      }
      if (got.length > 0) {
        t.is(native.unwatch(handle as never), 0);
        t.is(native.unwatch(handle as never), 0, 'a second unwatch does nothing');
        resolve();
      }
    });
    t.not(typeof handle, 'number');
  });
  const client = createSocket('udp4');
  const answer = new Promise<string>((resolve) => client.once('message', (message) => resolve(message.toString())));
  client.send(Buffer.from('ping!'), port, '127.0.0.1');
  await arrived;
  t.deepEqual(got, ['ping 127.0.0.1 true'], 'cut to 4 bytes and marked truncated');
  t.is(await answer, 'pong');
  client.close();
  t.is(native.close(bound), 0);
});

test('without the built addon, openInjector and openPinholer fail with E_INJECT / E_PINHOLE and say how to build it', async (t) => {
  const { cpSync, mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { execFileSync } = await import('node:child_process');
  // A copy of the compiled modules in a tree that has no build/ directory.
  const root = mkdtempSync(join(tmpdir(), 'rwg-no-addon-'));
  try {
    const dist = new URL('../src/', import.meta.url);
    for (const dir of ['net', 'common']) cpSync(new URL(`${dir}/`, dist), join(root, 'dist', 'src', dir), { recursive: true });
    writeFileSync(join(root, 'package.json'), '{"type":"module"}');
    const script = join(root, 'try.js');
    writeFileSync(
      script,
      `import { openInjector } from './dist/src/net/inject.js';
       import { openPinholer } from './dist/src/net/conntrack.js';
       for (const open of [openInjector, openPinholer]) {
         try { open(); console.log('opened'); } catch (error) { console.log(JSON.stringify({ code: error.code, exitCode: error.exitCode, message: error.message })); }
       }`,
    );
    const lines = execFileSync(process.execPath, [script], { encoding: 'utf8' }).trim().split('\n').map((line) => JSON.parse(line) as { code: string; exitCode: number; message: string });
    t.deepEqual(lines.map((line) => line.code), ['E_INJECT', 'E_PINHOLE']);
    for (const line of lines) {
      t.is(line.exitCode, 1);
      t.regex(line.message, /reconfig_inject\.node/);
      t.regex(line.message, /npm run build:native/);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
