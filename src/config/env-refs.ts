/**
 * `${env:NAME}` references in processorOptions: a secret stays in each worker's environment and
 * never travels through Redis. Resolved on the worker, just before a file is handed to a thread.
 */
const REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;

export class MissingEnvError extends Error {
  constructor(
    readonly path: string,
    readonly variable: string,
  ) {
    super(
      `processorOptions${path ? `.${path}` : ""} references \${env:${variable}}, but ${variable} is not set in this worker's environment`,
    );
    this.name = "MissingEnvError";
  }
}

/** A copy of `value` with every `${env:NAME}` in its strings replaced; throws {@link MissingEnvError} for an unset one. */
export function resolveEnvRefs<T>(value: T, env: NodeJS.ProcessEnv = process.env, path = ""): T {
  if (typeof value === "string") {
    return value.replace(REF, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new MissingEnvError(path, name);
      return v;
    }) as T;
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveEnvRefs(v, env, `${path}[${i}]`)) as T;
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveEnvRefs(v, env, path ? `${path}.${k}` : k);
    return out as T;
  }
  return value;
}

/** Whether a value holds any `${env:…}` reference (such values are never logged resolved). */
export function hasEnvRefs(value: unknown): boolean {
  return JSON.stringify(value ?? null).includes("${env:");
}
