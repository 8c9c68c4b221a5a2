/**
 * One run of a knock's command: started without a shell, its output turned into log lines,
 * its exit logged, and stopped by process id (TERM, then KILL after a grace period).
 *
 * The run gets its own process group, so stopping it also stops what a script started in the
 * foreground; the group is signalled only while its leader is our unreaped child, so the id
 * cannot have been reused by then.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import type { Logger } from '../common/log.js';

export interface CommandRun {
  readonly pid: number;
  readonly argv: readonly string[];
  /** resolves once the process has exited */
  readonly exited: Promise<void>;
  alive(): boolean;
  /** TERM the run's process group, KILL it after `graceMs`; resolves once it has exited */
  stop(graceMs: number): Promise<void>;
}

/** Log lines longer than this are cut: a command must not be able to blow up one log line. */
const MAX_LINE = 2000;

/**
 * Starts argv; returns undefined, after logging why, if it cannot start. Never throws.
 * `fields` go into the command.started line; `capturedAt` (epoch ms) gives it a latencyMs.
 */
export async function startCommand(argv: readonly string[], logger: Logger, fields: Record<string, unknown> = {}, capturedAt?: number): Promise<CommandRun | undefined> {
  const [file, ...args] = argv;
  if (file === undefined) return undefined;
  const startedAt = performance.now();
  const child = execa(file, args, {
    reject: false,
    detached: true,
    cleanup: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
  });
  const pid = child.pid;
  if (pid === undefined) {
    const result = await child;
    logger.error({ event: 'error', code: 'E_COMMAND', argv }, `cannot start ${file}: ${String(result.originalMessage ?? result.shortMessage)}. Check the program in -c (a full path is safest).`);
    return undefined;
  }
  // the exit listener below reports how the run ended; the result itself is not needed
  child.catch(() => undefined);
  const latencyMs = capturedAt === undefined ? undefined : Number((Date.now() - capturedAt).toFixed(3));
  logger.info({ event: 'command.started', pid, argv, ...fields, latencyMs }, `started ${file} (pid ${pid})`);
  forwardLines(child.stdout, 'stdout', pid, logger);
  forwardLines(child.stderr, 'stderr', pid, logger);

  let running = true;
  // 'exit', not the execa promise: a daemon the command left behind may hold our pipes open
  // for ever, yet the run itself is over when its process is.
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (exitCode, signal) => {
      running = false;
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
