/**
 * docs/api.md's reference is what the OpenAPI document gives (src/api/docs.ts): the reference
 * cannot drift from the routes. `TRANCHE_WRITE_API_DOCS=1` rewrites it.
 */
import { readFile, writeFile } from "node:fs/promises";
import * as prettier from "prettier";
import { describe, expect, it } from "vitest";
import { GENERATED_MARK, renderApiReference, type OpenApiDocument } from "../src/api/docs.js";
import { buildApi } from "../src/api/server.js";
import { log } from "../src/log.js";
import type { StepContext } from "../src/run/step-context.js";

const FILE = "docs/api.md";

describe("docs/api.md", () => {
  it("is generated from the OpenAPI document", async () => {
    // The document does not depend on Redis or the configuration: no connection needed.
    const app = await buildApi({ log, cfg: { jobs: {} } } as unknown as StepContext, { token: "docs" });
    const doc = app.swagger() as unknown as OpenApiDocument;
    await app.close();
    let text = await readFile(FILE, "utf8");
    const at = text.indexOf(GENERATED_MARK);
    expect(at, `${FILE} has lost its line ${GENERATED_MARK}`).toBeGreaterThan(0);
    const head = text.slice(0, at + GENERATED_MARK.length);
    const options = (await prettier.resolveConfig(FILE)) ?? {};
    const want = await prettier.format(`${head}\n\n${renderApiReference(doc)}`, { ...options, filepath: FILE });
    if (process.env.TRANCHE_WRITE_API_DOCS && text !== want) {
      await writeFile(FILE, want);
      text = want;
    }
    expect(text, `${FILE} differs from the OpenAPI document: run TRANCHE_WRITE_API_DOCS=1 npx vitest run test/api-docs.test.ts`).toBe(want);
    for (const path of Object.keys(doc.paths)) expect(text).toContain(`\`${path}\``);
  });
});
