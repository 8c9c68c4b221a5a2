/**
 * A JSON logger that keeps its lines in memory, for tests that assert on log events.
 */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/common/log.js';

export type Line = Record<string, unknown> & { event?: string };

export function memoryLogger(level: 'debug' | 'info' = 'debug'): { logger: Logger; lines: Line[]; raw: string[]; events: (name: string) => Line[] } {
  const lines: Line[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split('\n')) {
        if (!text) continue;
        raw.push(text);
        lines.push(JSON.parse(text) as Line);
      }
      callback();
    },
  });
  const logger = createLogger({ name: 'test', format: 'json', level, destination });
  return { logger, lines, raw, events: (name) => lines.filter((l) => l.event === name) };
}
