/**
 * The one logger: structured lines on stderr. JSON (one object per line) by default; a readable
 * `time level msg key=value` form when stderr is a terminal or TRANCHE_LOG_FORMAT=text.
 * TRANCHE_LOG_LEVEL = debug | info (default) | warn | error | silent.
 */
type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level | "silent", number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, f?: Fields): void;
  info(msg: string, f?: Fields): void;
  warn(msg: string, f?: Fields): void;
  error(msg: string, f?: Fields): void;
  child(f: Fields): Logger;
}

function make(base: Fields): Logger {
  const threshold = ORDER[(process.env.TRANCHE_LOG_LEVEL as Level) ?? "info"] ?? ORDER.info;
  const text = process.env.TRANCHE_LOG_FORMAT ? process.env.TRANCHE_LOG_FORMAT === "text" : process.stderr.isTTY === true;
  const emit = (level: Level, msg: string, f?: Fields) => {
    if (ORDER[level] < threshold) return;
    const fields = { ...base, ...f };
    if (text) {
      const kv = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      // On a terminal, first clear a progress bar that may be drawn on the current line.
      const clear = process.stderr.isTTY ? "\r\x1b[2K" : "";
      process.stderr.write(`${clear}${new Date().toISOString()} ${level.padEnd(5)} ${msg}${kv ? " " + kv : ""}\n`);
    } else {
      process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + "\n");
    }
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (f) => make({ ...base, ...f }),
  };
}

export const log: Logger = make({});
