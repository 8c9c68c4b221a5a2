/**
 * For the kill -9 test: rewrites a wg-quick file's Endpoint for one peer in a loop, alternating
 * between the endpoints given, through the real persister. Bounded: at most 100,000 writes or
 * 20 s. Prints one line after the first write, so the test knows writing has begun.
 *   node wgquick-writer.js PATH PUBLIC_KEY ENDPOINT...
 */
import { wgQuickPersister } from '../../src/reconfig/tell/persist-wgquick.js';

const [path, key, ...endpoints] = process.argv.slice(2);
if (path === undefined || key === undefined || endpoints.length === 0) {
  process.stderr.write('usage: wgquick-writer PATH PUBLIC_KEY ENDPOINT...\n');
  process.exit(2);
}
const persister = wgQuickPersister(path);
const deadline = Date.now() + 20_000;
for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
  await persister.persist(key, endpoints[i % endpoints.length] as string);
  if (i === 0) process.stdout.write('written\n');
}
