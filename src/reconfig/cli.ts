#!/usr/bin/env node
/**
 * The reconfig-wg command. V8's memory-saving mode is turned on before anything else is loaded:
 * every module imported statically would be parsed before this line ran, so the command
 * itself (main.ts) is imported after it. See src/common/memory.ts.
 */
import '../common/memory.js';

await import('./main.js');
