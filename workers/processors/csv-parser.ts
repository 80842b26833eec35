/**
 * Incremental RFC 4180 CSV parser: feed it decoded text with {@link CsvParser.push} in chunks of any size
 * (a chunk may end anywhere, including inside a quoted field or between `\r` and `\n`), then call
 * {@link CsvParser.end}. Only the current row is held in memory.
 *
 * - Fields are separated by `delimiter` (default `,`); rows end at `\n` or `\r\n`.
 * - A field that starts with `"` is quoted: it may contain delimiters, newlines and `""` (one literal quote).
 * - Lenient where RFC 4180 is silent: a quote inside an unquoted field is literal (`ab"c` → `ab"c`),
 *   text after a closing quote is appended (`"ab"c` → `abc`), and a lone `\r` is literal.
 * - Empty lines (nothing between two line ends) produce no row; `""` alone on a line is a row with one empty field.
 * - Every row carries `line`: the 1-based physical line where it starts.
 */

/** A parsed row: its fields, plus (non-enumerable) the physical line (1-based) where the row starts. */
export type CsvRow = string[] & { readonly line: number };

export interface CsvParserOptions {
  /** Single-character field delimiter. Default `,`. */
  delimiter?: string;
  /**
   * Longest row, in characters, before the parser gives up with a {@link CsvParseError}: protects the
   * worker's heap against, typically, an unterminated quote early in a large file. Default 16 Mi.
   */
  maxRowChars?: number;
}

/** A row the parser cannot complete (unterminated quote at end of input, or an oversized row). */
export class CsvParseError extends Error {
  /** Physical line (1-based) where the offending row starts. */
  readonly line: number;

  constructor(message: string, line: number) {
    super(message);
    this.name = "CsvParseError";
    this.line = line;
  }
}

const QUOTE = 34;
const LF = 10;
const CR = 13;

/** At the start of a field (nothing consumed yet). */
const START = 0;
/** Inside an unquoted field. */
const UNQUOTED = 1;
/** Inside a quoted field. */
const QUOTED = 2;
/** Just read a `"` inside a quoted field: either the first half of `""` or the closing quote. */
const QUOTE_IN_QUOTED = 3;
/** After a quoted field's closing quote. */
const AFTER_QUOTED = 4;

type State = typeof START | typeof UNQUOTED | typeof QUOTED | typeof QUOTE_IN_QUOTED | typeof AFTER_QUOTED;

export class CsvParser {
  readonly delimiter: string;
  readonly #delim: number;
  readonly #maxRowChars: number;

  #state: State = START;
  #fields: string[] = [];
  #field = "";
  /** Whether the current row has consumed anything (tells an empty line from a row of one empty field). */
  #rowStarted = false;
  /** Characters in the current row so far. */
  #rowChars = 0;
  /** A `\r` was seen outside quotes; whether it ends the row depends on the next character. */
  #crPending = false;
  /** Physical line currently being read (1-based). */
  #line = 1;
  /** Physical line where the current row started. */
  #rowLine = 1;

  constructor(options: CsvParserOptions = {}) {
    const delimiter = options.delimiter ?? ",";
    if (delimiter.length !== 1 || delimiter === '"' || delimiter === "\n" || delimiter === "\r") {
      throw new Error(`CSV delimiter must be a single character other than a quote or a line break, got ${JSON.stringify(delimiter)}`);
    }
    this.delimiter = delimiter;
    this.#delim = delimiter.charCodeAt(0);
    this.#maxRowChars = options.maxRowChars ?? 16 * 1024 * 1024;
  }

  /** Parses one more chunk of text; returns the rows it completed (possibly none). */
  push(chunk: string): CsvRow[] {
    const out: CsvRow[] = [];
    const n = chunk.length;
    const delim = this.#delim;
    let i = 0;
    while (i < n) {
      if (this.#crPending) {
        this.#crPending = false;
        if (chunk.charCodeAt(i) === LF) {
          this.#endRow(out);
          this.#line++;
          i++;
          continue;
        }
        // A lone `\r` is an ordinary character.
        this.#append("\r");
        if (this.#state === START) this.#state = UNQUOTED;
      }

      const state = this.#state;
      if (state === QUOTED) {
        // Everything up to the next quote belongs to the field, delimiters and newlines included.
        const q = chunk.indexOf('"', i);
        const end = q === -1 ? n : q;
        if (end > i) {
          const seg = chunk.slice(i, end);
          this.#line += countLF(seg);
          this.#append(seg);
        }
        if (q === -1) {
          i = n;
        } else {
          this.#state = QUOTE_IN_QUOTED;
          i = q + 1;
        }
        continue;
      }

      const c = chunk.charCodeAt(i);
      if (state === QUOTE_IN_QUOTED) {
        if (c === QUOTE) {
          // `""`: an escaped quote.
          this.#append('"');
          this.#state = QUOTED;
          i++;
        } else {
          // The previous quote closed the field; look at `c` again in the new state.
          this.#state = AFTER_QUOTED;
        }
        continue;
      }

      // START, UNQUOTED or AFTER_QUOTED.
      if (c === delim) {
        this.#fields.push(this.#field);
        this.#field = "";
        this.#state = START;
        this.#rowStarted = true;
        i++;
      } else if (c === LF) {
        this.#endRow(out);
        this.#line++;
        i++;
      } else if (c === CR) {
        this.#crPending = true;
        i++;
      } else if (c === QUOTE && state === START) {
        this.#state = QUOTED;
        this.#rowStarted = true;
        i++;
      } else {
        // A run of ordinary characters: take it in one slice.
        let j = i + 1;
        while (j < n) {
          const d = chunk.charCodeAt(j);
          if (d === delim || d === LF || d === CR) break;
          j++;
        }
        this.#append(chunk.slice(i, j));
        if (state === START) this.#state = UNQUOTED;
        i = j;
      }
    }
    return out;
  }

  /**
   * Ends the input and returns the last row, if the input did not end with a newline.
   * Throws a {@link CsvParseError} if the input ends inside a quoted field (that row is dropped and
   * the parser is reset).
   */
  end(): CsvRow[] {
    const out: CsvRow[] = [];
    if (this.#crPending) {
      this.#crPending = false;
      this.#endRow(out);
      this.#line++;
    }
    if (this.#state === QUOTED) {
      const line = this.#rowLine;
      this.#reset();
      throw new CsvParseError(`unterminated quoted field (row starting at line ${line})`, line);
    }
    this.#endRow(out);
    return out;
  }

  #append(text: string): void {
    this.#field += text;
    this.#rowStarted = true;
    this.#rowChars += text.length;
    if (this.#rowChars > this.#maxRowChars) {
      const line = this.#rowLine;
      const unterminated = this.#state === QUOTED ? " (unterminated quoted field?)" : "";
      this.#reset();
      throw new CsvParseError(`row starting at line ${line} is longer than ${this.#maxRowChars} characters${unterminated}`, line);
    }
  }

  #endRow(out: CsvRow[]): void {
    if (this.#rowStarted) {
      this.#fields.push(this.#field);
      // Non-enumerable, so a row still compares and spreads like a plain string[].
      out.push(Object.defineProperty(this.#fields, "line", { value: this.#rowLine, enumerable: false }) as CsvRow);
    }
    this.#fields = [];
    this.#field = "";
    this.#state = START;
    this.#rowStarted = false;
    this.#rowChars = 0;
    // The next row starts on the line after the one this row ended on.
    this.#rowLine = this.#line + 1;
  }

  #reset(): void {
    this.#fields = [];
    this.#field = "";
    this.#state = START;
    this.#rowStarted = false;
    this.#rowChars = 0;
    this.#crPending = false;
  }
}

function countLF(text: string): number {
  let count = 0;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) count++;
  return count;
}
