import http from "node:http";
import type { AddressInfo } from "node:net";
import { compileFilter } from "../../src/source/partition-filter.js";

/**
 * A small in-memory AWS Glue Data Catalog speaking Glue's JSON 1.1 protocol (POST / with
 * `X-Amz-Target: AWSGlue.<Operation>`, `Content-Type: application/x-amz-json-1.1`, errors as
 * `{"__type": "...", "Message": "..."}`), so that tests drive the real `@aws-sdk/client-glue`
 * client. Signatures are not checked. Operations: GetTable, GetPartitions (NextToken, MaxResults
 * 1–1000, Segment, Expression through tranche's own compileFilter), GetPartition and
 * BatchCreatePartition (at most 100, `AlreadyExistsException` in `Errors` for existing ones).
 */

export interface StandinColumn {
  Name: string;
  Type?: string;
}

export interface StandinStorageDescriptor {
  Location?: string;
  Columns?: StandinColumn[];
  InputFormat?: string;
  OutputFormat?: string;
  SerdeInfo?: { SerializationLibrary?: string; Parameters?: Record<string, string> };
  Parameters?: Record<string, string>;
  [k: string]: unknown;
}

export interface StandinPartition {
  Values: string[];
  StorageDescriptor: StandinStorageDescriptor;
  Parameters?: Record<string, string>;
}

interface Table {
  name: string;
  storageDescriptor: StandinStorageDescriptor;
  partitionKeys: StandinColumn[];
  parameters: Record<string, string>;
  /** By values joined with \u0000, in insertion order. */
  partitions: Map<string, StandinPartition>;
}

export type GlueOperation = "GetTable" | "GetPartitions" | "GetPartition" | "BatchGetPartition" | "BatchCreatePartition" | string;

export interface GlueStandin {
  endpoint: string;
  /** Creates (or replaces) a table; its database is created when missing. */
  putTable(
    database: string,
    table: string,
    t: {
      location: string;
      partitionKeys?: (string | StandinColumn)[];
      parameters?: Record<string, string>;
      storageDescriptor?: Partial<StandinStorageDescriptor>;
    },
  ): void;
  /** Adds partitions (values in partition-key order, each with its own location). */
  putPartitions(
    database: string,
    table: string,
    parts: { values: string[]; location: string; parameters?: Record<string, string> }[],
  ): void;
  /** The partitions of a table, in insertion order. */
  partitions(database: string, table: string): StandinPartition[];
  /** Sets a table's parameters (replacing them). */
  setParameters(database: string, table: string, parameters: Record<string, string>): void;
  /** The next `n` calls of `op` answer this error (default: a 500 InternalServiceException, which the SDK retries). */
  failNext(op: GlueOperation, n: number, error?: { status: number; type: string; message?: string }): void;
  /** Calls per operation since the start or the last `reset()` (failed ones included). */
  calls(): Record<string, number>;
  /** The JSON bodies of the requests of one operation since the start or the last `reset()`. */
  requests(op: GlueOperation): Record<string, unknown>[];
  /** Each request (of one operation, when given; until `reset()`) waits this long before its answer (emulates the network, or a slow Glue). */
  setLatency(ms: number, op?: GlueOperation): void;
  reset(): void;
  close(): Promise<void>;
}

class GlueFault extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const notFound = (what: string) => new GlueFault(400, "EntityNotFoundException", what);
const invalid = (what: string) => new GlueFault(400, "InvalidInputException", what);

export async function startGlueStandin(): Promise<GlueStandin> {
  const dbs = new Map<string, Map<string, Table>>();
  let counts: Record<string, number> = {};
  let bodies: Record<string, Record<string, unknown>[]> = {};
  const faults: { op: string; left: number; error: { status: number; type: string; message?: string } }[] = [];
  let latency = 0;
  const opLatency = new Map<string, number>();

  const tableOf = (db: unknown, name: unknown): Table => {
    const d = dbs.get(String(db));
    if (!d) throw notFound(`Database ${String(db)} not found.`);
    const t = d.get(String(name));
    if (!t) throw notFound(`Table ${String(name)} not found.`);
    return t;
  };
  const partitionOut = (db: string, t: Table, p: StandinPartition) => ({
    Values: p.Values,
    DatabaseName: db,
    TableName: t.name,
    CreationTime: 1_700_000_000,
    StorageDescriptor: p.StorageDescriptor,
    Parameters: p.Parameters ?? {},
  });

  const ops: Record<string, (b: Record<string, unknown>) => unknown> = {
    GetTable(b) {
      const t = tableOf(b.DatabaseName, b.Name);
      return {
        Table: {
          Name: t.name,
          DatabaseName: String(b.DatabaseName),
          TableType: "EXTERNAL_TABLE",
          CreateTime: 1_700_000_000,
          StorageDescriptor: t.storageDescriptor,
          PartitionKeys: t.partitionKeys,
          Parameters: t.parameters,
        },
      };
    },
    GetPartitions(b) {
      const t = tableOf(b.DatabaseName, b.TableName);
      const max = b.MaxResults === undefined ? 1000 : Number(b.MaxResults);
      if (!Number.isInteger(max) || max < 1 || max > 1000) throw invalid(`MaxResults must be 1-1000, got ${String(b.MaxResults)}`);
      const seg = b.Segment as { SegmentNumber?: number; TotalSegments?: number } | undefined;
      const total = seg?.TotalSegments ?? 1;
      const number = seg?.SegmentNumber ?? 0;
      if (!Number.isInteger(total) || total < 1 || total > 10) throw invalid(`TotalSegments must be 1-10, got ${String(total)}`);
      if (!Number.isInteger(number) || number < 0 || number >= total)
        throw invalid(`SegmentNumber must be 0-${total - 1}, got ${String(number)}`);
      let filter: ((v: Record<string, string>) => boolean | null) | undefined;
      if (typeof b.Expression === "string" && b.Expression.trim() !== "") {
        if (Buffer.byteLength(b.Expression) > 2048) throw invalid("Expression is longer than 2048 bytes");
        try {
          filter = compileFilter(
            b.Expression,
            t.partitionKeys.map((k) => k.Name),
          );
        } catch (err) {
          throw invalid(`Unsupported expression: ${(err as Error).message}`);
        }
      }
      const names = t.partitionKeys.map((k) => k.Name);
      const all = [...t.partitions.values()].filter((_, i) => i % total === number);
      const matching = filter ? all.filter((p) => filter!(Object.fromEntries(names.map((n, i) => [n, p.Values[i]!]))) === true) : all;
      const from = typeof b.NextToken === "string" ? Number(Buffer.from(b.NextToken, "base64url").toString()) : 0;
      if (!Number.isInteger(from) || from < 0) throw invalid("bad NextToken");
      const page = matching.slice(from, from + max);
      const next = from + max < matching.length ? Buffer.from(String(from + max)).toString("base64url") : undefined;
      return { Partitions: page.map((p) => partitionOut(String(b.DatabaseName), t, p)), ...(next ? { NextToken: next } : {}) };
    },
    GetPartition(b) {
      const t = tableOf(b.DatabaseName, b.TableName);
      const p = t.partitions.get((b.PartitionValues as string[]).join("\u0000"));
      if (!p) throw notFound("Partition not found.");
      return { Partition: partitionOut(String(b.DatabaseName), t, p) };
    },
    BatchGetPartition(b) {
      const t = tableOf(b.DatabaseName, b.TableName);
      const list = (b.PartitionsToGet as { Values: string[] }[] | undefined) ?? [];
      if (list.length === 0 || list.length > 1000) throw invalid(`PartitionsToGet must hold 1-1000 entries, got ${list.length}`);
      const found = list.map((v) => t.partitions.get(v.Values.join("\u0000"))).filter((p) => p !== undefined);
      return { Partitions: found.map((p) => partitionOut(String(b.DatabaseName), t, p)), UnprocessedKeys: [] };
    },
    BatchCreatePartition(b) {
      const t = tableOf(b.DatabaseName, b.TableName);
      const list = (b.PartitionInputList as StandinPartition[] | undefined) ?? [];
      if (list.length === 0 || list.length > 100) throw invalid(`PartitionInputList must hold 1-100 partitions, got ${list.length}`);
      const errors: unknown[] = [];
      for (const p of list) {
        const k = p.Values.join("\u0000");
        if (p.Values.length !== t.partitionKeys.length) {
          errors.push({
            PartitionValues: p.Values,
            ErrorDetail: { ErrorCode: "InvalidInputException", ErrorMessage: "wrong number of values" },
          });
        } else if (t.partitions.has(k)) {
          errors.push({
            PartitionValues: p.Values,
            ErrorDetail: { ErrorCode: "AlreadyExistsException", ErrorMessage: "Partition already exists." },
          });
        } else {
          t.partitions.set(k, { Values: p.Values, StorageDescriptor: p.StorageDescriptor, Parameters: p.Parameters ?? {} });
        }
      }
      return errors.length ? { Errors: errors } : {};
    },
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const target = String(req.headers["x-amz-target"] ?? "");
      const op = target.startsWith("AWSGlue.") ? target.slice("AWSGlue.".length) : target;
      const answer = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        const send = () => {
          res.writeHead(status, { "Content-Type": "application/x-amz-json-1.1", "Content-Length": Buffer.byteLength(text) });
          res.end(text);
        };
        const wait = opLatency.get(op) ?? latency;
        if (wait > 0) setTimeout(send, wait);
        else send();
      };
      counts[op] = (counts[op] ?? 0) + 1;
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
      } catch {
        return answer(400, { __type: "SerializationException", Message: "body is not JSON" });
      }
      (bodies[op] ??= []).push(body);
      if (req.method !== "POST" || !String(req.headers["content-type"] ?? "").startsWith("application/x-amz-json-1.1"))
        return answer(400, { __type: "SerializationException", Message: "expected POST with application/x-amz-json-1.1" });
      const fault = faults.find((f) => f.op === op && f.left > 0);
      if (fault) {
        fault.left--;
        return answer(fault.error.status, { __type: fault.error.type, Message: fault.error.message ?? `injected ${fault.error.type}` });
      }
      const handler = ops[op];
      if (!handler)
        return answer(400, { __type: "UnknownOperationException", Message: `operation ${op} is not implemented by the stand-in` });
      try {
        answer(200, handler(body));
      } catch (err) {
        if (err instanceof GlueFault) return answer(err.status, { __type: err.type, Message: err.message });
        answer(500, { __type: "InternalServiceException", Message: (err as Error).message });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    putTable(database, table, t) {
      let d = dbs.get(database);
      if (!d) dbs.set(database, (d = new Map()));
      d.set(table, {
        name: table,
        storageDescriptor: {
          Columns: [{ Name: "payload", Type: "string" }],
          InputFormat: "org.apache.hadoop.mapred.TextInputFormat",
          OutputFormat: "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
          SerdeInfo: { SerializationLibrary: "org.openx.data.jsonserde.JsonSerDe", Parameters: {} },
          ...t.storageDescriptor,
          Location: t.location,
        },
        partitionKeys: (t.partitionKeys ?? []).map((k) => (typeof k === "string" ? { Name: k, Type: "string" } : k)),
        parameters: t.parameters ?? {},
        partitions: new Map(),
      });
    },
    putPartitions(database, table, parts) {
      const t = tableOf(database, table);
      for (const p of parts)
        t.partitions.set(p.values.join("\u0000"), {
          Values: p.values,
          StorageDescriptor: { ...t.storageDescriptor, Location: p.location },
          Parameters: p.parameters ?? {},
        });
    },
    partitions(database, table) {
      return [...tableOf(database, table).partitions.values()];
    },
    setParameters(database, table, parameters) {
      tableOf(database, table).parameters = parameters;
    },
    failNext(op, n, error = { status: 500, type: "InternalServiceException" }) {
      faults.push({ op, left: n, error });
    },
    calls: () => ({ ...counts }),
    requests: (op) => [...(bodies[op] ?? [])],
    setLatency(ms, op) {
      if (op === undefined) latency = ms;
      else opLatency.set(op, ms);
    },
    reset() {
      counts = {};
      bodies = {};
      faults.length = 0;
      opLatency.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
