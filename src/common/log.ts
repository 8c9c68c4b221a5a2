/**
 * Logging through pino, in the form whoever reads stdout wants:
 * - `journal`: stdout is systemd's journal (JOURNAL_STREAM names it). A readable line that
 *   starts with its syslog priority (`<4>`, sd-daemon(3)), so `journalctl -p warning` works;
 *   journald adds the time and the name.
 * - `procd`: stdout and stderr go to OpenWrt's logd through procd, which logs what comes on
 *   stdout as daemon.info and on stderr as daemon.err. A readable line with its level, warnings
 *   and worse on stderr, so `logread` shows them as errors.
 * - `json`: pino JSON lines, for machines (the default when stdout is a pipe or a file).
 * - `pretty`: pino-pretty, for a person at a terminal.
 * Every line carries a stable `event` field that scripts can match on.
 */
import { fstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

/** pino-pretty is loaded only for pretty logs: a service logging JSON never pays for it. */
function loadPretty(): typeof PinoPretty {
  return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
}

export const LOG_FORMATS = ['pretty', 'json', 'journal', 'procd'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogOptions {
  format: LogFormat;
  level: LogLevel;
  name: string;
  /** Where lines go; stdout when absent (tests pass their own stream). */
  destination?: NodeJS.WritableStream;
  /** procd: where warnings and worse go; stderr when absent */
  errorDestination?: NodeJS.WritableStream;
}

export type { Logger };

/**
 * Whether file descriptor `fd` is the journal stream systemd connected it to: JOURNAL_STREAM
 * holds that stream's `device:inode`, and a child that inherited the variable but writes to a
 * pipe (port-knock's own children, a hook) must not take it for the journal (systemd.exec(5)).
 */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const stream = env.JOURNAL_STREAM;
  if (stream === undefined || !/^\d+:\d+$/.test(stream)) return false;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stream === `${stat.dev}:${stat.ino}`;
  } catch {
    return false;
  }
}

export function defaultLogFormat(): LogFormat {
  if (isJournalStream(1)) return 'journal';
  return process.stdout.isTTY ? 'pretty' : 'json';
}

/** pino's levels → syslog priorities (RFC 5424 §6.2.1): fatal crit, error err, warn warning, info, debug. */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

const LEVEL_NAMES: Readonly<Record<number, string>> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
/** Fields a readable line leaves out: the journal and logd say time, name and pid themselves. */
const ENVELOPE = new Set(['level', 'time', 'name', 'pid', 'hostname', 'event', 'msg']);

/**
 * One pino record as a line for the journal or logd: `<4>hook.failed the hook exited 1 {…}`
 * (journal) or `warn: hook.failed the hook exited 1 {…}` (procd). The fields follow as JSON,
 * so nothing is lost.
 */
export function readableLine(format: 'journal' | 'procd', record: Record<string, unknown>): string {
  const level = typeof record.level === 'number' ? record.level : 30;
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) if (!ENVELOPE.has(key) && key !== 'timestamp') fields[key] = value;
  const rest = Object.keys(fields).length === 0 ? '' : ` ${JSON.stringify(fields)}`;
  const text = `${prettyMessage(record, 'msg')}${rest}`.replace(/\n/g, ' ');
  return format === 'journal' ? `<${syslogPriority(level)}>${text}\n` : `${LEVEL_NAMES[level] ?? 'info'}: ${text}\n`;
}

/** A pino destination that rewrites each JSON line for the journal or procd. */
interface LineSink {
  write(line: string): unknown;
}

function readableDestination(format: 'journal' | 'procd', out: LineSink, err: LineSink): { write(line: string): void } {
  return {
    write(line: string): void {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const toErr = format === 'procd' && typeof record.level === 'number' && record.level >= 40;
      (toErr ? err : out).write(readableLine(format, record));
    },
  };
}

export function createLogger(options: LogOptions): Logger {
  const base = { name: options.name };
  // Key material never reaches a log line, even by accident: these paths are censored.
  const redact = { paths: ['privateKey', '*.privateKey', 'secret', '*.secret'], censor: '[secret]' };
  if (options.format === 'pretty') {
    const stream = loadPretty()({
      sync: true,
      colorize: options.destination === undefined ? Boolean(process.stdout.isTTY) : false,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name,event',
      messageFormat: prettyMessage,
      customPrettifiers: { capturedAt: (value) => epochToIso(value) },
      singleLine: true,
      destination: options.destination ?? 1,
    });
    return pino({ level: options.level, base, redact }, stream);
  }
  if (options.format === 'journal' || options.format === 'procd') {
    const out: LineSink = options.destination ?? pino.destination({ dest: 1, sync: true });
    const err: LineSink = options.errorDestination ?? (options.format === 'procd' ? pino.destination({ dest: 2, sync: true }) : out);
    return pino({ level: options.level, base, redact }, readableDestination(options.format, out, err));
  }
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino({ level: options.level, base, redact, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/**
 * The pretty line's message: the event, then the message unless it starts with the event
 * already (`stopped`, not `stopped stopped`), then the fields pino-pretty would hide: it
 * takes a `timestamp` field for the line's own time, but ours is the initiation's TAI64N.
 */
function prettyMessage(log: Record<string, unknown>, messageKey: string): string {
  const event = typeof log.event === 'string' ? log.event : '';
  const msg = typeof log[messageKey] === 'string' ? (log[messageKey] as string) : '';
  const head = event === '' || msg === event || msg.startsWith(`${event} `) ? msg : msg === '' ? event : `${event} ${msg}`;
  return typeof log.timestamp === 'string' ? `${head} (sent ${log.timestamp})` : head;
}

/** Epoch milliseconds as ISO time, for people; anything else as it is. */
function epochToIso(value: unknown): string {
  return typeof value === 'number' && Number.isFinite(value) ? new Date(value).toISOString() : String(value);
}
