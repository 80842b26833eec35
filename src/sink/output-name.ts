/**
 * Output keys: checking them, fitting them into a store's name limits, and finding two inputs
 * that map to one output. Pure (no I/O), so that the planner and both sinks share one rule.
 *
 * Output names are an injective function of input keys: the built-in processors name an output
 * after the whole input key (`dt=1/a.json.gz` → `dt=1/a.json.gz.ndjson`, or the key itself for
 * `copy`), and {@link fitOutputKey} shortens a name that a store cannot hold without making two
 * names one (up to a 64-bit hash collision, see there).
 */
import { createHash } from "node:crypto";
import { FileError } from "../failures.js";

/** How long an output key and each of its `/`-separated segments may be, in UTF-8 bytes. */
export interface OutputKeyLimits {
  /** Longest segment (a file or folder name). */
  maxSegmentBytes: number;
  /** Longest whole key. */
  maxKeyBytes: number;
}

/** Local folders: 255-byte names (ext4, xfs, APFS, NTFS), 4096-byte paths (Linux `PATH_MAX`). */
export const LOCAL_OUTPUT_LIMITS: Readonly<OutputKeyLimits> = Object.freeze({ maxSegmentBytes: 255, maxKeyBytes: 4096 });

/** S3: no segment limit, 1024-byte keys (prefix included). */
export const S3_OUTPUT_LIMITS: Readonly<OutputKeyLimits> = Object.freeze({ maxSegmentBytes: Infinity, maxKeyBytes: 1024 });

/**
 * tranche's own folder inside an output (temp files, probes). `_`-prefixed folders are hidden to
 * Spark and Hive readers; sources skip it, and no output key may start with it.
 */
export const TRANCHE_DIR = "_tranche";

/** The output key of a processor without `outputName`: the input key itself (injective). */
export function defaultOutputName(key: string): string {
  return key;
}

/**
 * Throws `FileError("E_OUTPUT_NAME")`, naming the key, for a key no store should get: empty, with
 * a NUL byte, with an empty segment (`a//b`, a leading or trailing `/`), a `.` or `..` segment
 * (which would escape or alias a folder), or inside tranche's own `_tranche/` folder (unless
 * `internal`: tranche's own files, such as commit manifests).
 */
export function checkOutputKey(key: string, o: { internal?: boolean } = {}): void {
  const bad = (why: string): never => {
    throw new FileError("E_OUTPUT_NAME", `invalid output name ${JSON.stringify(key)}: ${why}`, { retryable: false });
  };
  if (key === "") bad("it is empty");
  if (key.includes("\0")) bad("it contains a NUL byte");
  const segments = key.split("/");
  for (const s of segments) {
    if (s === "") bad("it has an empty segment (a leading, trailing or doubled /)");
    if (s === "." || s === "..") bad(`it has a "${s}" segment`);
  }
  if (segments[0] === TRANCHE_DIR && !o.internal) bad(`${TRANCHE_DIR}/ is tranche's own folder in an output`);
}

/** Hash suffix: `~` and 16 hex characters (64 bits) of SHA-256. */
const HASH_BYTES = 17;
/** An extension longer than this is not kept (it would leave too little of the name). */
const MAX_EXT_BYTES = 32;
/** Limits below this cannot hold a shortened name with a readable prefix. */
const MIN_LIMIT = HASH_BYTES + MAX_EXT_BYTES + 15;

/**
 * Fits an output key into a store's limits. A key whose segments and whole length fit is returned
 * unchanged. Otherwise each segment longer than `maxSegmentBytes` (UTF-8) becomes
 * `<prefix>~<hash><ext>`: the longest prefix of the segment (cut at a character boundary) that
 * fits, `~` and the first 16 hex characters of the SHA-256 of the whole original segment, and the
 * segment's last extension (`.ndjson`, at most 32 bytes) so that the type stays visible. If the
 * key is then still longer than `maxKeyBytes`, the same is done to the whole key (its leading
 * folders are kept as far as they fit, the hash is of the whole original key).
 *
 * Injectivity: two different keys that are shortened get one name only if their hashes collide:
 * 64 bits, so among n shortened names the odds of any collision are about n² / 2⁶⁵ (one in ~3.7
 * million for ten million names). A key that fits is never changed, so the one other way to share
 * a name is an input key that already is the shortened form of another input of the same job
 * (say, an earlier output copied back into the input): the planner's {@link findOutputCollision}
 * over the fitted names catches both.
 */
export function fitOutputKey(key: string, limits: OutputKeyLimits): string {
  const { maxSegmentBytes, maxKeyBytes } = limits;
  if (!(maxSegmentBytes >= MIN_LIMIT) || !(maxKeyBytes >= MIN_LIMIT)) {
    throw new RangeError(`output key limits must be at least ${MIN_LIMIT} bytes, got ${JSON.stringify(limits)}`);
  }
  const keyBytes = Buffer.byteLength(key);
  const segments = key.split("/");
  const fits = (s: string) => Buffer.byteLength(s) <= maxSegmentBytes;
  if (keyBytes <= maxKeyBytes && segments.every(fits)) return key;
  const fitted = segments.map((s) => (fits(s) ? s : shorten(s, maxSegmentBytes))).join("/");
  if (Buffer.byteLength(fitted) <= maxKeyBytes) return fitted;
  // The whole key: a prefix of the fitted key (so its folders fit) and the hash of the original.
  const ext = extensionOf(key.slice(key.lastIndexOf("/") + 1));
  const suffix = `~${hash16(key)}${ext}`;
  const suffixBytes = Buffer.byteLength(suffix);
  let head = cutToBytes(fitted, maxKeyBytes - suffixBytes);
  // The last, partial segment of the head plus the suffix must fit a segment too.
  const slash = head.lastIndexOf("/");
  const tail = cutToBytes(head.slice(slash + 1), maxSegmentBytes - suffixBytes);
  head = head.slice(0, slash + 1) + tail;
  return head + suffix;
}

/** `<prefix>~<hash><ext>` in at most `max` bytes. */
function shorten(segment: string, max: number): string {
  const suffix = `~${hash16(segment)}${extensionOf(segment)}`;
  return cutToBytes(segment, max - Buffer.byteLength(suffix)) + suffix;
}

/** The last extension of a name (`.ndjson`), or "" when it has none or a very long one. */
function extensionOf(name: string): string {
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return "";
  const ext = name.slice(dot);
  return ext.length > 1 && Buffer.byteLength(ext) <= MAX_EXT_BYTES ? ext : "";
}

function hash16(s: string): string {
  return createHash("sha256").update(s, "utf8").digest("hex").slice(0, 16);
}

/** The longest prefix of `s` of at most `max` UTF-8 bytes that ends on a character boundary. */
function cutToBytes(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + n > max) break;
    bytes += n;
    end += ch.length;
  }
  return s.slice(0, end);
}

/**
 * The first two inputs that map to one output, or `undefined` when every output is distinct
 * (the planner's check of a user-defined `outputName`). Holds one entry per distinct output.
 */
export function findOutputCollision(
  pairs: Iterable<{ input: string; output: string }>,
): { a: string; b: string; output: string } | undefined {
  const seen = new Map<string, string>();
  for (const { input, output } of pairs) {
    const first = seen.get(output);
    if (first !== undefined && first !== input) return { a: first, b: input, output };
    seen.set(output, input);
  }
  return undefined;
}
