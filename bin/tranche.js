#!/usr/bin/env node
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write("tranche is not built: run 'npm ci' (or 'npm run build') in the checkout first\n");
  process.exit(1);
}
// The AWS SDK's eight-line notice that it will need Node 22 from 2027 would break the one-line
// error and JSON log formats; tranche's README says which Node versions it supports.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
await import(main.href);
