import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The fault-injection suite runs on its own: `npm run test:chaos`.
    exclude: ["test/chaos/**", "node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
    // Log lines of a test are shown only when it fails.
    silent: "passed-only",
    env: {
      TRANCHE_LOG_LEVEL: process.env.TRANCHE_LOG_LEVEL ?? "info",
      // The SDK's notice that it will need Node 22 from 2027 is not a test result.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    },
  },
});
