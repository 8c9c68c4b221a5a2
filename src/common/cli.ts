/**
 * What both command-line front ends share: strict flag parsing, help and version, log flags,
 * turning errors into an exit status and one clear line (never a stack trace), and stopping
 * a running instance through its pid file.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type FlagSpecs, type FlagValues, type ParsedArgs } from './args.js';
import { ReconfigError, isReconfigError } from './errors.js';
import { createLogger, defaultLogFormat, isJournalStream, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel, type Logger } from './log.js';
import { signalPidFile, waitForExit, type ProgramIdentity } from './pidfile.js';

export const LOG_FLAGS = {
  logFormat: { type: 'string', choices: LOG_FORMATS },
  logLevel: { type: 'string', choices: LOG_LEVELS },
  help: { type: 'boolean', shortFlag: 'h' },
  version: { type: 'boolean', shortFlag: 'V' },
} as const satisfies FlagSpecs;

/** LOG_FLAGS in both commands' --help, in its Options block. */
export const LOG_FLAGS_HELP = `        --log-format F      pretty, json, journal (lines with their syslog priority, for
                            systemd) or procd (warnings on stderr, for OpenWrt's logd)
                            (default: journal when stdout is systemd's journal, pretty on
                            a terminal, json otherwise)
        --log-level L       trace, debug, info, warn, error, fatal or silent (default: info)
    -h, --help              show this help
    -V, --version           print the name and version`;

export function logFormatOf(flags: { logFormat?: string }): LogFormat {
  return (flags.logFormat as LogFormat | undefined) ?? defaultLogFormat();
}

export function loggerFromFlags(name: string, flags: { logFormat?: string; logLevel?: string }): Logger {
  return createLogger({ name, format: logFormatOf(flags), level: (flags.logLevel as LogLevel | undefined) ?? 'info' });
}

/** One line on stderr; on systemd's journal it carries its priority, err, as the log's lines do. */
function errorLine(text: string): void {
  process.stderr.write(`${isJournalStream(2) ? '<3>' : ''}${text}\n`);
}

/**
 * Prints one line for the user and picks the exit status. A JSON log gets the same as an
 * `error` line with its code, for whatever reads the log; a pretty log (a person at a
 * terminal) does not, or they would read it twice.
 */
export function reportFatal(program: string, error: unknown, logger?: Logger, format: LogFormat = 'json'): number {
  const log = format === 'json' ? logger : undefined;
  if (isReconfigError(error)) {
    log?.error({ event: 'error', code: error.code }, error.message);
    errorLine(`${program}: ${error.message}`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  log?.error({ event: 'error', code: 'E_INTERNAL' }, message);
  errorLine(`${program}: unexpected failure: ${message}`);
  if (process.env.DEBUG) process.stderr.write(`${(error as Error).stack ?? ''}\n`);
  return 1;
}

/** -k: TERM the instance named in the pid file (if it is ours) and wait for it to go. */
export async function killRunning(pidFile: string, what: string, identity: ProgramIdentity): Promise<number> {
  const pid = signalPidFile(pidFile, 'SIGTERM', what, identity);
  if (!(await waitForExit(pid, 10_000))) {
    throw new ReconfigError('E_NOT_RUNNING', `${what} (pid ${pid}) did not stop within 10 s of SIGTERM.`, { exitCode: 1 });
  }
  process.stdout.write(`stopped ${what} (pid ${pid})\n`);
  return 0;
}

export { usageError } from './errors.js';

export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** What `--version` prints, as `wg --version` does: `reconfig-wg v0.1.0`. */
export function versionLine(program: string): string {
  return `${program} v${packageVersion()}`;
}

/**
 * The first step of every command and subcommand: its flags parsed strictly. A usage error is
 * one line on stderr ending in "See --help." (exit 2); `--help` prints `help` (exit 0). Either
 * way the caller returns `exit`; otherwise it gets the flags and the other words.
 */
export function readCommandArgs<S extends FlagSpecs>(program: string, help: string, specs: S, argv: readonly string[]): ParsedArgs<S> | { readonly exit: number } {
  const parsed = parseArgs(specs, argv, help);
  if (!parsed.ok) {
    const reason = parsed.reason;
    errorLine(`${program}: ${reason}${reason.endsWith('?') ? '' : '.'} See --help.`);
    return { exit: 2 };
  }
  if ((parsed.value.flags as { help?: boolean }).help === true) {
    process.stdout.write(parsed.value.help.replace(/^\n/, ''));
    return { exit: 0 };
  }
  return parsed.value;
}

type DaemonFlags = typeof LOG_FLAGS & { readonly kill: { readonly type: 'boolean'; readonly shortFlag: 'k' } };

export interface DaemonCli<S extends DaemonFlags, Options> {
  readonly program: string;
  /** the --help text */
  readonly help: string;
  readonly flags: S;
  /** the words after the program name; process.argv's when absent */
  readonly argv?: readonly string[];
  /** flags → validated options; throws a ReconfigError on bad usage */
  readonly options: (flags: FlagValues<S>) => Options;
  /** -k: stop the running instance */
  readonly kill: (options: Options) => Promise<number>;
  readonly start: (options: Options, logger: Logger) => Promise<{ readonly done: Promise<number> }>;
  /**
   * Subcommands by their word (`reconfig-wg status …`): a leading word found here gets the
   * rest of the words, with its own flags, and its exit status is the command's.
   */
  readonly subcommands?: Readonly<Record<string, (argv: readonly string[]) => Promise<number>>>;
}

/**
 * The whole life of a daemon command: usage checks, -k, the daemon, one clear line on failure,
 * and the exit status. It exits explicitly: node_pcap lets go of a closed capture's socket
 * only when another packet arrives, so an idle capture would keep the process alive forever.
 */
export async function runDaemonCli<S extends DaemonFlags, Options>(command: DaemonCli<S, Options>): Promise<never> {
  process.exit(await runDaemon(command));
}

async function runDaemon<S extends DaemonFlags, Options>(command: DaemonCli<S, Options>): Promise<number> {
  const { program, help, flags: specs, options, kill, start } = command;
  const argv = command.argv ?? process.argv.slice(2);
  const subcommand = argv[0] === undefined ? undefined : command.subcommands?.[argv[0]];
  if (subcommand !== undefined) return subcommand(argv.slice(1));
  const parsed = readCommandArgs(program, help, specs, argv);
  if ('exit' in parsed) return parsed.exit;
  const flags = parsed.flags as FlagValues<DaemonFlags> & FlagValues<S>;
  if (flags.version) {
    process.stdout.write(`${versionLine(program)}\n`);
    return 0;
  }
  const [stray] = parsed.input;
  if (stray !== undefined) {
    errorLine(`${program}: unexpected argument '${stray}'; ${program} takes flags only (an interface is given with -i). See --help.`);
    return 2;
  }
  const format = logFormatOf(flags);
  let logger: Logger | undefined;
  try {
    const validated = options(flags);
    if (flags.kill) return await kill(validated);
    logger = loggerFromFlags(program, flags);
    const daemon = await start(validated, logger);
    return await daemon.done;
  } catch (error) {
    return reportFatal(program, error, logger, format);
  }
}
