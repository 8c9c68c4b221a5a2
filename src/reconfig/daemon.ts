/**
 * The reconfig-wg daemon: one listener for one WireGuard interface, its pid file, its signals.
 *
 * SIGTERM/SIGINT stop it cleanly; SIGHUP re-reads the WireGuard configuration; SIGUSR1
 * re-reads it too and, in --once mode after the change is made, arms it for one more.
 */
import type { Logger } from '../common/log.js';
import { acquirePidFile } from '../common/pidfile.js';
import { handleSignals } from '../common/signals.js';
import { openCapture as realOpenCapture, type Capture, type CaptureOptions } from '../net/capture.js';
import { resolveInterface, type WgRunner } from '../wireguard/wg.js';
import { Listener } from './listener.js';
import { defaultPidFile, defaultStateFile, defaultStatusFile, type ReconfigOptions } from './options.js';
import { Watermarks } from './replay.js';
import { Teller } from './tell/index.js';
import { createPersister } from './tell/persisters.js';
import { describePersist } from './tell/persist.js';

export const PROGRAM = 'reconfig-wg';

export interface DaemonDeps {
  readonly logger: Logger;
  readonly openCapture?: (options: CaptureOptions) => Capture;
  readonly run?: WgRunner;
  /** resolves when the daemon should stop (tests); signals are used otherwise */
  readonly signals?: boolean;
}

export interface RunningDaemon {
  readonly listener: Listener;
  readonly teller: Teller;
  readonly interface: string;
  /** resolves with the exit code once the daemon has stopped */
  readonly done: Promise<number>;
  stop(): Promise<number>;
  rearm(): Promise<void>;
}

export async function startReconfig(options: ReconfigOptions, deps: DaemonDeps): Promise<RunningDaemon> {
  const iface = await resolveInterface(options.interface, deps.run);
  const pidFile = options.pidFile ?? defaultPidFile(PROGRAM, iface);
  const stateFile = options.stateFile ?? defaultStateFile(iface);
  const watermarks = Watermarks.load(stateFile, iface);
  const release = acquirePidFile(pidFile, `${PROGRAM} for ${iface}`);
  const logger = deps.logger;
  const listener = new Listener({
    logger,
    options: { ...options, interface: iface },
    watermarks,
    openCapture: deps.openCapture ?? realOpenCapture,
    run: deps.run,
  });
  const teller = new Teller({
    logger,
    iface,
    statusFile: options.statusFile ?? defaultStatusFile(iface),
    persistLabel: describePersist(options.persist),
    persister: createPersister(options.persist, iface),
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
      await listener.stop();
      await teller.stop();
      release();
      logger.info({ event: 'stopped', interface: iface, counters: listener.counters() }, 'stopped');
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

  // Told first: with --once the process exits once the change is told (stop waits for it).
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
        if (started) void listener.refresh('sighup');
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
    release();
    throw error;
  }
  started = true;
  if (stopping === undefined) teller.start();
  if (stopping !== undefined) {
    await listener.stop();
  } else {
    poll = setInterval(() => void listener.refresh('poll').then(() => teller.refresh()), options.refreshMs);
    poll.unref();
  }

  return { listener, teller, interface: iface, done, stop: () => stop(0), rearm };
}
