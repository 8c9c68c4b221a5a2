/**
 * Opens the injector (and, with --pinhole, the conntrack pinholer) in the namespace it runs in
 * (through `ip netns exec`) and sends one UDP packet with a foreign source:
 *   node inject-once.js [--pinhole SECONDS] [--checksum good|bad|zero] SRC SPORT DST DPORT HEX
 *   node inject-once.js --open injector|pinholer
 *   node inject-once.js --remove SRC SPORT DST DPORT HEX   (removes the flow's conntrack entry only)
 *   node inject-once.js --self-test PORT     (reconfig-wg's loopback self-test, on PORT)
 * Prints one JSON line: {"ok":true,…} or {"ok":false,"reason":…}, or {"code":…,"message":…}
 * when opening failed. Exit 0 sent, 1 failed, 2 usage.
 */
import { isIP } from 'node:net';
import { isReconfigError } from '../../src/common/errors.js';
import { UDP_CHECKSUM_OFFSET } from '../../src/net/checksum.js';
import { openPinholer } from '../../src/net/conntrack.js';
import { buildUdpPacket, openInjector, type UdpTuple } from '../../src/net/inject.js';
import { selfTestLoopback } from '../../src/reconfig/deliver.js';

const args = process.argv.slice(2);
const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
function option(name: string): string | undefined {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const [value] = args.splice(at, 2).slice(1);
  return value;
}

try {
  if (args[0] === '--self-test') {
    const injector = openInjector();
    const accepted = await selfTestLoopback(injector, Number(args[1]));
    injector.close();
    print({ ok: true, accepted: accepted ?? null });
    process.exit(0);
  }
  if (args[0] === '--open') {
    if (args[1] === 'pinholer') {
      openPinholer().close();
      print({ ok: true });
    } else {
      const injector = openInjector();
      print({ ok: true, families: [...injector.families] });
      injector.close();
    }
    process.exit(0);
  }
  const pinhole = option('--pinhole');
  const removeAt = args.indexOf('--remove');
  const removeOnly = removeAt >= 0;
  if (removeOnly) args.splice(removeAt, 1);
  const checksum = option('--checksum') ?? 'good';
  const [src, srcPort, dst, dstPort, hex] = args;
  const family = isIP(src ?? '');
  if (src === undefined || dst === undefined || hex === undefined || (family !== 4 && family !== 6) || !['good', 'bad', 'zero'].includes(checksum)) {
    process.stderr.write('usage: inject-once [--pinhole SECONDS] [--checksum good|bad|zero] SRC SPORT DST DPORT HEX\n');
    process.exit(2);
  }
  const tuple: UdpTuple = { family, src, srcPort: Number(srcPort), dst, dstPort: Number(dstPort) };
  const payload = Buffer.from(hex, 'hex');
  let pinholed: string | undefined;
  if (pinhole !== undefined) {
    const pinholer = openPinholer();
    const opened = pinholer.open(tuple, Number(pinhole));
    pinholer.close();
    if (!opened.ok) {
      print({ ok: false, reason: opened.reason });
      process.exit(1);
    }
    pinholed = opened.value;
  }
  if (removeOnly) {
    // Only remove the flow's conntrack entry, as a hand-over that settled untaken does.
    const pinholer = openPinholer();
    const removed = pinholer.remove(tuple);
    pinholer.close();
    print(removed.ok ? { ok: true } : { ok: false, reason: removed.reason });
    process.exit(removed.ok ? 0 : 1);
  }
  const injector = openInjector();
  let sent;
  if (checksum === 'good') {
    sent = injector.inject(tuple, payload);
  } else {
    const packet = buildUdpPacket(tuple, payload);
    const at = (family === 4 ? 20 : 40) + UDP_CHECKSUM_OFFSET;
    packet.writeUInt16BE(checksum === 'zero' ? 0 : packet.readUInt16BE(at) ^ 0x0101, at);
    sent = injector.send(family, dst, packet);
  }
  injector.close();
  print(sent.ok ? { ok: true, pinholed } : { ok: false, reason: sent.reason });
  process.exit(sent.ok ? 0 : 1);
} catch (error) {
  if (!isReconfigError(error)) throw error;
  print({ code: error.code, message: error.message });
  process.exit(1);
}
