/**
 * Reads S3 object-created notifications out of the bodies users post (pure): S3's notification
 * `Records[]` (as S3 sends to SQS, SNS or Lambda, and as MinIO's webhook target posts it), an SNS
 * envelope around one, and EventBridge "Object Created" events (one, or an array).
 */

/** One object-created notification. */
export interface ObjectEvent {
  /** The delivery's id: EventBridge's `id`, else derived from bucket, key and sequencer. */
  id: string;
  bucket: string;
  /** The object key, URL-decoded (S3 and EventBridge send it URL-encoded, spaces as `+`). */
  key: string;
  /** S3's sequencer (orders events of one key); "" when the sender gives none. */
  sequencer: string;
  /** When the event happened (epoch ms). */
  time: number;
  size: number | null;
  etag: string;
}

export interface ParsedBody {
  events: ObjectEvent[];
  /** Records that are not object creations (deletions, S3's test event): ignored. */
  ignored: number;
}

/** A body that is not a notification: names the offending field. */
export class EventShapeError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "EventShapeError";
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function str(v: unknown, field: string): string {
  if (typeof v !== "string" || v === "") throw new EventShapeError(field, "must be a non-empty string");
  return v;
}

function decodeKey(k: string, field: string): string {
  try {
    return decodeURIComponent(k.replace(/\+/g, " "));
  } catch {
    throw new EventShapeError(field, "is not a URL-encoded key");
  }
}

function timeOf(v: unknown, field: string): number {
  if (v === undefined) return Date.now();
  const t = typeof v === "string" ? Date.parse(v) : NaN;
  if (!Number.isFinite(t)) throw new EventShapeError(field, "must be an ISO 8601 time");
  return t;
}

function sizeOf(v: unknown, field: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new EventShapeError(field, "must be a whole number of bytes");
  return v;
}

function idOf(bucket: string, key: string, sequencer: string, etag: string): string {
  return `${bucket}/${key}@${sequencer || etag || "0"}`;
}

/** One S3 notification record (`Records[i]`). */
function fromRecord(r: unknown, at: string): ObjectEvent | null {
  if (!isObj(r)) throw new EventShapeError(at, "must be an object");
  const name = str(r.eventName, `${at}.eventName`);
  // "ObjectCreated:Put" (S3), "s3:ObjectCreated:Put" (MinIO).
  if (!/^(s3:)?ObjectCreated:/.test(name)) return null;
  const s3 = r.s3;
  if (!isObj(s3)) throw new EventShapeError(`${at}.s3`, "must be an object");
  if (!isObj(s3.bucket)) throw new EventShapeError(`${at}.s3.bucket`, "must be an object");
  if (!isObj(s3.object)) throw new EventShapeError(`${at}.s3.object`, "must be an object");
  const bucket = str(s3.bucket.name, `${at}.s3.bucket.name`);
  const key = decodeKey(str(s3.object.key, `${at}.s3.object.key`), `${at}.s3.object.key`);
  const sequencer = typeof s3.object.sequencer === "string" ? s3.object.sequencer : "";
  const etag = typeof s3.object.eTag === "string" ? s3.object.eTag : "";
  return {
    id: idOf(bucket, key, sequencer, etag),
    bucket,
    key,
    sequencer,
    time: timeOf(r.eventTime, `${at}.eventTime`),
    size: sizeOf(s3.object.size, `${at}.s3.object.size`),
    etag,
  };
}

/** One EventBridge event; null unless it is S3's "Object Created". */
function fromEventBridge(e: Record<string, unknown>, at: string): ObjectEvent | null {
  if (e["detail-type"] !== "Object Created") return null;
  const d = e.detail;
  if (!isObj(d)) throw new EventShapeError(`${at}.detail`, "must be an object");
  if (!isObj(d.bucket)) throw new EventShapeError(`${at}.detail.bucket`, "must be an object");
  if (!isObj(d.object)) throw new EventShapeError(`${at}.detail.object`, "must be an object");
  const bucket = str(d.bucket.name, `${at}.detail.bucket.name`);
  const key = decodeKey(str(d.object.key, `${at}.detail.object.key`), `${at}.detail.object.key`);
  const sequencer = typeof d.object.sequencer === "string" ? d.object.sequencer : "";
  const etag = typeof d.object.etag === "string" ? d.object.etag : "";
  return {
    id: typeof e.id === "string" && e.id ? e.id : idOf(bucket, key, sequencer, etag),
    bucket,
    key,
    sequencer,
    time: timeOf(e.time, `${at}.time`),
    size: sizeOf(d.object.size, `${at}.detail.object.size`),
    etag,
  };
}

/** At most this many records in one request. */
export const MAX_RECORDS = 10_000;

/** Parses a request body; throws EventShapeError naming the field for anything else. */
export function parseEventBody(body: unknown): ParsedBody {
  const events: ObjectEvent[] = [];
  let ignored = 0;
  const take = (e: ObjectEvent | null) => (e ? events.push(e) : ignored++);
  // An SNS envelope (an HTTP subscription, or SNS → SQS without raw delivery) carries the S3 body as a string.
  if (isObj(body) && body.Type === "Notification" && typeof body.Message === "string") {
    let inner: unknown;
    try {
      inner = JSON.parse(body.Message);
    } catch {
      throw new EventShapeError("Message", "is not JSON");
    }
    return parseEventBody(inner);
  }
  if (isObj(body) && "Records" in body) {
    if (!Array.isArray(body.Records)) throw new EventShapeError("Records", "must be an array");
    if (body.Records.length > MAX_RECORDS)
      throw new EventShapeError("Records", `holds ${body.Records.length} records, at most ${MAX_RECORDS}`);
    body.Records.forEach((r, i) => take(fromRecord(r, `Records[${i}]`)));
    return { events, ignored };
  }
  if (isObj(body) && "detail-type" in body) {
    take(fromEventBridge(body, "body"));
    return { events, ignored };
  }
  if (Array.isArray(body)) {
    if (body.length > MAX_RECORDS) throw new EventShapeError("body", `holds ${body.length} events, at most ${MAX_RECORDS}`);
    body.forEach((e, i) => {
      if (!isObj(e) || !("detail-type" in e)) throw new EventShapeError(`[${i}]`, 'must be an EventBridge event (with "detail-type")');
      take(fromEventBridge(e, `[${i}]`));
    });
    return { events, ignored };
  }
  // S3's test event when a notification is configured: nothing to do.
  if (isObj(body) && body.Event === "s3:TestEvent") return { events, ignored: 1 };
  throw new EventShapeError(
    "body",
    'must be an S3 notification ({"Records": [...]}), an SNS notification carrying one, or an EventBridge "Object Created" event',
  );
}
