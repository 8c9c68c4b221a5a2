/**
 * The port-knock daemon: one listener for one port range, its runner, its pid file, its signals.
 *
 * SIGTERM/SIGINT stop it cleanly (a command or reconfig-wg it started is stopped too, the pid
 * file removed); SIGHUP reopens the capture; SIGUSR1 re-arms: the cooldown ends, so the next
 * knock acts at once.
 */
import type { Logger } from '../common/log.js';
import { handleSignals } from '../common/signals.js';
import { acquirePidFile } from '../common/pidfile.js';
import { openCapture as realOpenCapture, type Capture, type CaptureOptions } from '../net/capture.js';
import { readInterface, resolveInterface, type WgRunner } from '../wireguard/wg.js';
import { KnockDetector } from './detector.js';
import { IDENTITY, PROGRAM } from './identity.js';
import { KnockListener } from './listener.js';
import { reconfigArgv } from './rearm.js';
import { knockPidFile, type KnockOptions } from './options.js';
import { Runner, type RunnerDeps } from './runner.js';

export { PROGRAM } from './identity.js';

export { knockPidFile } from './options.js';

export interface DaemonDeps {
  readonly logger: Logger;
  readonly openCapture?: (options: CaptureOptions) => Capture;
  /** `wg` for finding the only interface when -i is not given */
  readonly run?: WgRunner;
  /** install signal handlers (default true; tests drive stop() themselves) */
  readonly signals?: boolean;
  readonly runner?: Pick<RunnerDeps, 'now' | 'reconfigPidFile' | 'reconfigArgv'>;
}

export interface RunningDaemon {
  readonly listener: KnockListener;
  readonly runner: Runner;
  /** the interface re-armed by a knock; undefined with -c */
  readonly interface: string | undefined;
  /** resolves with the exit code once the daemon has stopped */
  readonly done: Promise<number>;
  stop(): Promise<number>;
}

export async function startKnock(options: KnockOptions, deps: DaemonDeps): Promise<RunningDaemon> {
  const iface = options.command === undefined ? await resolveInterface(options.interface, deps.run) : undefined;
  // a knock for an interface that is not there could only start a reconfig-wg that fails:
  // say so now, with the same error reconfig-wg gives
  if (iface !== undefined && options.interface !== undefined) await readInterface(iface, deps.run);
  const release = acquirePidFile(knockPidFile(options), `${PROGRAM} for port ${options.basePort}`, IDENTITY);
  const logger = deps.logger;
  const reconfig =
    iface === undefined || options.reconfigPidFile === undefined
      ? {}
      : { reconfigPidFile: options.reconfigPidFile, reconfigArgv: reconfigArgv(iface, options.reconfigPidFile) };
  const runner = new Runner({ logger, options: { ...options, interface: iface }, ...reconfig, ...deps.runner });
  const listener = new KnockListener({
    logger,
    device: options.device,
    basePort: options.basePort,
    range: options.range,
    detector: new KnockDetector({ basePort: options.basePort, range: options.range, windowMs: options.windowMs }),
    openCapture: deps.openCapture ?? realOpenCapture,
    onKnock: (knock, capturedAt) => runner.knock(knock, capturedAt),
  });
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  let stopping: Promise<number> | undefined;
  let unhandle = (): void => undefined;

  const stop = (code = 0): Promise<number> => {
    stopping ??= (async () => {
      unhandle();
      listener.stop();
      await runner.stop();
      release();
      logger.info({ event: 'stopped', counters: { ...listener.counters(), ...runner.counters() } }, 'stopped');
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
        logger.info({ event: 'reload' }, 'SIGHUP: reopening the capture');
        listener.reopen();
      },
      // also keeps Node from taking SIGUSR1 as the signal to open its inspector
      SIGUSR1: () => {
        logger.info({ event: 'rearm' }, 'SIGUSR1: cooldown ended; the next knock acts at once');
        runner.rearm();
      },
    });
  }

  try {
    listener.start();
  } catch (error) {
    unhandle();
    release();
    throw error;
  }
  logger.info(
    {
      event: 'started',
      action: options.command === undefined ? 'rearm' : 'command',
      ...(iface === undefined ? { argv: options.command } : { interface: iface }),
      cooldownS: options.cooldownMs / 1000,
      dryRun: options.dryRun,
    },
    iface === undefined ? 'a knock runs the command' : `a knock re-arms reconfig-wg for ${iface}`,
  );

  return { listener, runner, interface: iface, done, stop: () => stop(0) };
}
