import type { JobConfig } from "../../config/schema.js";
import { parseBoundValue, type BoundOptions } from "../../config/bounds.js";
import { ConfigError } from "../../errors.js";
import type { StepContext } from "../../run/step-context.js";
import { ApiError } from "../errors.js";

/** What every route plugin gets. */
export interface RouteDeps {
  ctx: StepContext;
}

/** The job's configuration, or 404 E_UNKNOWN_JOB. */
export function requireJob(ctx: StepContext, name: string): JobConfig {
  const job = Object.hasOwn(ctx.cfg.jobs, name) ? ctx.cfg.jobs[name] : undefined;
  if (!job) {
    const known = Object.keys(ctx.cfg.jobs);
    throw new ApiError(404, "E_UNKNOWN_JOB", `unknown job "${name}"; configured jobs: ${known.length ? known.join(", ") : "(none)"}`);
  }
  return job;
}

/**
 * A run-time bound from a request (`boundedFiles` or `boundedSize`, as Glue takes them), checked
 * as the CLI checks `--bounded-*`: 400 naming the field for a bad value or for both at once.
 */
export function boundOverride(
  src: { boundedFiles?: string | number; boundedSize?: string | number },
  part: "body" | "querystring",
): BoundOptions | undefined {
  const { boundedFiles, boundedSize } = src;
  if (boundedFiles !== undefined && boundedSize !== undefined)
    throw new ApiError(400, "E_BAD_REQUEST", `${part}/boundedSize: give boundedFiles or boundedSize, not both`, `${part}/boundedSize`);
  for (const [name, v] of [
    ["boundedFiles", boundedFiles],
    ["boundedSize", boundedSize],
  ] as const) {
    if (v === undefined) continue;
    try {
      parseBoundValue(name, v, "run-time override");
    } catch (err) {
      if (err instanceof ConfigError) throw new ApiError(400, "E_BAD_REQUEST", `${part}/${name}: ${err.message}`, `${part}/${name}`);
      throw err;
    }
  }
  return boundedFiles !== undefined || boundedSize !== undefined ? { boundedFiles, boundedSize } : undefined;
}
