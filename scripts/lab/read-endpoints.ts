/**
 * Reads an interface's endpoints in-process (src/wireguard/endpoints.ts) and prints how it was
 * answered and what, as one JSON line: run inside a lab namespace, where the interface is (the
 * kernel's generic netlink answers for the caller's own network namespace only). A peer without
 * an endpoint has null.
 *
 *   node dist/scripts/lab/read-endpoints.js IFACE
 */
import { createEndpointReader } from '../../src/wireguard/endpoints.js';

const iface = process.argv[2];
if (iface === undefined) {
  process.stderr.write('usage: read-endpoints IFACE\n');
  process.exit(2);
}
const reader = createEndpointReader();
try {
  const endpoints = await reader.read(iface);
  process.stdout.write(`${JSON.stringify({ source: reader.source, endpoints: Object.fromEntries([...endpoints].map(([key, endpoint]) => [key, endpoint ?? null])) })}\n`);
} catch (error) {
  process.stderr.write(`read-endpoints: ${(error as Error).message}\n`);
  process.exitCode = 1;
} finally {
  reader.close();
}
