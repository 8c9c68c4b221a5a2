/**
 * One run of a user's command (port-knock's -c, reconfig-wg's --hook): started without a
 * shell, its output turned into log lines, its exit logged, and stopped by process id (TERM,
 * then KILL after a grace period).
 *
 * The run gets its own process group, so stopping it also stops what a script started in the
 * foreground; the group is signalled only while its leader is our unreaped child, so the id
 * cannot have been reused by then.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import type { Logger } from './log.js';

export interface CommandRun {
  readonly pid: number;
  readonly argv: readonly string[];
  /** resolves once the process has exited */
  readonly exited: Promise<void>;
  alive(): boolean;
  /** TERM the run's process group, KILL it after `graceMs`; resolves once it has exited */
  stop(graceMs: number): Promise<void>;
  /** the exit code, or undefined while running or when a signal ended it */
  exitCode(): number | undefined;
}

export interface StartOptions {
  /** extra fields for the command.started line */
  readonly fields?: Record<string, unknown>;
  /** when the event that caused the run happened (epoch ms), for latencyMs */
  readonly capturedAt?: number;
  /** added to the environment the command inherits */
  readonly env?: Readonly<Record<string, string>>;
  /** what to name in the error when the program cannot start, e.g. "-c" */
  readonly what?: string;
}

/** Log lines longer than this are cut: a command must not be able to blow up one log line. */
const MAX_LINE = 2000;

/**
 * Starts argv; returns undefined, after logging why, if it cannot start. Never throws.
 */
export async function startCommand(argv: readonly string[], logger: Logger, options: StartOptions = {}): Promise<CommandRun | undefined> {
  const { fields = {}, capturedAt, env, what = '-c' } = options;
  const [file, ...args] = argv;
  if (file === undefined) return undefined;
  const startedAt = performance.now();
  const child = execa(file, args, {
    reject: false,
    detached: true,
    cleanup: false,
    stdin: 'ignore',
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
  });
  const pid = child.pid;
  if (pid === undefined) {
    const result = await child;
    logger.error({ event: 'error', code: 'E_COMMAND', argv }, `cannot start ${file}: ${String(result.originalMessage ?? result.shortMessage)}. Check the program in ${what} (a full path is safest).`);
    return undefined;
  }
  // the exit listener below reports how the run ended; the result itself is not needed
  child.catch(() => undefined);
  const latencyMs = capturedAt === undefined ? undefined : Number((Date.now() - capturedAt).toFixed(3));
  logger.info({ event: 'command.started', pid, argv, ...fields, latencyMs }, `started ${file} (pid ${pid})`);
  forwardLines(child.stdout, 'stdout', pid, logger);
  forwardLines(child.stderr, 'stderr', pid, logger);

  let running = true;
  let code: number | undefined;
  // 'exit', not the execa promise: a daemon the command left behind may hold our pipes open
  // for ever, yet the run itself is over when its process is.
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (exitCode, signal) => {
      running = false;
      code = exitCode ?? undefined;
      logger.info(
        { event: 'command.exited', pid, exitCode, signal, durationMs: Math.round(performance.now() - startedAt) },
        signal === null ? `pid ${pid} exited with ${String(exitCode)}` : `pid ${pid} ended by ${signal}`,
      );
      resolve();
    });
  });

  const signalGroup = (signal: NodeJS.Signals): void => {
    if (!running) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // the group is already gone
    }
  };

  return {
    pid,
    argv,
    exited,
    alive: () => running,
    exitCode: () => code,
    async stop(graceMs: number): Promise<void> {
      if (!running) return;
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function forwardLines(stream: Readable, name: 'stdout' | 'stderr', pid: number, logger: Logger): void {
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  lines.on('line', (line) => {
    logger.info({ event: 'command.output', pid, stream: name }, line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line);
  });
}
