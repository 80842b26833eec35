import { ConfigError } from "../errors.js";

/**
 * `source.partitionFilter`: a predicate over partition values in the syntax of Glue's
 * GetPartitions `Expression`: `=, <>, !=, <, >, <=, >=, AND, OR, NOT, IN (…), BETWEEN … AND …,
 * LIKE, IS [NOT] NULL`, parentheses, string literals in single quotes ('' for a quote) and
 * numbers. A number literal compares numerically (a value that is not a number then fails the
 * comparison); a string literal compares as text. Hive's `__HIVE_DEFAULT_PARTITION__` is NULL.
 *
 * Evaluation is three-valued: a partition key whose value is not known yet (the `partitions`
 * listing walks the folders one level at a time) makes a comparison unknown, so a folder is
 * pruned only when no value of the keys below it could match.
 */
export type Filter = (values: Readonly<Record<string, string>>) => boolean | null;

type Lit = { kind: "str"; v: string } | { kind: "num"; v: number };
type Node =
  | { t: "and" | "or"; a: Node; b: Node }
  | { t: "not"; a: Node }
  | { t: "cmp"; col: string; op: string; lit: Lit }
  | { t: "in"; col: string; lits: Lit[]; neg: boolean }
  | { t: "between"; col: string; lo: Lit; hi: Lit; neg: boolean }
  | { t: "like"; col: string; re: RegExp; neg: boolean }
  | { t: "null"; col: string; neg: boolean };

const NULL_VALUE = "__HIVE_DEFAULT_PARTITION__";

function tokenize(src: string): string[] {
  const out: string[] = [];
  const re = /\s*(?:('(?:[^']|'')*')|(`[^`]+`)|(<>|!=|<=|>=|=|<|>|\(|\)|,)|(-?\d+(?:\.\d+)?(?![\w.]))|([A-Za-z_][\w.]*))/y;
  let i = 0;
  while (i < src.length) {
    if (/^\s*$/.test(src.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(src);
    if (!m)
      throw new ConfigError(
        `source.partitionFilter: cannot read "${src.slice(i).trim().slice(0, 20)}" at position ${i + 1} of ${JSON.stringify(src)}`,
      );
    out.push(m[1] ?? m[2] ?? m[3] ?? m[4] ?? m[5]!);
    i = re.lastIndex;
  }
  return out;
}

/** Compiles a filter; unknown columns (not partition keys) and syntax errors are E_CONFIG naming the filter. */
export function compileFilter(src: string, partitionKeys: readonly string[]): Filter {
  const toks = tokenize(src);
  let pos = 0;
  const fail = (what: string): never => {
    throw new ConfigError(
      `source.partitionFilter ${JSON.stringify(src)}: ${what}${pos < toks.length ? ` at "${toks[pos]}"` : " at the end"}`,
    );
  };
  const peek = () => toks[pos]?.toUpperCase();
  const take = (w: string) => (peek() === w ? (pos++, true) : false);
  const need = (w: string) => take(w) || fail(`expected ${w}`);
  const literal = (): Lit => {
    const t = toks[pos];
    if (t === undefined) return fail("expected a value");
    if (t.startsWith("'")) {
      pos++;
      return { kind: "str", v: t.slice(1, -1).replace(/''/g, "'") };
    }
    if (/^-?\d/.test(t)) {
      pos++;
      return { kind: "num", v: Number(t) };
    }
    return fail("expected a quoted string or a number");
  };
  const column = (): string => {
    const t = toks[pos];
    if (t === undefined || !/^[A-Za-z_`]/.test(t)) return fail("expected a partition key");
    const name = t.startsWith("`") ? t.slice(1, -1) : t;
    if (!partitionKeys.includes(name)) {
      throw new ConfigError(
        `source.partitionFilter ${JSON.stringify(src)}: "${name}" is not a partition key (source.partitionKeys: ${partitionKeys.join(", ") || "none"})`,
      );
    }
    pos++;
    return name;
  };
  const primary = (): Node => {
    if (take("(")) {
      const e = or();
      need(")");
      return e;
    }
    const col = column();
    const op = toks[pos];
    if (op && ["=", "<>", "!=", "<", ">", "<=", ">="].includes(op)) {
      pos++;
      return { t: "cmp", col, op: op === "!=" ? "<>" : op, lit: literal() };
    }
    if (take("IS")) {
      const neg = take("NOT");
      need("NULL");
      return { t: "null", col, neg };
    }
    const neg = take("NOT");
    if (take("IN")) {
      need("(");
      const lits = [literal()];
      while (take(",")) lits.push(literal());
      need(")");
      return { t: "in", col, lits, neg };
    }
    if (take("BETWEEN")) {
      const lo = literal();
      need("AND");
      return { t: "between", col, lo, hi: literal(), neg };
    }
    if (take("LIKE")) {
      const l = literal();
      const pattern = String(l.v)
        .split("")
        .map((c) => (c === "%" ? ".*" : c === "_" ? "." : c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
        .join("");
      return { t: "like", col, re: new RegExp(`^${pattern}$`, "s"), neg };
    }
    return fail("expected a comparison (=, <>, <, >, <=, >=, IN, BETWEEN, LIKE, IS NULL)");
  };
  const not = (): Node => (take("NOT") ? { t: "not", a: not() } : primary());
  const and = (): Node => {
    let a = not();
    while (take("AND")) a = { t: "and", a, b: not() };
    return a;
  };
  const or = (): Node => {
    let a = and();
    while (take("OR")) a = { t: "or", a, b: and() };
    return a;
  };
  if (toks.length === 0) fail("empty filter");
  const tree = or();
  if (pos < toks.length) fail("unexpected text");
  return (values) => evaluate(tree, values);
}

/** Compares a value with a literal: <0, 0, >0, or null when a number literal meets a value that is not a number. */
function compare(v: string, l: Lit): number | null {
  if (l.kind === "num") {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n)) return null;
    return n - l.v;
  }
  return v < l.v ? -1 : v > l.v ? 1 : 0;
}

function evaluate(n: Node, values: Readonly<Record<string, string>>): boolean | null {
  const neg = (r: boolean | null, on: boolean) => (r === null ? null : on ? !r : r);
  switch (n.t) {
    case "and": {
      const a = evaluate(n.a, values);
      if (a === false) return false;
      const b = evaluate(n.b, values);
      if (b === false) return false;
      return a === null || b === null ? null : true;
    }
    case "or": {
      const a = evaluate(n.a, values);
      if (a === true) return true;
      const b = evaluate(n.b, values);
      if (b === true) return true;
      return a === null || b === null ? null : false;
    }
    case "not":
      return neg(evaluate(n.a, values), true);
    default:
      break;
  }
  if (!(n.col in values)) return null; // not known yet
  const v = values[n.col]!;
  const isNull = v === NULL_VALUE;
  if (n.t === "null") return isNull !== n.neg;
  if (isNull) return null; // SQL: a comparison with NULL is unknown (NOT of it too), so never true
  switch (n.t) {
    case "cmp": {
      const c = compare(v, n.lit);
      if (c === null) return false;
      return { "=": c === 0, "<>": c !== 0, "<": c < 0, ">": c > 0, "<=": c <= 0, ">=": c >= 0 }[n.op as "="]!;
    }
    case "in":
      return neg(
        n.lits.some((l) => compare(v, l) === 0),
        n.neg,
      );
    case "between": {
      const lo = compare(v, n.lo);
      const hi = compare(v, n.hi);
      return neg(lo !== null && hi !== null && lo >= 0 && hi <= 0, n.neg);
    }
    case "like":
      return neg(n.re.test(v), n.neg);
  }
}
