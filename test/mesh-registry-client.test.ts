import test from 'ava';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { RegistryClient, RegistryUnreachable } from '../src/mesh/registry-client.js';
import { fixturePeer, label, ptrAnswer, srvAnswer, type FixturePeer } from './helpers/wgsd-answers.js';

const ZONE = 'mesh.example';

/** A registry on loopback answering in wgsd's layout; `before` may send something first. */
async function registry(peers: FixturePeer[], before?: (socket: Socket, query: dnsPacket.DecodedPacket, from: RemoteInfo) => Promise<boolean | void>): Promise<{ port: number; close(): void; queries: number }> {
  const socket = createSocket('udp4');
  const state = { port: 0, queries: 0, close: () => socket.close() };
  socket.on('message', (bytes, from) => {
    void (async () => {
      state.queries++;
      const query = dnsPacket.decode(bytes);
      if (before !== undefined && (await before(socket, query, from)) === true) return;
      const question = query.questions![0]!;
      const answer =
        question.type === 'PTR'
          ? ptrAnswer(query.id!, ZONE, peers)
          : srvAnswer(query.id!, ZONE, peers.find((peer) => question.name.startsWith(label(peer.key)))!);
      socket.send(answer, from.port, from.address);
    })();
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  state.port = socket.address().port;
  return state;
}

const client = (port: number, tries = 2) => new RegistryClient({ registry: { address: '127.0.0.1', port }, zone: ZONE, maxPeers: 8, timeoutMs: 300, tries });

test('the client lists every peer with its endpoint and prefixes', async (t) => {
  const peers = [fixturePeer('192.0.2.20', 40000), fixturePeer('192.0.2.21', 40001, ['203.0.113.21/32'])];
  const server = await registry(peers);
  try {
    const listing = await client(server.port).list();
    t.deepEqual(listing.peers.map((p) => p.endpoint).sort(), ['192.0.2.20:40000', '192.0.2.21:40001']);
    t.deepEqual(listing.ignored, {});
  } finally {
    server.close();
  }
});

test('a forged answer with the wrong id, from another port, comes to nothing; the real one still counts', async (t) => {
  const peers = [fixturePeer()];
  const forger = createSocket('udp4');
  await new Promise<void>((resolve) => forger.bind(0, '127.0.0.1', resolve));
  const server = await registry(peers, async (socket, query, from) => {
    const wrongId = ptrAnswer((query.id! + 1) & 0xffff, ZONE, [fixturePeer()]);
    socket.send(wrongId, from.port, from.address);
    forger.send(ptrAnswer(query.id!, ZONE, [fixturePeer()]), from.port, from.address);
    await new Promise((resolve) => setTimeout(resolve, 20));
  });
  try {
    const listing = await client(server.port).list();
    t.is(listing.peers.length, 1);
    t.is(listing.peers[0]!.publicKey, peers[0]!.key.toString('base64'));
    t.true((listing.ignored['wrong-id'] ?? 0) >= 1);
    t.true((listing.ignored['foreign-source'] ?? 0) >= 1);
  } finally {
    server.close();
    forger.close();
  }
});

test('a registry that does not answer is tried again, then said', async (t) => {
  const server = await registry([], async () => true);
  try {
    const error = await t.throwsAsync(client(server.port, 3).list(), { instanceOf: RegistryUnreachable });
    t.is(error?.reason, 'timeout');
    t.is(server.queries, 3);
  } finally {
    server.close();
  }
});

test('a peer whose SRV answer is hostile is left out and counted; the others are listed', async (t) => {
  const good = fixturePeer('192.0.2.20', 40000);
  const bad = fixturePeer('192.0.2.21', 40001);
  const server = await registry([good, bad], async (socket, query, from) => {
    const question = query.questions![0]!;
    if (question.type === 'SRV' && question.name.startsWith(label(bad.key))) {
      socket.send(srvAnswer(query.id!, ZONE, bad, { address: '127.0.0.1' }), from.port, from.address);
      return true;
    }
    return false;
  });
  try {
    const listing = await client(server.port).list();
    t.deepEqual(listing.peers.map((p) => p.endpoint), ['192.0.2.20:40000']);
    t.is(listing.ignored['bad-address'], 1);
  } finally {
    server.close();
  }
});
