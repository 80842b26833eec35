import { ConfigError } from "../errors.js";

/** The bound of one run: at most `files` files, or at most `bytes` bytes (never both). */
export type Bound = { kind: "files"; limit: number } | { kind: "bytes"; limit: number };

/** Used when neither bound is set anywhere, so that a run's memory stays bounded. */
export const DEFAULT_BOUND: Bound = { kind: "files", limit: 10_000 };

const DECIMAL = /^[0-9]+$/;

/**
 * Parses one bound value as Glue takes it: a decimal string ("500") or a positive integer.
 * Rejects empty, zero, negative, fractional, non-numeric and unsafe values with an error that
 * names the option and the value.
 */
export function parseBoundValue(option: "boundedFiles" | "boundedSize", value: unknown, where = "job config"): number {
  const allowed = `${option} must be a positive whole number, as a decimal string ("500") or an integer`;
  let n: number;
  if (typeof value === "number") {
    n = value;
  } else if (typeof value === "string") {
    const s = value.trim();
    if (!DECIMAL.test(s)) throw new ConfigError(`${where}: ${option} = ${JSON.stringify(value)} is not valid: ${allowed}`);
    n = Number(s);
  } else {
    throw new ConfigError(`${where}: ${option} = ${JSON.stringify(value)} is not valid: ${allowed}`);
  }
  if (!Number.isInteger(n) || n <= 0) {
    throw new ConfigError(`${where}: ${option} = ${JSON.stringify(value)} is not valid: ${allowed}`);
  }
  if (!Number.isSafeInteger(n)) {
    throw new ConfigError(`${where}: ${option} = ${JSON.stringify(value)} is too large (max ${Number.MAX_SAFE_INTEGER})`);
  }
  return n;
}

export interface BoundOptions {
  boundedFiles?: unknown;
  boundedSize?: unknown;
}

/** Parses one level (override, job config or catalog parameters). Returns undefined when neither is set. */
export function parseBoundOptions(opts: BoundOptions, where: string): Bound | undefined {
  const hasFiles = opts.boundedFiles !== undefined && opts.boundedFiles !== null;
  const hasSize = opts.boundedSize !== undefined && opts.boundedSize !== null;
  if (hasFiles && hasSize) {
    throw new ConfigError(
      `${where}: both boundedFiles (${JSON.stringify(opts.boundedFiles)}) and boundedSize (${JSON.stringify(opts.boundedSize)}) are set; only one bound is supported, remove one of them`,
    );
  }
  if (hasFiles) return { kind: "files", limit: parseBoundValue("boundedFiles", opts.boundedFiles, where) };
  if (hasSize) return { kind: "bytes", limit: parseBoundValue("boundedSize", opts.boundedSize, where) };
  return undefined;
}

/** Where a run's bound comes from: a run-time override, the job config, the catalog table's parameters, or the default. */
export type BoundSource = "override" | "job" | "catalog" | "default";

/**
 * Resolves the bound of a run. Precedence, highest first: run-time override, job configuration,
 * catalog table parameters. Every level is validated, even ones that lose, so a bad value never hides.
 */
export function resolveBound(levels: {
  override?: BoundOptions;
  job?: BoundOptions;
  catalog?: BoundOptions;
  /** How errors name the catalog level, e.g. `catalog table raw.events parameters`. */
  catalogWhere?: string;
}): {
  bound: Bound;
  source: BoundSource;
} {
  const override = levels.override ? parseBoundOptions(levels.override, "run-time override") : undefined;
  const job = levels.job ? parseBoundOptions(levels.job, "job config") : undefined;
  const catalog = levels.catalog ? parseBoundOptions(levels.catalog, levels.catalogWhere ?? "catalog table parameters") : undefined;
  if (override) return { bound: override, source: "override" };
  if (job) return { bound: job, source: "job" };
  if (catalog) return { bound: catalog, source: "catalog" };
  return { bound: DEFAULT_BOUND, source: "default" };
}

export function describeBound(b: Bound): string {
  return b.kind === "files" ? `boundedFiles=${b.limit}` : `boundedSize=${b.limit}`;
}
