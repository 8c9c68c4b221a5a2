/**
 * Reading each peer's endpoint in-process, as `wg show IFACE endpoints` does: the UAPI answer of
 * a userspace WireGuard and the kernel's generic netlink dump, parsed from bytes built here
 * (keys that must never be kept among them); then, as root, against the lab's own WireGuard
 * (wireguard-go here, the kernel's in the VM suite), compared with what wg prints.
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { createLab, R2_V4, R2_V6 } from '../scripts/lab/lab.js';
import { nsRun } from '../scripts/lab/netns.js';
import { createEndpointReader } from '../src/wireguard/endpoints.js';
import { buildGetDeviceRequest, formatSockaddr, WireGuardGenetlink, type GenetlinkSockets } from '../src/wireguard/genetlink.js';
import { parseUapiEndpoints, uapiSocketPath } from '../src/wireguard/uapi.js';

const isRoot = process.getuid?.() === 0;
const KEY_A = Buffer.alloc(32, 0xa1);
const KEY_B = Buffer.alloc(32, 0xb2);
const SECRET = Buffer.alloc(32, 0x5e);

test('UAPI: each peer with its endpoint; private and preshared keys are not kept', (t) => {
  const answer = [
    `private_key=${SECRET.toString('hex')}`,
    'listen_port=51820',
    `public_key=${KEY_A.toString('hex')}`,
    `preshared_key=${SECRET.toString('hex')}`,
    'protocol_version=1',
    'endpoint=192.0.2.10:40000',
    'allowed_ip=203.0.113.10/32',
    `public_key=${KEY_B.toString('hex')}`,
    'allowed_ip=203.0.113.11/32',
    'errno=0',
    '',
    '',
  ].join('\n');
  const parsed = parseUapiEndpoints(answer);
  t.true(parsed.ok);
  if (!parsed.ok) return;
  t.deepEqual([...parsed.value], [
    [KEY_A.toString('base64'), '192.0.2.10:40000'],
    [KEY_B.toString('base64'), undefined],
  ]);
  t.false(JSON.stringify([...parsed.value]).includes(SECRET.toString('hex')));
  t.false(JSON.stringify([...parsed.value]).includes(SECRET.toString('base64')));
});

test('UAPI: an errno, a missing errno, or a malformed line is an error, never a throw', (t) => {
  t.deepEqual(parseUapiEndpoints('errno=19\n\n'), { ok: false, reason: 'errno 19' });
  t.false(parseUapiEndpoints(`public_key=${KEY_A.toString('hex')}\n`).ok);
  t.false(parseUapiEndpoints('garbage\nerrno=0\n\n').ok);
  t.false(parseUapiEndpoints('public_key=xyz\nerrno=0\n\n').ok);
  t.false(parseUapiEndpoints('endpoint=192.0.2.1:1\nerrno=0\n\n').ok);
});

test('UAPI: only a socket is a control socket, and only a plain interface name is looked up', (t) => {
  const here = fileURLToPath(new URL('.', import.meta.url));
  t.is(uapiSocketPath('wg0', here), undefined, 'no such socket');
  t.is(uapiSocketPath('../etc/passwd', '/'), undefined);
  t.is(uapiSocketPath('..', '/'), undefined);
  t.is(uapiSocketPath('a'.repeat(16), '/'), undefined);
});

test('sockaddr_in and sockaddr_in6 print as wg prints them', (t) => {
  const v4 = Buffer.from('0200c35cc000020a0000000000000000', 'hex'); // AF_INET, 50012, 192.0.2.10
  t.is(formatSockaddr(v4, 0, v4.length), '192.0.2.10:50012');
  const v6 = Buffer.alloc(28);
  v6.writeUInt16LE(10, 0);
  v6.writeUInt16BE(51820, 2);
  Buffer.from('20010db8000000000000000000000007', 'hex').copy(v6, 8);
  t.is(formatSockaddr(v6, 0, v6.length), '[2001:db8::7]:51820');
  t.is(formatSockaddr(v6, 0, 10), undefined, 'cut short');
  const other = Buffer.from(v4);
  other.writeUInt16LE(17, 0);
  t.is(formatSockaddr(other, 0, other.length), undefined, 'another family');
});

// ---- generic netlink, against answers built here ----

const align4 = (n: number): number => (n + 3) & ~3;

function nla(type: number, value: Buffer): Buffer {
  const out = Buffer.alloc(align4(4 + value.length));
  out.writeUInt16LE(4 + value.length, 0);
  out.writeUInt16LE(type, 2);
  value.copy(out, 4);
  return out;
}

const nested = (type: number, parts: readonly Buffer[]): Buffer => nla(type | 0x8000, Buffer.concat(parts));

function nlmsg(type: number, sequence: number, payload: Buffer, flags = 0): Buffer {
  const out = Buffer.alloc(16 + payload.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(sequence, 8);
  payload.copy(out, 16);
  return out;
}

const genl = (command: number, attributes: readonly Buffer[]): Buffer => Buffer.concat([Buffer.from([command, 1, 0, 0]), ...attributes]);

function sockaddr4(address: readonly number[], port: number): Buffer {
  const out = Buffer.alloc(16);
  out.writeUInt16LE(2, 0);
  out.writeUInt16BE(port, 2);
  Buffer.from(address).copy(out, 4);
  return out;
}

const FAMILY = 0x1c;

/** A kernel that answers the family request and a device dump split over two datagrams. */
function fakeKernel(answerDump: (sequence: number) => Buffer[]): GenetlinkSockets & { sent: Buffer[] } {
  const queue: Buffer[] = [];
  const sent: Buffer[] = [];
  return {
    sent,
    netlinkSend(_fd, message) {
      sent.push(message);
      const sequence = message.readUInt32LE(8);
      if (message.readUInt16LE(4) === 0x10) {
        queue.push(nlmsg(0x10, sequence, genl(1, [nla(2, Buffer.from('wireguard\0')), nla(1, Buffer.from([FAMILY, 0]))])));
        queue.push(nlmsg(2, sequence, Buffer.alloc(20))); // the ACK
      } else queue.push(...answerDump(sequence));
      return 0;
    },
    netlinkReceive() {
      return queue.shift() ?? -110;
    },
  };
}

test('generic netlink: a dump over several messages gives every peer, keys left unread', (t) => {
  const kernel = fakeKernel((sequence) => [
    Buffer.concat([
      nlmsg(FAMILY, sequence, genl(0, [nla(3, SECRET), nla(2, Buffer.from('wg0\0')), nested(8, [nested(0, [nla(1, KEY_A), nla(2, SECRET), nla(4, sockaddr4([192, 0, 2, 10], 40000))])])]), 2),
    ]),
    nlmsg(FAMILY, sequence, genl(0, [nla(2, Buffer.from('wg0\0')), nested(8, [nested(0, [nla(1, KEY_B)])])]), 2),
    nlmsg(3, sequence, Buffer.alloc(4), 2),
  ]);
  const wg = new WireGuardGenetlink(kernel, 3);
  const read = wg.endpoints('wg0');
  t.true(read.ok);
  if (!read.ok) return;
  t.deepEqual([...read.value], [
    [KEY_A.toString('base64'), '192.0.2.10:40000'],
    [KEY_B.toString('base64'), undefined],
  ]);
  const again = wg.endpoints('wg0');
  t.true(again.ok);
  t.is(kernel.sent.filter((m) => m.readUInt16LE(4) === 0x10).length, 1, 'the family id is asked once');
  const request = kernel.sent.at(-1)!;
  t.is(request.readUInt16LE(4), FAMILY);
  t.is(request.readUInt16LE(6) & 0x300, 0x300, 'a dump');
  t.deepEqual(request, buildGetDeviceRequest(FAMILY, 'wg0', request.readUInt32LE(8)));
});

test('generic netlink: an error, a malformed or an overrunning answer is an error, never a throw', (t) => {
  const errno = (value: number) => (sequence: number) => {
    const body = Buffer.alloc(20);
    body.writeInt32LE(value, 0);
    return [nlmsg(2, sequence, body)];
  };
  t.deepEqual(new WireGuardGenetlink(fakeKernel(errno(-19)), 3).endpoints('wg9'), { ok: false, reason: 'errno 19' });
  const overrun = (sequence: number): Buffer[] => {
    const message = nlmsg(FAMILY, sequence, genl(0, [nested(8, [nested(0, [nla(1, KEY_A)])])]));
    message.writeUInt16LE(200, 24); // the peers attribute claims more than the message holds
    return [message];
  };
  t.false(new WireGuardGenetlink(fakeKernel(overrun), 3).endpoints('wg0').ok);
  const shortKey = (sequence: number): Buffer[] => [nlmsg(FAMILY, sequence, genl(0, [nested(8, [nested(0, [nla(1, Buffer.alloc(31))])])]))];
  t.false(new WireGuardGenetlink(fakeKernel(shortKey), 3).endpoints('wg0').ok);
  const cut = (sequence: number): Buffer[] => [nlmsg(FAMILY, sequence, genl(0, [])).subarray(0, 18)];
  t.false(new WireGuardGenetlink(fakeKernel(cut), 3).endpoints('wg0').ok);
  t.false(new WireGuardGenetlink(fakeKernel(() => []), 3).endpoints('wg0').ok, 'no answer in time');
  t.false(new WireGuardGenetlink(fakeKernel(() => []), 3).endpoints('a-name-too-long-for-linux').ok);
});

test('a reader given a wg runner reads through it (how the daemon is tested without root)', async (t) => {
  const key = KEY_A.toString('base64');
  const reader = createEndpointReader({ run: async () => ({ exitCode: 0, stdout: `${key}\t192.0.2.10:40000\n`, stderr: '' }) });
  t.deepEqual([...(await reader.read('wg0'))], [[key, '192.0.2.10:40000']]);
  t.is(reader.source, 'wg');
  reader.close();
});

const READ_SCRIPT = fileURLToPath(new URL('../scripts/lab/read-endpoints.js', import.meta.url));

(isRoot ? test.serial : test.serial.skip)("the lab's WireGuard, read in-process, says what wg show says (IPv4 and IPv6 endpoints)", async (t) => {
  const lab = await createLab({ roamers: 2, firewall: 'open', connect: false });
  try {
    // R2 is told two endpoints and keeps a third peer without one.
    const [a, b] = lab.roamers;
    await nsRun(lab.r2.ns, 'wg', ['set', lab.r2.wg, 'peer', a!.publicKey, 'endpoint', `${R2_V4.replace(/\.1$/, '.10')}:40000`]);
    await nsRun(lab.r2.ns, 'wg', ['set', lab.r2.wg, 'peer', b!.publicKey, 'endpoint', `[${R2_V6.replace(/::1$/, '::10')}]:40001`]);
    const none = Buffer.alloc(32, 7).toString('base64');
    await nsRun(lab.r2.ns, 'wg', ['set', lab.r2.wg, 'peer', none]);
    const printed = await nsRun(lab.r2.ns, 'wg', ['show', lab.r2.wg, 'endpoints']);
    const expected = Object.fromEntries(
      printed
        .trim()
        .split('\n')
        .map((line) => line.split('\t'))
        .map(([key, endpoint]) => [key, endpoint === '(none)' ? null : endpoint]),
    );
    const out = JSON.parse(await nsRun(lab.r2.ns, process.execPath, [READ_SCRIPT, lab.r2.wg])) as { source: string; endpoints: Record<string, string | null> };
    t.is(out.source, lab.wireguard === 'kernel' ? 'netlink' : 'uapi');
    t.deepEqual(out.endpoints, expected);
    t.is(Object.keys(out.endpoints).length, 3, printed);
    // An interface that is not there: wg's own error, as before.
    await t.throwsAsync(nsRun(lab.r2.ns, process.execPath, [READ_SCRIPT, 'nosuchwg0']), { message: /nosuchwg0/ });
  } finally {
    await lab.close();
  }
});
