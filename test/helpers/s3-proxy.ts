/**
 * A fault-injecting S3 proxy for tests: a real HTTP server on loopback in front of an S3 endpoint
 * (s3rver) that forwards every request as it is (method, path, query, headers, bodies streamed
 * both ways) unless a rule answers instead. Rules match on operation, method, key (the decoded
 * path `/bucket/key`, as a substring or a RegExp) and count (the first `times` matches, or always),
 * and fault with an S3 XML error, a hang, a delay, a hook run before forwarding, or a connection
 * reset in the middle of the response body.
 *
 * Signatures: the Host header is forwarded unchanged, so SigV4 signatures stay valid for an
 * upstream that checks them (s3rver 3 does not verify SigV4 at all: it only looks the key id up).
 *
 *     const proxy = await startS3Proxy(s3.endpoint);
 *     const settings = { ...s3.settings, endpoint: proxy.endpoint };
 *     const rule = proxy.add({ op: "GetObject", key: "a.json", times: 2, fault: { error: "SlowDown" } });
 *     …; expect(rule.hits).toBe(2); expect(proxy.counts().ListObjectsV2).toBe(1);
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type S3Operation =
  | "ListBuckets"
  | "ListObjectsV2"
  | "ListObjects"
  | "HeadBucket"
  | "CreateBucket"
  | "DeleteBucket"
  | "BucketOther"
  | "DeleteObjects"
  | "GetObject"
  | "HeadObject"
  | "PutObject"
  | "CopyObject"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "DeleteObject"
  | "Other";

/** The multipart operations, for rules on every write of an upload. */
export const MULTIPART_OPS: S3Operation[] = ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"];

/** S3 error codes the proxy can answer with, and their HTTP status (as S3 sends them). */
export const S3_ERROR_STATUS = {
  AccessDenied: 403,
  InvalidObjectState: 403,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  SlowDown: 503,
  InternalError: 500,
} as const;
export type S3ErrorCode = keyof typeof S3_ERROR_STATUS;

export type Fault =
  /** Answer with this S3 error (XML body, right status) after reading the request body. */
  | { error: S3ErrorCode; message?: string }
  /** Never answer (the socket stays open until the client gives up or the proxy closes). */
  | { hang: true }
  /** Forward after this many milliseconds. */
  | { delayMs: number }
  /** Run this, then forward (e.g. delete the object so that the read finds it gone). */
  | { before: () => unknown }
  /** Forward, but destroy the connection after `afterBytes` (≥ 1) of the response body (default: half of it). */
  | { resetMidBody: true; afterBytes?: number };

export interface FaultRule {
  op?: S3Operation | S3Operation[];
  method?: string;
  /** Matched against the decoded path, `/bucket/key`: a substring, or a RegExp. */
  key?: string | RegExp;
  /** Fault only the first `times` matching requests; afterwards the rule lets requests through. Default: always. */
  times?: number;
  fault: Fault;
}

/** An added rule; `hits` counts the requests it faulted. */
export interface ActiveRule extends FaultRule {
  hits: number;
  remove(): void;
}

export interface S3Proxy {
  /** `http://127.0.0.1:<port>`: use as `s3.endpoint` (with `forcePathStyle: true`). */
  endpoint: string;
  add(rule: FaultRule): ActiveRule;
  /** Removes every rule. */
  clear(): void;
  /** Requests seen per operation since the start or the last `reset()` (faulted ones included). */
  counts(): Partial<Record<S3Operation, number>>;
  /** Every request since the start or the last `reset()`: its operation, decoded path and headers. */
  requests(): { op: S3Operation; path: string; headers: http.IncomingHttpHeaders }[];
  reset(): void;
  close(): Promise<void>;
}

const LIST_PARAMS = new Set(["prefix", "delimiter", "marker", "max-keys", "encoding-type"]);

/** The S3 operation of a path-style request. */
export function operationOf(method: string, url: URL): S3Operation {
  const q = url.searchParams;
  const [bucket, ...rest] = url.pathname.slice(1).split("/");
  const key = rest.join("/");
  if (!bucket) return method === "GET" ? "ListBuckets" : "Other";
  if (!key) {
    if (method === "GET") {
      if (q.get("list-type") === "2") return "ListObjectsV2";
      return [...q.keys()].every((k) => LIST_PARAMS.has(k)) ? "ListObjects" : "BucketOther";
    }
    if (method === "POST" && q.has("delete")) return "DeleteObjects";
    return ({ HEAD: "HeadBucket", PUT: "CreateBucket", DELETE: "DeleteBucket" } as Record<string, S3Operation>)[method] ?? "BucketOther";
  }
  if (method === "GET") return "GetObject";
  if (method === "HEAD") return "HeadObject";
  if (method === "PUT") return q.has("uploadId") ? "UploadPart" : q.get("x-id") === "CopyObject" ? "CopyObject" : "PutObject";
  if (method === "POST") return q.has("uploads") ? "CreateMultipartUpload" : q.has("uploadId") ? "CompleteMultipartUpload" : "Other";
  if (method === "DELETE") return q.has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
  return "Other";
}

function matches(r: FaultRule, method: string, op: S3Operation, path: string): boolean {
  if (r.times !== undefined && (r as ActiveRule).hits >= r.times) return false;
  if (r.method && r.method.toUpperCase() !== method) return false;
  if (r.op && !(Array.isArray(r.op) ? r.op : [r.op]).includes(op)) return false;
  if (r.key !== undefined && !(typeof r.key === "string" ? path.includes(r.key) : r.key.test(path))) return false;
  return true;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"]);

/** Starts the proxy in front of `upstream` (e.g. `http://127.0.0.1:4568`). */
export async function startS3Proxy(upstream: string): Promise<S3Proxy> {
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true });
  const rules: ActiveRule[] = [];
  let counts: Partial<Record<S3Operation, number>> = {};
  let seen: { op: S3Operation; path: string; headers: http.IncomingHttpHeaders }[] = [];
  const sockets = new Set<Socket>();

  function forward(req: http.IncomingMessage, res: http.ServerResponse, reset?: { afterBytes?: number }): void {
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !HOP_BY_HOP.has(k)));
    const out = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers, agent }, (ur) => {
      const resHeaders = Object.fromEntries(Object.entries(ur.headers).filter(([k]) => !HOP_BY_HOP.has(k)));
      res.writeHead(ur.statusCode ?? 502, resHeaders);
      if (!reset) {
        ur.pipe(res);
        return;
      }
      let left = Math.max(1, reset.afterBytes ?? Math.floor(Number(ur.headers["content-length"] ?? 2) / 2));
      ur.on("end", () => res.end()); // a body shorter than afterBytes ends normally
      ur.on("data", (chunk: Buffer) => {
        if (left <= 0) return;
        const part = chunk.subarray(0, left);
        left -= part.length;
        if (left > 0) return void res.write(part);
        ur.destroy();
        res.write(part, () => res.socket?.destroy());
      });
    });
    out.on("error", () => (res.headersSent ? res.socket?.destroy() : res.writeHead(502).end()));
    res.on("close", () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  }

  function answerError(req: http.IncomingMessage, res: http.ServerResponse, code: S3ErrorCode, message?: string, path = ""): void {
    const body =
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message ?? `${code} (injected by the test proxy)`}</Message>` +
      `<Resource>${path.replace(/[<>&]/g, "")}</Resource><RequestId>proxy-${Date.now()}</RequestId></Error>`;
    req.resume();
    req.on("end", () => {
      res.writeHead(S3_ERROR_STATUS[code], { "content-type": "application/xml", "x-amz-request-id": "proxy" });
      res.end(req.method === "HEAD" ? undefined : body);
    });
  }

  const server = http.createServer((req, res) => {
    const method = (req.method ?? "GET").toUpperCase();
    const url = new URL(req.url ?? "/", "http://proxy");
    const op = operationOf(method, url);
    counts[op] = (counts[op] ?? 0) + 1;
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      path = url.pathname;
    }
    seen.push({ op, path, headers: req.headers });
    const rule = rules.find((r) => matches(r, method, op, path));
    if (!rule) return forward(req, res);
    rule.hits++;
    const f = rule.fault;
    if ("error" in f) return answerError(req, res, f.error, f.message, path);
    if ("hang" in f) return void req.resume();
    if ("delayMs" in f) return void setTimeout(() => forward(req, res), f.delayMs);
    if ("before" in f) {
      req.pause();
      return void Promise.resolve()
        .then(f.before)
        .then(
          () => forward(req, res),
          () => res.writeHead(500).end(),
        );
    }
    forward(req, res, { afterBytes: f.afterBytes });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    add(rule) {
      const r: ActiveRule = {
        ...rule,
        hits: 0,
        remove: () => {
          const i = rules.indexOf(r);
          if (i >= 0) rules.splice(i, 1);
        },
      };
      rules.push(r);
      return r;
    },
    clear: () => void rules.splice(0),
    counts: () => ({ ...counts }),
    requests: () => [...seen],
    reset: () => {
      counts = {};
      seen = [];
    },
    async close() {
      rules.splice(0);
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
