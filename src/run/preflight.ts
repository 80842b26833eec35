import { realpathSync } from "node:fs";
import { locationsOverlap } from "../config/overlap.js";
import { MissingEnvError, resolveEnvRefs } from "../config/env-refs.js";
import type { TrancheConfig } from "../config/schema.js";
import { ConfigError, TrancheError, UnreachableError } from "../errors.js";
import { messageOf } from "../failures.js";
import type { Logger } from "../log.js";
import type { FilePool } from "../pool/file-pool.js";
import { openSink, openSource } from "../source/open.js";

export interface PreflightResult {
  warnings: string[];
  /** The processor names its outputs itself: the planner checks each run for two inputs sharing one output. */
  customOutputName: boolean;
}

/**
 * Checks a job before anything is leased or read, so that a broken job fails at once with the
 * field named instead of dead-lettering its whole selection three runs later:
 *  1. the processor and its transform load in a worker thread (as they will run) and the
 *     processorOptions pass the processor's own schema (unknown keys are errors);
 *  2. source and output do not overlap (same folder, one inside the other, overlapping prefixes);
 *     a catalog source's table is read first (GetTable, its parameters, the partition filter) and
 *     its location stands for the source;
 *  3. the source exists and can be listed (an output catalog table exists);
 *  4. the output can be written (a probe object under `_tranche/`, removed if permitted);
 *  5. abandoned temp files of killed workers are removed from a local output.
 * A bad setting throws ConfigError (E_CONFIG, exit 2); an unreachable source or output throws
 * UnreachableError / AccessDeniedError (exit 4). Redis is checked when connecting (E_REDIS).
 */
export async function preflight(o: { cfg: TrancheConfig; job: string; pool: FilePool; log: Logger }): Promise<PreflightResult> {
  const jc = o.cfg.jobs[o.job]!;
  const field = (f: string) => `jobs.${o.job}.${f}`;
  let options: Record<string, unknown>;
  try {
    options = resolveEnvRefs(jc.processorOptions);
  } catch (err) {
    if (err instanceof MissingEnvError)
      throw new ConfigError(`${field(`processorOptions${err.path ? `.${err.path}` : ""}`)}: ${err.message}`);
    throw err;
  }
  const pf = await o.pool.preflight({ processor: jc.processor, processorOptions: options });
  if (!pf.ok) {
    const where =
      pf.field !== undefined
        ? field(`processorOptions${pf.field ? `.${pf.field}` : ""}`)
        : pf.failure.code === "E_TRANSFORM"
          ? field("processorOptions.transform")
          : field("processor");
    throw new ConfigError(`${where}: ${pf.failure.message}`);
  }

  const warnings = [...pf.warnings];
  // A catalog source: the table is read (GetTable; its parameters and the partition filter
  // checked), and its location takes the place of source.path below.
  let sourcePath = jc.source.path;
  let sourceField = field("source.path");
  if (jc.source.catalog) {
    const { resolveCatalogSource } = await import("../catalog/catalog-source.js");
    const cat = await named(field("source.catalog"), () => resolveCatalogSource(o.cfg, jc));
    sourcePath = cat.table.location;
    sourceField = `${field("source.catalog")} (location of table ${jc.source.catalog.database}.${jc.source.catalog.table})`;
  }
  if (locationsOverlap(sourcePath!, jc.output.path, { realpath: realpathSync.native })) {
    throw new ConfigError(
      `${field("output.path")} (${jc.output.path}) overlaps ${sourceField} (${sourcePath}): outputs would be listed as inputs or inputs overwritten; point the output at a folder or prefix outside the source`,
    );
  }

  const source = await openSource(sourcePath!, o.cfg.s3, { recurse: jc.source.recurse });
  await named(sourceField, () => source.check());
  if (jc.output.catalog) {
    const { checkOutputTable } = await import("../catalog/register.js");
    const out = await named(field("output.catalog"), () => checkOutputTable(o.cfg, jc));
    if (out.warning) warnings.push(out.warning);
  }
  const sink = await openSink(jc.output.path, o.cfg.s3, jc.output.s3);
  const probe = await named(field("output.path"), () => sink.probe());
  if (probe.warning) warnings.push(probe.warning);
  if (sink.sweepTempFiles) {
    const n = await sink.sweepTempFiles();
    if (n) o.log.info("removed temp files of killed workers", { job: o.job, files: n });
  }
  for (const w of warnings) o.log.warn(w, { job: o.job });
  return { warnings, customOutputName: pf.customOutputName };
}

/** Adds the config field to a check's error (its own code and exit code are kept). */
async function named<T>(fieldName: string, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (err) {
    if (err instanceof TrancheError) {
      err.message = `${fieldName}: ${err.message}`;
      throw err;
    }
    throw new UnreachableError(`${fieldName}: ${messageOf(err)}`, { cause: err });
  }
}
