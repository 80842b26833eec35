import { getJob, loadConfig } from "../config/load.js";
import type { BookmarkMode } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import { log } from "../log.js";
import { previewPlan } from "../run/plan-preview.js";
import { openConnections } from "./connect.js";
import { formatBytes, plural } from "./render.js";

/** Where a bound came from, in words: "job", "command line", "default", "catalog table db.t parameters". */
export function boundFrom(source: string, catalog?: { database: string; table: string }): string {
  if (source === "override") return "command line";
  if (source === "catalog") return catalog ? `catalog table ${catalog.database}.${catalog.table} parameters` : "catalog table parameters";
  return source;
}

/** `tranche plan <job>`: what the next run would take; nothing is leased or written. */
export async function planCommand(
  job: string,
  opts: { config?: string; json?: boolean; boundedFiles?: string; boundedSize?: string; bookmark?: BookmarkMode },
): Promise<void> {
  const cfg = loadConfig(opts.config);
  getJob(cfg, job);
  if (opts.boundedFiles !== undefined && opts.boundedSize !== undefined)
    throw new ConfigError("--bounded-files and --bounded-size are both given; only one bound is supported");
  const override =
    opts.boundedFiles !== undefined || opts.boundedSize !== undefined
      ? { boundedFiles: opts.boundedFiles, boundedSize: opts.boundedSize }
      : undefined;
  const conn = await openConnections(cfg, { readOnly: true });
  try {
    const p = await previewPlan(cfg, job, conn.redis, log, { override, mode: opts.bookmark });
    if (opts.json) {
      process.stdout.write(JSON.stringify(p, null, 2) + "\n");
      return;
    }
    process.stdout.write(
      `plan of job ${p.job} (mode ${p.mode}, ${p.bound} from the ${boundFrom(p.boundSource, p.catalog)}; nothing leased or written)\n` +
        `  next run: ${plural(p.next.files, "file")}, ${formatBytes(p.next.bytes)} in ${plural(p.next.partitions.length, "partition")}` +
        (p.next.oldest ? `, last modified ${p.next.oldest} … ${p.next.newest}` : "") +
        "\n" +
        p.next.partitions
          .map((x) => `    ${x.partition || "(unpartitioned)"}: ${plural(x.files, "file")}, ${formatBytes(x.bytes)}\n`)
          .join("") +
        `  backlog: ${plural(p.backlog.files, "file")}, ${formatBytes(p.backlog.bytes)}${p.backlog.oldestUnprocessed ? `, oldest ${p.backlog.oldestUnprocessed}` : ""}; ${plural(p.runsNeeded, "run")} at this bound\n` +
        `  listing: ${p.listing.strategy}, ${plural(p.listing.objectsListed, "object")} listed in ${plural(p.listing.listRequests, "page")} (one LIST request each on S3)\n` +
        (p.catalog
          ? `  catalog: table ${p.catalog.database}.${p.catalog.table} at ${p.catalog.location}, partition keys ${p.catalog.partitionKeys.join(", ") || "(none)"}; ${plural(p.catalog.partitionsListed, "partition")} listed${p.catalog.expression ? ` matching ${JSON.stringify(p.catalog.expression)}` : ""} (${plural(p.catalog.glueRequests, "GetPartitions request")})` +
            (Object.keys(p.catalog.parameters).length
              ? `; parameters ${Object.entries(p.catalog.parameters)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(", ")}`
              : "") +
            "\n"
          : ""),
    );
  } finally {
    await conn.close();
  }
}
