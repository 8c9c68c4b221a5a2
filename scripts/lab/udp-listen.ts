/**
 * A UDP listener for lab namespaces (run through `ip netns exec`):
 *   node udp-listen.js PORT [SECONDS]
 * Binds PORT on 0.0.0.0 and [::] (IPv6 only), prints `listening` once both are bound, then one
 * JSON line per datagram: {"from":ADDRESS,"port":PORT,"payload":HEX}. Exits after SECONDS
 * (default 120), so it never outlives a test that forgot it.
 */
import { createSocket, type Socket } from 'node:dgram';

const [portArg, secondsArg] = process.argv.slice(2);
const port = Number(portArg);
const seconds = secondsArg === undefined ? 120 : Number(secondsArg);
if (!Number.isInteger(port) || port < 1 || port > 65535 || !(seconds > 0)) {
  process.stderr.write('usage: udp-listen PORT [SECONDS]\n');
  process.exit(2);
}

const bind = (socket: Socket, address: string): Promise<void> =>
  new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => resolve());
  });

const sockets = [createSocket('udp4'), createSocket({ type: 'udp6', ipv6Only: true })];
for (const socket of sockets) {
  socket.on('message', (payload, from) => {
    process.stdout.write(`${JSON.stringify({ from: from.address, port: from.port, payload: payload.toString('hex') })}\n`);
  });
}
await bind(sockets[0]!, '0.0.0.0');
await bind(sockets[1]!, '::');
process.stdout.write('listening\n');
setTimeout(() => {
  for (const socket of sockets) socket.close();
}, seconds * 1000).unref();
const stop = (): void => {
  for (const socket of sockets) socket.close();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
