// One JSON object a line on stderr, in the services' format (common/src/logging.cc):
// {"time":"2026-01-01T00:00:00.000000Z","level":"info","service":"rogatory-gateway","msg":...}.
// Callers pass only non-personal fields: method names, codes, durations; never tokens,
// request bodies, peer addresses or case identifiers.
const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 } as const;
export type Level = keyof typeof LEVELS;
let minLevel: number = LEVELS.info;

export function setLogLevel(level: Level): void {
  minLevel = LEVELS[level];
}

export function logEnabled(level: Level): boolean {
  return LEVELS[level] >= minLevel;
}

function timestamp(): string {
  // Microseconds, as the services write them.
  return new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export function log(level: Level, msg: string, fields: Record<string, string | number | boolean> = {}): void {
  if (!logEnabled(level)) return;
  process.stderr.write(JSON.stringify({ time: timestamp(), level, service: "rogatory-gateway", msg, ...fields }) + "\n");
}
