/**
 * One run of a user's command (port-knock's -c, reconfig-wg's --hook): started through execa
 * without a shell, its output turned into log lines as execa splits them, its exit logged, and
 * stopped by process id (TERM, then KILL after a grace period).
 *
 * The run gets its own process group, so stopping it also stops what a script started in the
 * foreground; the group is signalled only while its leader is our unreaped child, so the id
 * cannot have been reused by then.
 */
import { loadExeca } from './run-tool.js';
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
  const execa = await loadExeca();
  const startedAt = performance.now();
  // each line of output becomes a log line as it comes (execa splits the stream into lines;
  // the generator yields nothing, so nothing is kept); no exit hooks (see run-tool.ts)
  const child = execa(file, args, {
    detached: true,
    cleanup: false,
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: function* (line: unknown) {
      forwardLine(String(line), 'stdout', child.pid ?? 0, logger);
    },
    stderr: function* (line: unknown) {
      forwardLine(String(line), 'stderr', child.pid ?? 0, logger);
    },
    ...(env === undefined ? {} : { env }),
  });
  const pid = child.pid;
  if (pid === undefined) {
    // execa's originalMessage is node's spawn error (`spawn /x ENOENT`), not the program's output
    const failed = await child;
    logger.error({ event: 'error', code: 'E_COMMAND', argv }, `cannot start ${file}: ${failed.originalMessage ?? 'it could not be run'}. Check the program in ${what} (a full path is safest).`);
    return undefined;
  }
  // the exit listener below reports how the run ended; a later error (a failed kill) is not news
  child.on('error', () => undefined);
  const latencyMs = capturedAt === undefined ? undefined : Number((Date.now() - capturedAt).toFixed(3));
  logger.info({ event: 'command.started', pid, argv, ...fields, latencyMs }, `started ${file} (pid ${pid})`);

  let running = true;
  let stopping = false;
  let code: number | undefined;
  // 'exit', not 'close': a daemon the command left behind may hold our pipes open
  // for ever, yet the run itself is over when its process is.
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (exitCode, signal) => {
      running = false;
      code = exitCode ?? undefined;
      const fields = { event: 'command.exited', pid, exitCode, signal, durationMs: Math.round(performance.now() - startedAt) };
      const message = signal === null ? `pid ${pid} exited with ${String(exitCode)}` : `pid ${pid} ended by ${signal}`;
      // a run that failed on its own is an error; one we stopped, or that succeeded, is not
      if (exitCode === 0 || stopping) logger.info(fields, message);
      else logger.error({ ...fields, code: 'E_COMMAND' }, `${message}${exitCode === 2 ? ' (bad usage or configuration)' : ''}`);
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
      stopping = true;
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function forwardLine(line: string, name: 'stdout' | 'stderr', pid: number, logger: Logger): void {
  const record = line.length <= MAX_LINE ? childRecord(line) : undefined;
  if (record === undefined) {
    logger.info({ event: 'command.output', pid, stream: name }, line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line);
    return;
  }
  // a JSON log line (reconfig-wg started by a knock writes them): its level stays its
  // level, its fields stay fields, under `child`, so an error in it is an error here
  logger[record.level]({ event: 'command.output', pid, stream: name, child: record.fields }, record.msg);
}

const PINO_LEVELS: Readonly<Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'>> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** A pino JSON line from the command, taken apart; undefined for any other line. */
export function childRecord(line: string): { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'; msg: string; fields: Record<string, unknown> } | undefined {
  if (!line.startsWith('{')) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = data as Record<string, unknown>;
  const name = typeof level === 'number' ? PINO_LEVELS[level] : undefined;
  if (name === undefined) return undefined;
  return { level: name, msg: typeof msg === 'string' ? msg : '', fields };
}
