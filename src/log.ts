import { ConfigError } from "./errors.js";
import { redact, redactText } from "./redact.js";

/**
 * The one logger: structured lines on stderr. JSON (one object per line) by default; a readable
 * `time level msg key=value` form when stderr is a terminal or TRANCHE_LOG_FORMAT=text.
 * TRANCHE_LOG_LEVEL = debug | info (default) | warn | error | silent. Secret fields (passwords,
 * tokens, secret keys) and URL passwords are redacted from every line.
 */
type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level | "silent", number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };
const FORMATS = ["text", "json"];

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, f?: Fields): void;
  info(msg: string, f?: Fields): void;
  warn(msg: string, f?: Fields): void;
  error(msg: string, f?: Fields): void;
  child(f: Fields): Logger;
}

/** Refuses unknown TRANCHE_LOG_LEVEL / TRANCHE_LOG_FORMAT values (the CLI calls it at start). */
export function checkLogEnv(env: NodeJS.ProcessEnv = process.env): void {
  const level = env.TRANCHE_LOG_LEVEL;
  if (level !== undefined && level !== "" && !(level in ORDER)) {
    throw new ConfigError(`TRANCHE_LOG_LEVEL=${JSON.stringify(level)} is not a level; use one of ${Object.keys(ORDER).join(", ")}`);
  }
  const format = env.TRANCHE_LOG_FORMAT;
  if (format !== undefined && format !== "" && !FORMATS.includes(format)) {
    throw new ConfigError(`TRANCHE_LOG_FORMAT=${JSON.stringify(format)} is not a format; use text or json`);
  }
}

/**
 * Where lines go: stderr; under vitest through console.error, so that the test runner shows a
 * test's log lines only when it fails (`silent: "passed-only"`).
 */
const writeLine: (line: string) => void = process.env.VITEST
  ? (line) => console.error(line.replace(/\n$/, ""))
  : (line) => void process.stderr.write(line);

function make(base: Fields): Logger {
  const emit = (level: Level, msg: string, f?: Fields) => {
    const threshold = ORDER[(process.env.TRANCHE_LOG_LEVEL || "info") as Level] ?? ORDER.info;
    if (ORDER[level] < threshold) return;
    const fields = redact({ ...base, ...f });
    const text = process.env.TRANCHE_LOG_FORMAT ? process.env.TRANCHE_LOG_FORMAT === "text" : process.stderr.isTTY === true;
    const line = redactText(msg);
    if (text) {
      const kv = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      // On a terminal, first clear a progress bar that may be drawn on the current line.
      const clear = process.stderr.isTTY ? "\r\x1b[2K" : "";
      writeLine(`${clear}${new Date().toISOString()} ${level.padEnd(5)} ${line}${kv ? " " + kv : ""}\n`);
    } else {
      writeLine(JSON.stringify({ time: new Date().toISOString(), level, msg: line, ...fields }) + "\n");
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
