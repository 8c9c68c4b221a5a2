/**
 * Logging: pino JSON lines on stdout (the default when stdout is not a terminal), pino-pretty
 * otherwise. Every line carries a stable `event` field that scripts can match on.
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

/** pino-pretty is loaded only for pretty logs: a service logging JSON never pays for it. */
function loadPretty(): typeof PinoPretty {
  return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
}

export type LogFormat = 'json' | 'pretty';
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogOptions {
  format: LogFormat;
  level: LogLevel;
  name: string;
  /** Where lines go; stdout when absent (tests pass their own stream). */
  destination?: NodeJS.WritableStream;
}

export type { Logger };

export function defaultLogFormat(): LogFormat {
  return process.stdout.isTTY ? 'pretty' : 'json';
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
