/**
 * Whether a job's source and output overlap (pure; no I/O unless a `realpath` is given). An output
 * inside its own source would be listed as new input by the next run, and a source inside its
 * output could be overwritten by it: the configuration check refuses both.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";

type Location = { kind: "local"; segments: string[] } | { kind: "s3"; bucket: string; prefix: string };

/**
 * True when two resolved locations (`file:///abs/path`, an absolute path, or `s3://bucket/prefix/`)
 * are the same folder or one lies inside the other:
 * - local paths are compared segment by segment after normalising (`/data/in` and `/data/input`
 *   do not overlap; `/data/in` and `/data/in/x` do);
 * - S3 locations overlap in the same bucket when one prefix (normalised to end with `/`) starts
 *   with the other; an empty prefix is the whole bucket and overlaps everything in it;
 * - a local folder and an S3 location never overlap.
 *
 * `realpath` (e.g. `fs.realpathSync.native`) resolves symbolic links of local paths first; a path
 * that does not exist yet is resolved through its nearest existing parent. Without it, paths are
 * compared as written.
 */
export function locationsOverlap(source: string, output: string, opts: { realpath?: (p: string) => string } = {}): boolean {
  const a = parseLocation(source, opts.realpath);
  const b = parseLocation(output, opts.realpath);
  if (a.kind === "local" && b.kind === "local") return isPrefix(a.segments, b.segments) || isPrefix(b.segments, a.segments);
  if (a.kind === "s3" && b.kind === "s3") {
    return a.bucket === b.bucket && (a.prefix.startsWith(b.prefix) || b.prefix.startsWith(a.prefix));
  }
  return false;
}

function parseLocation(loc: string, realpath?: (p: string) => string): Location {
  if (loc.startsWith("s3://")) {
    const rest = loc.slice("s3://".length);
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    let prefix = slash < 0 ? "" : rest.slice(slash + 1).replace(/^\/+/, "");
    if (prefix !== "" && !prefix.endsWith("/")) prefix += "/";
    return { kind: "s3", bucket, prefix };
  }
  let p = path.resolve(loc.startsWith("file://") ? fileURLToPath(loc) : loc);
  if (realpath) p = resolveExisting(p, realpath);
  return { kind: "local", segments: p.split(path.sep).filter((s) => s !== "") };
}

/** `realpath` of the nearest existing ancestor, with the rest of the path appended. */
function resolveExisting(p: string, realpath: (p: string) => string): string {
  try {
    return realpath(p);
  } catch {
    const parent = path.dirname(p);
    if (parent === p) return p;
    return path.join(resolveExisting(parent, realpath), path.basename(p));
  }
}

function isPrefix(short: string[], long: string[]): boolean {
  return short.length <= long.length && short.every((s, i) => s === long[i]);
}
