/**
 * Errors a user can act on. Each has a stable `code` (used in logs as `error.code`) and the
 * exit status the CLI ends with: 2 for bad usage or configuration, 1 for a runtime failure.
 * The message says what is wrong and what to do about it.
 */
import type { Logger } from './log.js';

export type ErrorCode =
  | 'E_USAGE'
  | 'E_NOT_ROOT'
  | 'E_CAPTURE_PERMISSION'
  | 'E_NO_DEVICE'
  | 'E_CAPTURE'
  | 'E_FILTER'
  | 'E_LINK_TYPE'
  | 'E_NO_WG'
  | 'E_NO_INTERFACE'
  | 'E_SEVERAL_INTERFACES'
  | 'E_NO_PRIVATE_KEY'
  | 'E_WG'
  | 'E_ALREADY_RUNNING'
  | 'E_NOT_RUNNING'
  | 'E_PID_FILE'
  | 'E_STATE_FILE'
  | 'E_COMMAND'
  | 'E_PERSIST'
  | 'E_STATUS_FILE'
  | 'E_UNSAFE_DIR'
  | 'E_INJECT_PERMISSION'
  | 'E_INJECT'
  | 'E_PINHOLE_PERMISSION'
  | 'E_PINHOLE'
  | 'E_SOCKET';

const RUNTIME_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['E_CAPTURE', 'E_WG', 'E_COMMAND', 'E_STATE_FILE', 'E_PERSIST', 'E_STATUS_FILE', 'E_INJECT', 'E_PINHOLE', 'E_SOCKET']);

export class ReconfigError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: 1 | 2;

  constructor(code: ErrorCode, message: string, options?: { exitCode?: 1 | 2; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReconfigError';
    this.code = code;
    this.exitCode = options?.exitCode ?? (RUNTIME_CODES.has(code) ? 1 : 2);
  }
}

/** Bad usage: exit 2, and the message ends by pointing at --help. */
export function usageError(message: string): ReconfigError {
  return new ReconfigError('E_USAGE', `${message} See --help.`);
}

export function isReconfigError(error: unknown): error is ReconfigError {
  return error instanceof ReconfigError;
}

/** Logs an error a daemon carries on after: its stable code (E_INTERNAL if it has none) and message. */
export function logError(logger: Logger, error: unknown): void {
  const code = isReconfigError(error) ? error.code : 'E_INTERNAL';
  logger.error({ event: 'error', code }, (error as Error).message);
}
