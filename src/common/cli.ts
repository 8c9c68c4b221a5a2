/**
 * What both command-line front ends share: log flags, turning errors into an exit status and
 * one clear line (never a stack trace), and stopping a running instance through its pid file.
 */
import { ReconfigError, isReconfigError } from './errors.js';
import { createLogger, defaultLogFormat, LOG_LEVELS, type LogFormat, type LogLevel, type Logger } from './log.js';
import { signalPidFile, waitForExit } from './pidfile.js';

export const LOG_FLAGS = {
  logFormat: { type: 'string' as const, choices: ['pretty', 'json'] },
  logLevel: { type: 'string' as const, choices: [...LOG_LEVELS] as string[], default: 'info' },
  help: { type: 'boolean' as const, shortFlag: 'h' },
};

export function loggerFromFlags(name: string, flags: { logFormat?: string; logLevel?: string }): Logger {
  return createLogger({
    name,
    format: (flags.logFormat as LogFormat | undefined) ?? defaultLogFormat(),
    level: (flags.logLevel as LogLevel | undefined) ?? 'info',
  });
}

/** Prints one line for the user and picks the exit status; the logger gets the same, with code. */
export function reportFatal(program: string, error: unknown, logger?: Logger): number {
  if (isReconfigError(error)) {
    logger?.error({ event: 'error', code: error.code }, error.message);
    process.stderr.write(`${program}: ${error.message}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  logger?.error({ event: 'error', code: 'E_INTERNAL' }, message);
  process.stderr.write(`${program}: unexpected failure: ${message}\n`);
  if (process.env.DEBUG) process.stderr.write(`${(error as Error).stack ?? ''}\n`);
  return 1;
}

/** -k: TERM the instance named in the pid file and wait for it to go. */
export async function killRunning(pidFile: string, what: string): Promise<number> {
  const pid = signalPidFile(pidFile, 'SIGTERM', what);
  if (!(await waitForExit(pid, 10_000))) {
    throw new ReconfigError('E_NOT_RUNNING', `${what} (pid ${pid}) did not stop within 10 s of SIGTERM.`, { exitCode: 1 });
  }
  process.stdout.write(`stopped ${what} (pid ${pid})\n`);
  return 0;
}

export function usageError(message: string): ReconfigError {
  return new ReconfigError('E_USAGE', `${message} See --help.`);
}

export interface DaemonCli<Options> {
  readonly program: string;
  readonly cli: {
    readonly flags: { readonly help?: boolean; readonly kill?: boolean; readonly logFormat?: string; readonly logLevel?: string };
    readonly input: readonly string[];
    showHelp(exitCode?: number): never;
  };
  /** flags → validated options; throws a ReconfigError on bad usage */
  readonly options: () => Options;
  /** -k: stop the running instance */
  readonly kill: (options: Options) => Promise<number>;
  readonly start: (options: Options, logger: Logger) => Promise<{ readonly done: Promise<number> }>;
}

/**
 * The whole life of a daemon command: usage checks, -k, the daemon, one clear line on failure,
 * and the exit status. It exits explicitly: node_pcap lets go of a closed capture's socket
 * only when another packet arrives, so an idle capture would keep the process alive forever.
 */
export async function runDaemonCli<Options>(command: DaemonCli<Options>): Promise<never> {
  process.exit(await runDaemon(command));
}

async function runDaemon<Options>({ program, cli, options, kill, start }: DaemonCli<Options>): Promise<number> {
  if (cli.flags.help) cli.showHelp(0);
  if (cli.input.length > 0) {
    process.stderr.write(`${program}: unexpected argument '${cli.input[0] ?? ''}'. See --help.\n`);
    return 2;
  }
  let logger: Logger | undefined;
  try {
    const parsed = options();
    if (cli.flags.kill) return await kill(parsed);
    logger = loggerFromFlags(program, cli.flags);
    const daemon = await start(parsed, logger);
    return await daemon.done;
  } catch (error) {
    return reportFatal(program, error, logger);
  }
}
