/**
 * The reconfig-wg daemon: one listener for one WireGuard interface, its pid file, its signals.
 *
 * SIGTERM/SIGINT stop it cleanly; SIGHUP re-reads the WireGuard configuration; SIGUSR1
 * re-reads it too and, in --once mode after the change is made, arms it for one more.
 */
import { isReconfigError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { acquirePidFile } from '../common/pidfile.js';
import { handleSignals } from '../common/signals.js';
import { openCapture as realOpenCapture, type Capture, type CaptureOptions } from '../net/capture.js';
import { openPinholer } from '../net/conntrack.js';
import { conntrackEventsSetting, openDestroyEvents, type DestroyEvents } from '../net/conntrack-events.js';
import { openInjector } from '../net/inject.js';
import { Registry, type InterfaceView, type RegistrySocket } from '../registry/server.js';
import type { BoundUdpOptions } from '../net/bound-udp.js';
import { resolveInterface, type WgRunner } from '../wireguard/wg.js';
import { Delivery, type PacketInjector, type PacketPinholer } from './deliver.js';
import { Listener } from './listener.js';
import { instanceFiles, prepareInstanceFiles, type ReconfigOptions } from './options.js';
import { IDENTITY, PROGRAM } from './identity.js';
import { Watermarks } from './replay.js';
import { Teller } from './tell/index.js';
import { createPersister } from './tell/persisters.js';
import { describePersist } from './tell/persist.js';

export { PROGRAM } from './identity.js';

export interface DaemonDeps {
  readonly logger: Logger;
  readonly openCapture?: (options: CaptureOptions) => Capture;
  readonly run?: WgRunner;
  /** raw-socket sender and conntrack writer (tests pass stand-ins); opened for real otherwise */
  readonly openInjector?: () => PacketInjector;
  readonly openPinholer?: () => PacketPinholer;
  /** conntrack's destroy events (tests pass a stand-in, or none); opened for real otherwise */
  readonly openDestroyEvents?: () => DestroyEvents;
  /** resolves when the daemon should stop (tests); signals are used otherwise */
  readonly signals?: boolean;
  /** the registry's socket and view of the interfaces (tests pass stand-ins); the real ones otherwise */
  readonly openRegistrySocket?: (options: BoundUdpOptions) => RegistrySocket;
  readonly interfaces?: InterfaceView;
}

export interface RunningDaemon {
  readonly listener: Listener;
  readonly teller: Teller;
  /** the endpoint registry, with --registry */
  readonly registry: Registry | undefined;
  readonly interface: string;
  /** resolves with the exit code once the daemon has stopped */
  readonly done: Promise<number>;
  stop(): Promise<number>;
  rearm(): Promise<void>;
}

export async function startReconfig(options: ReconfigOptions, deps: DaemonDeps): Promise<RunningDaemon> {
  const iface = await resolveInterface(options.interface, deps.run);
  const files = instanceFiles(options, PROGRAM, iface);
  prepareInstanceFiles(files, options);
  const { pidFile, stateFile } = files;
  const watermarks = Watermarks.load(stateFile, iface);
  watermarks.checkWritable();
  // A persistence target that cannot work is a configuration error, said before anything runs.
  const persister = createPersister(options.persist, iface);
  await persister?.verify();
  // The registry's address is checked before anything runs: one on another interface is exit 2.
  const registry =
    options.registry === undefined
      ? undefined
      : new Registry({ logger: deps.logger, iface, options: options.registry, model: () => listener.registryModel(), interfaces: deps.interfaces, openSocket: deps.openRegistrySocket });
  registry?.checkAddress();
  const release = acquirePidFile(pidFile, `${PROGRAM} for ${iface}`, IDENTITY);
  const logger = deps.logger;
  let delivery: Delivery | undefined;
  try {
    delivery = openDelivery(options, deps);
  } catch (error) {
    release();
    throw error;
  }
  const listener = new Listener({
    logger,
    options: { ...options, interface: iface },
    watermarks,
    openCapture: deps.openCapture ?? realOpenCapture,
    run: deps.run,
    delivery,
    sessionsFile: files.sessionsFile,
    ...(delivery === undefined ? {} : { destroyEvents: followDestroyEvents(logger, deps) }),
  });
  const teller = new Teller({
    logger,
    iface,
    statusFile: files.statusFile,
    persistLabel: describePersist(options.persist),
    persister,
    hook: options.hook,
    hookTimeoutMs: options.hookTimeoutMs,
    dryRun: options.dryRun,
    snapshot: () => {
      const view = listener.view();
      return {
        ...view,
        peerCounts: (peer) => listener.peerCounts(peer),
        ignored: Object.fromEntries(listener.ignored),
        capture: listener.captureStats(),
        registry: registry?.status(),
      };
    },
  });
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  let armed = true;
  let started = false;
  let stopping: Promise<number> | undefined;
  let poll: NodeJS.Timeout | undefined;
  let unhandle = (): void => undefined;

  const stop = (code = 0): Promise<number> => {
    stopping ??= (async () => {
      clearInterval(poll);
      unhandle();
      registry?.stop();
      await listener.stop();
      await teller.stop();
      delivery?.close();
      release();
      logger.info({ event: 'stopped', interface: iface, counters: listener.counters(), capture: listener.captureStats() }, 'stopped');
      finish(code);
      return code;
    })();
    return stopping;
  };

  const rearm = async (): Promise<void> => {
    await listener.refresh('rearm');
    if (options.once && !armed) {
      armed = true;
      logger.info({ event: 'rearmed', interface: iface }, 'armed for one more endpoint change');
    }
  };

  // The registry first: it serves the new endpoint from now on. Then told (with --once the
  // process exits once the change is told; stop waits for it).
  listener.onChange((change) => registry?.changed(change));
  listener.onChange((change) => teller.tell(change));
  listener.onChange(() => {
    if (!options.once || !armed) return;
    armed = false;
    logger.info({ event: 'once.done', interface: iface }, 'endpoint changed; exiting (--once)');
    void stop(0);
  });

  if (deps.signals ?? true) {
    unhandle = handleSignals({
      SIGTERM: () => void stop(0),
      SIGINT: () => void stop(0),
      SIGHUP: () => {
        logger.info({ event: 'reload', interface: iface }, 'SIGHUP: re-reading the WireGuard configuration');
        if (started) void listener.refresh('sighup').then(() => registry?.refresh());
      },
      SIGUSR1: () => {
        logger.info({ event: 'rearm', interface: iface }, 'SIGUSR1: re-arming');
        if (started) void rearm();
      },
    });
  }

  try {
    await listener.start();
  } catch (error) {
    unhandle();
    delivery?.close();
    release();
    throw error;
  }
  try {
    registry?.start();
  } catch (error) {
    unhandle();
    registry?.stop();
    await listener.stop();
    delivery?.close();
    release();
    throw error;
  }
  started = true;
  if (stopping === undefined) teller.start();
  if (stopping !== undefined) {
    await listener.stop();
  } else {
    poll = setInterval(
      () =>
        void listener.refresh('poll').then(() => {
          registry?.refresh();
          teller.refresh();
        }),
      options.refreshMs,
    );
    poll.unref();
  }

  return { listener, teller, registry, interface: iface, done, stop: () => stop(0), rearm };
}

/**
 * The raw socket and the conntrack writer, when injection is on. A raw socket that cannot be
 * opened is said once and the daemon runs on `wg set` alone; so is a missing pinhole in auto
 * mode. `--pinhole always` without one is a configuration error.
 */
function openDelivery(options: ReconfigOptions, deps: DaemonDeps): Delivery | undefined {
  if (!options.inject || options.dryRun) return undefined;
  const logger = deps.logger;
  let injector: PacketInjector;
  try {
    injector = (deps.openInjector ?? openInjector)();
  } catch (error) {
    logger.warn(
      { event: 'inject.unavailable', code: isReconfigError(error) ? error.code : 'E_INJECT' },
      `${(error as Error).message.replace(/\.$/, '')}. Running without injection: endpoints are set with wg set after a verified initiation, and roaming on data packets waits for the peer's next handshake.`,
    );
    return undefined;
  }
  let pinholer: PacketPinholer | undefined;
  if (options.pinhole !== 'never') {
    try {
      pinholer = (deps.openPinholer ?? openPinholer)();
    } catch (error) {
      if (options.pinhole === 'always') {
        injector.close();
        throw error;
      }
      logger.info({ event: 'pinhole.unavailable', code: isReconfigError(error) ? error.code : 'E_PINHOLE' }, (error as Error).message);
    }
  }
  return new Delivery({ logger, injector, pinholer, mode: options.pinhole });
}

/**
 * Conntrack's destroy events, so that a peer whose conntrack entry is gone is captured again
 * (expiry.ts). Without them (no permission, no ctnetlink) the daemon runs as before: such a peer
 * comes back with its next handshake. Said once, as is the kernel's switch being off.
 */
function followDestroyEvents(logger: Logger, deps: DaemonDeps): DestroyEvents | undefined {
  let events: DestroyEvents;
  try {
    events = (deps.openDestroyEvents ?? openDestroyEvents)();
  } catch (error) {
    logger.info(
      { event: 'conntrack.events-unavailable', code: isReconfigError(error) ? error.code : 'E_SOCKET' },
      `${(error as Error).message}. Without them, a peer whose conntrack entry expired comes back with its next handshake.`,
    );
    return undefined;
  }
  // Only the real socket depends on this namespace's switch; a stand-in does not.
  if (deps.openDestroyEvents === undefined && conntrackEventsSetting() === 0) {
    logger.warn(
      { event: 'conntrack.events-off', setting: 'net.netfilter.nf_conntrack_events' },
      'the kernel sends no conntrack events (net.netfilter.nf_conntrack_events = 0): a peer whose conntrack entry expired comes back only with its next handshake; set it to 2 (or 1) to fix',
    );
  }
  return events;
}
