/**
 * Sends UDP payloads from inside a lab namespace (run through `ip netns exec`):
 *   node send-udp.js HOST PORT HEX [HEX …]
 * One datagram per HEX argument, in order, then exits. Used to replay and forge packets.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

const [hostArg, portArg, ...payloads] = process.argv.slice(2);
const port = Number(portArg);
if (hostArg === undefined || !Number.isInteger(port) || port < 1 || port > 65535 || payloads.length === 0) {
  process.stderr.write('usage: send-udp HOST PORT HEX [HEX …]\n');
  process.exit(2);
}
const socket = createSocket(isIPv6(hostArg) ? 'udp6' : 'udp4');
for (const hex of payloads) {
  await new Promise<void>((resolve, reject) => {
    socket.send(Buffer.from(hex, 'hex'), port, hostArg, (error) => (error ? reject(error) : resolve()));
  });
}
socket.close();
