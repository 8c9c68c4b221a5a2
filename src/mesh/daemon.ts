/**
 * The mesh client: every other peer the registry lists gets a probe (endpoint, keepalive, no
 * allowed IPs), is promoted to its specific prefixes when a handshake completes, is watched, and
 * falls back to the hub when its direct path dies (path.ts decides; this module asks the
 * registry, reads WireGuard, does what was decided and tells: log and status file).
 *
 * Peers it did not add are never touched: the hub, peers an administrator configured, peers of
 * another program. What it added it removes again when it stops, and at start whatever a previous
 * run left (added.ts).
 */
import { dirname } from 'node:path';
import { logError } from '../common/errors.js';
import { ReconfigError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { acquirePidFile } from '../common/pidfile.js';
import { ensurePrivateDir } from '../common/private-dir.js';
import { handleSignals } from '../common/signals.js';
import { IDENTITY } from '../reconfig/identity.js';
import { resolveInterface, type WgRunner } from '../wireguard/wg.js';
import { AddedPeers } from './added.js';
import { meshFiles, type MeshOptions } from './options.js';
import { PeerPath, type PathAction, type PeerObservation, type Wanted } from './path.js';
import { containsAddress, parseAddress, parsePrefix, type Prefix } from './prefix.js';
import { RegistryClient, RegistryUnreachable, type Listing } from './registry-client.js';
import { selectPrefixes, type ScopeResult } from './scope.js';
import { removeMeshStatus, writeMeshStatus, type MeshPeerStatus, type MeshStatus } from './status.js';
import { interfaceNetworks, MeshWireGuard, type MeshInterface, type MeshPeer } from './wireguard.js';

export const MESH_PROGRAM = 'reconfig-wg mesh';

/** While a probe is young, WireGuard is read this often: a handshake is seen at once. */
const FAST_WATCH_MS = 100;
const FAST_WATCH_FOR_MS = 3_000;
/** A peer missing from this many listings in a row is gone. */
const GONE_AFTER_LISTINGS = 2;
/** The status file is rewritten on every change, and at least this often. */
const STATUS_EVERY_MS = 10_000;

export interface MeshDeps {
  readonly logger: Logger;
  readonly run?: WgRunner;
  readonly signals?: boolean;
  readonly now?: () => number;
}

export interface RunningMesh {
  readonly interface: string;
  readonly done: Promise<number>;
  stop(): Promise<number>;
}

interface Entry {
  path: PeerPath;
  wanted: Wanted;
  /** a listing came since the last step */
  fresh: boolean;
  refused: ScopeResult['refused'];
  missing: number;
}

function observe(peer: MeshPeer | undefined): PeerObservation | undefined {
  return peer === undefined ? undefined : { endpoint: peer.endpoint, latestHandshakeMs: peer.latestHandshakeMs, rxBytes: peer.rxBytes, txBytes: peer.txBytes };
}

function prefixesOf(peer: MeshPeer): Prefix[] {
  return peer.allowed.flatMap((text) => {
    const prefix = parsePrefix(text);
    return prefix.ok ? [prefix.value] : [];
  });
}

export async function startMesh(options: MeshOptions, deps: MeshDeps): Promise<RunningMesh> {
  const { logger } = deps;
  const clock = deps.now ?? Date.now;
  const iface = await resolveInterface(options.interface, deps.run);
  const files = meshFiles(options, iface);
  for (const [file, flag] of [[files.pidFile, '--pid-file'], [files.statusFile, '--status-file'], [files.peersFile, '--peers-file']] as const) {
    ensurePrivateDir(dirname(file), { fix: `Run it as root (it makes /run/reconfig-wg itself), or pass ${flag} with a path in a directory only root can write.` });
  }
  const wg = new MeshWireGuard(iface, deps.run);
  const first = await wg.read();
  const scope = options.scope ?? (await interfaceNetworks(iface));
  if (scope.length === 0) throw new ReconfigError('E_USAGE', `${iface} has no addresses to take the mesh's scope from: pass --scope with the tunnel's networks (e.g. --scope 203.0.113.0/24).`);
  const registryAddress = parseAddress(options.registry.address)!;
  const registryText = options.registry.address.includes(':') ? `[${options.registry.address}]:${options.registry.port}` : `${options.registry.address}:${options.registry.port}`;
  const release = acquirePidFile(files.pidFile, `${MESH_PROGRAM} for ${iface}`, IDENTITY);
  const added = new AddedPeers(files.peersFile, iface);
  const startedAt = new Date(clock()).toISOString();

  // what a previous run added and did not take away (it was killed): taken away now
  const leftover = added.load();
  if (leftover.problem !== undefined) logger.warn({ event: 'mesh.peers-file', file: files.peersFile }, `the list of added peers ${files.peersFile} is not used: ${leftover.problem}`);
  for (const key of leftover.keys) {
    try {
      if (first.peers.has(key)) await wg.remove(key);
      added.delete(key);
      logger.info({ event: 'mesh.leftover', interface: iface, peer: key }, 'removed a peer a previous run added');
    } catch (error) {
      release();
      throw error;
    }
  }

  const client = new RegistryClient({ registry: options.registry, zone: options.zone, maxPeers: options.maxPeers, timeoutMs: options.queryTimeoutMs, tries: options.queryTries });
  const entries = new Map<string, Entry>();
  const leftAlone = new Map<string, { since: string; why: string; endpoint: string | null }>();
  const registryState = { lastAnswer: null as string | null, lastError: null as string | null, peersListed: 0, beyondLimit: 0, ignored: {} as Record<string, number> };
  let hub: string | null = null;
  let listing: Listing | undefined;
  let listingInFlight = false;
  let nextListingAt = 0;
  let ticking: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let lastStatus = '';
  let lastStatusAt = 0;

  const fetchListing = (): void => {
    if (listingInFlight || stopped) return;
    listingInFlight = true;
    nextListingAt = clock() + options.intervalMs;
    client
      .list()
      .then((result) => {
        for (const [reason, n] of Object.entries(result.ignored)) registryState.ignored[reason] = (registryState.ignored[reason] ?? 0) + (n ?? 0);
        if (registryState.lastError !== null) logger.info({ event: 'mesh.registry.answering', registry: registryText }, 'the registry answers again');
        registryState.lastAnswer = new Date(clock()).toISOString();
        registryState.lastError = null;
        registryState.peersListed = result.peers.length;
        registryState.beyondLimit = result.beyondLimit;
        listing = result;
      })
      .catch((error: unknown) => {
        const why = error instanceof RegistryUnreachable ? error.reason : (error as Error).message;
        if (error instanceof RegistryUnreachable) registryState.ignored[error.reason] = (registryState.ignored[error.reason] ?? 0) + 1;
        if (registryState.lastError === null) logger.warn({ event: 'mesh.registry.unreachable', registry: registryText, reason: why }, `the registry ${registryText} gives no usable answer (${why}); paths stay as they are`);
        registryState.lastError = why;
      })
      .finally(() => {
        listingInFlight = false;
        kick();
      });
  };

  /** Applies a listing: new peers get a path, known ones their new wishes, missing ones count. */
  /** Takes a listing; returns the peers whose path began now (their probe is already queued). */
  const takeListing = (result: Listing, dump: MeshInterface, now: number): Set<string> => {
    const begun = new Set<string>();
    const listed = new Set<string>();
    const foreign = [...dump.peers.values()].filter((peer) => !added.has(peer.publicKey)).flatMap(prefixesOf);
    // prefixes of direct peers now, and those handed out in this pass
    const taken = new Map<string, Prefix[]>();
    for (const [key, entry] of entries) taken.set(key, entry.path.view().allowed.flatMap((text) => {
      const prefix = parsePrefix(text);
      return prefix.ok ? [prefix.value] : [];
    }));
    for (const peer of result.peers) {
      const key = peer.publicKey;
      if (key === dump.publicKey || key === hub) continue;
      listed.add(key);
      if (dump.peers.has(key) && !added.has(key)) {
        // configured by someone else: left as it is
        if (!leftAlone.has(key)) {
          leftAlone.set(key, { since: new Date(now).toISOString(), why: 'configured on the interface by someone else: left as it is', endpoint: dump.peers.get(key)?.endpoint ?? null });
          logger.info({ event: 'mesh.left-alone', interface: iface, peer: key }, 'a peer the registry lists is configured by someone else: left alone');
        }
        const entry = entries.get(key);
        if (entry !== undefined) entries.delete(key);
        continue;
      }
      leftAlone.delete(key);
      const others = [...taken.entries()].filter(([other]) => other !== key).flatMap(([, prefixes]) => prefixes);
      const selection = selectPrefixes(peer.allowed, { scope, foreign, registry: registryAddress, takenByOthers: others });
      taken.set(key, [...selection.accepted]);
      const wanted: Wanted = { endpoint: peer.endpoint, allowed: selection.accepted };
      const entry = entries.get(key);
      if (entry === undefined) {
        const path = new PeerPath(now, wanted, { deadAfterMs: options.deadAfterMs, probeWindowMs: options.probeWindowMs, backoffFirstMs: options.backoffFirstMs, backoffMaxMs: options.backoffMaxMs });
        entries.set(key, { path, wanted, fresh: false, refused: selection.refused, missing: 0 });
        begun.add(key);
        void apply(key, path.begin(observe(dump.peers.get(key))));
      } else {
        entry.wanted = wanted;
        entry.fresh = true;
        entry.refused = selection.refused;
        entry.missing = 0;
      }
    }
    for (const key of [...leftAlone.keys()]) if (!listed.has(key) || !dump.peers.has(key)) leftAlone.delete(key);
    for (const [key, entry] of entries) {
      if (listed.has(key)) continue;
      entry.missing++;
      if (entry.missing < GONE_AFTER_LISTINGS) continue;
      entries.delete(key);
      logger.info({ event: 'mesh.gone', interface: iface, peer: key }, 'the registry no longer lists the peer: removed');
      if (added.has(key)) void apply(key, [{ do: 'remove' }]);
    }
    return begun;
  };

  let applying: Promise<void> = Promise.resolve();
  /** Does what a path decided, in order, one `wg set` at a time. */
  const apply = (key: string, actions: readonly PathAction[]): Promise<void> => {
    applying = applying.then(async () => {
      for (const action of actions) {
        const view = entries.get(key)?.path.view();
        const fields = { interface: iface, peer: key, why: view?.why };
        try {
          switch (action.do) {
            case 'probe':
              added.add(key);
              await wg.probe(key, action.endpoint, options.keepalive);
              logger.info({ ...fields, event: 'mesh.probe', endpoint: action.endpoint }, `probing a direct path to ${action.endpoint}`);
              break;
            case 'follow':
              await wg.follow(key, action.endpoint, options.keepalive);
              logger.info({ ...fields, event: 'mesh.follow', endpoint: action.endpoint }, `following the peer to ${action.endpoint}`);
              break;
            case 'promote':
              await wg.setAllowed(key, action.allowed);
              logger.info({ ...fields, event: 'mesh.direct', allowed: action.allowed }, `direct: ${action.allowed.join(',')}`);
              break;
            case 'demote':
              await wg.setAllowed(key, []);
              logger.info({ ...fields, event: 'mesh.fallback' }, 'back via the hub');
              break;
            case 'remove':
              await wg.remove(key);
              added.delete(key);
              if (view?.kind === 'backed-off') logger.info({ ...fields, event: 'mesh.backoff' }, 'backed off');
              else if (view?.kind === 'quiet') logger.info({ ...fields, event: 'mesh.quiet' }, 'removed for a while, so the peer falls back too');
              else logger.info({ ...fields, event: 'mesh.removed' }, 'removed');
              break;
          }
        } catch (error) {
          logError(logger, error);
        }
      }
    });
    return applying;
  };

  const statusNow = (now: number): MeshStatus => {
    const peers: MeshPeerStatus[] = [];
    for (const [key, entry] of entries) {
      const view = entry.path.view();
      peers.push({
        publicKey: key,
        path: view.kind,
        why: view.why,
        since: new Date(view.since).toISOString(),
        endpoint: view.endpoint,
        allowed: view.allowed,
        refused: entry.refused,
        failures: view.failures,
        nextProbe: view.until === undefined ? null : new Date(view.until).toISOString(),
      });
    }
    for (const [key, alone] of leftAlone) peers.push({ publicKey: key, path: 'left-alone', why: alone.why, since: alone.since, endpoint: alone.endpoint, allowed: [], refused: [], failures: 0, nextProbe: null });
    return {
      kind: 'reconfig-wg-mesh',
      interface: iface,
      pid: process.pid,
      startedAt,
      updatedAt: new Date(now).toISOString(),
      registry: registryText,
      zone: options.zone,
      scope: scope.map((prefix) => prefix.text),
      hub,
      registryState: { ...registryState, ignored: { ...registryState.ignored } },
      peers,
    };
  };

  const writeStatus = (now: number): void => {
    const status = statusNow(now);
    const shape = JSON.stringify({ ...status, updatedAt: '' });
    if (shape === lastStatus && now - lastStatusAt < STATUS_EVERY_MS) return;
    lastStatus = shape;
    lastStatusAt = now;
    try {
      writeMeshStatus(files.statusFile, status);
    } catch (error) {
      logError(logger, error);
    }
  };

  const tick = async (): Promise<void> => {
    const now = clock();
    if (now >= nextListingAt) fetchListing();
    let dump: MeshInterface;
    try {
      dump = await wg.read();
    } catch (error) {
      logError(logger, error);
      return;
    }
    const hubPeer = [...dump.peers.values()].find((peer) => !added.has(peer.publicKey) && prefixesOf(peer).some((prefix) => containsAddress(prefix, registryAddress)));
    if ((hubPeer?.publicKey ?? null) !== hub) {
      hub = hubPeer?.publicKey ?? null;
      if (hub === null) logger.warn({ event: 'mesh.no-hub', interface: iface, registry: registryText }, `no peer of ${iface} routes the registry's address ${options.registry.address}: nothing is probed until one does`);
    }
    if (hub === null) {
      writeStatus(now);
      return;
    }
    let begun = new Set<string>();
    if (listing !== undefined) {
      const result = listing;
      listing = undefined;
      begun = takeListing(result, dump, now);
    }
    for (const [key, entry] of entries) {
      // a path that began in this pass: the dump was read before its probe, so it would look gone
      if (begun.has(key)) continue;
      const peer = dump.peers.get(key);
      const seen = added.has(key) ? observe(peer) : undefined;
      const actions = entry.path.step(now, seen, entry.fresh ? entry.wanted : undefined);
      entry.fresh = false;
      if (actions.length > 0) await apply(key, actions);
    }
    await applying;
    writeStatus(now);
  };

  const schedule = (): void => {
    if (stopped) return;
    const now = clock();
    const young = [...entries.values()].some((entry) => {
      const view = entry.path.view();
      return view.kind === 'probing' && now - view.since < FAST_WATCH_FOR_MS;
    });
    timer = setTimeout(run, young ? FAST_WATCH_MS : options.watchMs);
  };
  const run = (): void => {
    if (stopped || ticking !== undefined) return;
    clearTimeout(timer);
    ticking = tick()
      .catch((error: unknown) => logError(logger, error))
      .finally(() => {
        ticking = undefined;
        schedule();
      });
  };
  function kick(): void {
    if (ticking === undefined) run();
  }

  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  let stopping: Promise<number> | undefined;
  let unhandle = (): void => undefined;
  const stop = (code = 0): Promise<number> => {
    stopping ??= (async () => {
      stopped = true;
      clearTimeout(timer);
      unhandle();
      await ticking;
      await applying;
      // what it added goes; what it did not add was never touched
      for (const key of added.list()) {
        try {
          await wg.remove(key);
          added.delete(key);
        } catch (error) {
          logError(logger, error);
        }
      }
      removeMeshStatus(files.statusFile);
      release();
      logger.info({ event: 'stopped', interface: iface }, 'stopped; the peers it added are removed');
      finish(code);
      return code;
    })();
    return stopping;
  };

  if (deps.signals ?? true) {
    unhandle = handleSignals({
      SIGTERM: () => void stop(0),
      SIGINT: () => void stop(0),
      SIGHUP: () => {
        logger.info({ event: 'reload', interface: iface }, 'SIGHUP: asking the registry now');
        nextListingAt = 0;
        kick();
      },
    });
  }
  logger.info({ event: 'mesh.started', interface: iface, registry: registryText, zone: options.zone, scope: scope.map((prefix) => prefix.text), keepalive: options.keepalive }, `mesh client on ${iface}: registry ${registryText}, scope ${scope.map((prefix) => prefix.text).join(',')}`);
  writeStatus(clock());
  run();
  return { interface: iface, done, stop: () => stop(0) };
}
