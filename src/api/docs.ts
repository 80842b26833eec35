/**
 * The API reference of docs/api.md, rendered from the OpenAPI document (`/v1/openapi.json`):
 * routes with their parameters, bodies and answers, then the shared schemas field by field.
 * `test/api-docs.test.ts` fails when docs/api.md differs from it (and rewrites it with
 * TRANCHE_WRITE_API_DOCS=1), so the reference cannot drift from the routes.
 */

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minimum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  anyOf?: Schema[];
  description?: string;
};

interface Operation {
  tags?: string[];
  summary?: string;
  description?: string;
  security?: unknown[];
  parameters?: { name: string; in: string; required?: boolean; schema?: Schema; description?: string }[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>;
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
  tags?: { name: string; description?: string }[];
  security?: unknown[];
}

/** Marks where the generated reference starts in docs/api.md; everything after it is generated. */
export const GENERATED_MARK =
  "<!-- Generated from /v1/openapi.json by src/api/docs.ts: do not edit below this line (test/api-docs.test.ts checks it). -->";

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n+/g, " ");
const anchor = (name: string) => `schema-${name.toLowerCase()}`;
const refName = (ref: string) => ref.slice(ref.lastIndexOf("/") + 1);

/** A schema's type in a few words: `integer`, `string \| null`, `RunRow[]`, `"a" \| "b"`, a link for shared schemas. */
function typeOf(s: Schema | undefined): string {
  if (!s) return "any";
  if (s.$ref) return `[${refName(s.$ref)}](#${anchor(refName(s.$ref))})`;
  if (s.anyOf) return s.anyOf.map(typeOf).join(" | ");
  if (s.enum) return s.enum.map((v) => (v === null ? "null" : `\`${JSON.stringify(v)}\``)).join(" | ");
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  const one = (t: string): string => {
    if (t === "array") return `${typeOf(s.items).replace(/ \| /g, " or ")}[]`;
    if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object")
      return `map of ${typeOf(s.additionalProperties)}`;
    if (t === "string" && s.format) return `string (${s.format})`;
    return t;
  };
  return types.length ? types.map(one).join(" | ") : "any";
}

/** Constraints worth saying: a pattern, a minimum, lengths. */
function constraints(s: Schema): string {
  const c: string[] = [];
  if (s.pattern) c.push(`pattern \`${s.pattern}\``);
  if (s.minimum !== undefined) c.push(`≥ ${s.minimum}`);
  if (s.minLength !== undefined && s.minLength > 1) c.push(`at least ${s.minLength} characters`);
  if (s.maxLength !== undefined) c.push(`at most ${s.maxLength} characters`);
  if (s.maxItems !== undefined) c.push(`at most ${s.maxItems} items`);
  if (s.items?.pattern) c.push(`items match \`${s.items.pattern}\``);
  return c.length ? ` (${c.join("; ")})` : "";
}

/** Rows of an object's fields, nested objects flattened as `parent.child`. */
function fieldRows(s: Schema, prefix = ""): string[] {
  const rows: string[] = [];
  const required = new Set(s.required ?? []);
  for (const [name, p] of Object.entries(s.properties ?? {})) {
    const nested = p.properties && !p.$ref;
    rows.push(
      `| \`${prefix}${name}\` | ${cell(typeOf(p))} | ${required.has(name) ? "yes" : "no"} | ${cell((p.description ?? "") + constraints(p))} |`,
    );
    if (nested) rows.push(...fieldRows(p, `${prefix}${name}.`));
    else if (p.type === "array" && p.items?.properties) rows.push(...fieldRows(p.items, `${prefix}${name}[].`));
  }
  return rows;
}

function fieldTable(s: Schema): string {
  const rows = fieldRows(s);
  if (!rows.length) return `${s.description ? `${s.description}: ` : ""}${s.additionalProperties ? "any JSON object" : "no fields"}.\n`;
  return ["| Field | Type | Required | Description |", "| --- | --- | --- | --- |", ...rows].join("\n") + "\n";
}

/** The reference, as Markdown (not yet formatted by prettier). */
export function renderApiReference(doc: OpenApiDocument): string {
  const out: string[] = [];
  const ops: { method: string; path: string; op: Operation }[] = [];
  for (const [path, byMethod] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(byMethod)) ops.push({ method: method.toUpperCase(), path, op });
  const isPublic = (op: Operation) => Array.isArray(op.security) && op.security.length === 0;
  const tagOf = (op: Operation) => op.tags?.[0] ?? "other";
  const opAnchor = (method: string, path: string) =>
    `${method}-${path}`
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/-+$/, "");

  out.push("## Routes\n");
  out.push("| Method | Path | Auth | What |", "| --- | --- | --- | --- |");
  for (const t of doc.tags ?? [])
    for (const { method, path, op } of ops.filter((o) => tagOf(o.op) === t.name))
      out.push(
        `| ${method} | [\`${path}\`](#${opAnchor(method, path)}) | ${isPublic(op) ? "none" : "bearer"} | ${cell(op.summary ?? "")} |`,
      );
  out.push("");

  for (const t of doc.tags ?? []) {
    const mine = ops.filter((o) => tagOf(o.op) === t.name);
    if (!mine.length) continue;
    out.push(`## ${t.name[0]!.toUpperCase()}${t.name.slice(1)}\n`);
    if (t.description) out.push(`${t.description}.\n`);
    for (const { method, path, op } of mine) {
      out.push(`<a id="${opAnchor(method, path)}"></a>\n`);
      out.push(`### \`${method} ${path}\`\n`);
      out.push(`**${op.summary ?? ""}.** ${op.description ?? ""}\n`);
      out.push(isPublic(op) ? "Authentication: none.\n" : "Authentication: `Authorization: Bearer <TRANCHE_API_TOKEN>`.\n");
      const params = op.parameters ?? [];
      if (params.length) {
        out.push("| Parameter | In | Type | Required | Description |", "| --- | --- | --- | --- | --- |");
        for (const p of params)
          out.push(
            `| \`${p.name}\` | ${p.in === "query" ? "query" : p.in} | ${cell(typeOf(p.schema))} | ${p.required ? "yes" : "no"} | ${cell((p.description ?? p.schema?.description ?? "") + (p.schema ? constraints(p.schema) : ""))} |`,
          );
        out.push("");
      }
      const body = op.requestBody?.content?.["application/json"]?.schema;
      if (body) {
        out.push(`Request body (JSON${op.requestBody?.required ? "" : ", optional"}):\n`);
        out.push(body.$ref ? `${typeOf(body)}\n` : fieldTable(body));
      }
      out.push("| Status | Body | When |", "| --- | --- | --- |");
      for (const [status, r] of Object.entries(op.responses ?? {})) {
        const content = r.content ?? {};
        const [type, media] = Object.entries(content)[0] ?? [];
        const shown = media?.schema ? (type === "application/json" ? typeOf(media.schema) : `${type}`) : "none";
        out.push(`| ${status} | ${cell(shown)} | ${cell(r.description ?? "")} |`);
      }
      out.push("");
      // An inline JSON object answer (not a shared schema): its fields.
      for (const [status, r] of Object.entries(op.responses ?? {})) {
        const s = r.content?.["application/json"]?.schema;
        if (s && !s.$ref && s.properties) out.push(`${status} body:\n`, fieldTable(s));
      }
    }
  }

  out.push("## Schemas\n");
  for (const [name, s] of Object.entries(doc.components?.schemas ?? {})) {
    out.push(`<a id="${anchor(name)}"></a>\n`);
    out.push(`### ${name}\n`);
    if (s.description) out.push(`${s.description}.\n`);
    out.push(fieldTable(s));
  }
  return out.join("\n").replace(/\n{3,}/g, "\n\n");
}
