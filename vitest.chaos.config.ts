import { defineConfig } from "vitest/config";

/** The fault-injection suite (`npm run test:chaos`): real processes, kills, a private Redis with AOF. */
export default defineConfig({
  test: {
    include: ["test/chaos/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    pool: "forks",
    // One scenario at a time: they measure and kill processes.
    fileParallelism: false,
    silent: "passed-only",
    env: {
      TRANCHE_LOG_LEVEL: process.env.TRANCHE_LOG_LEVEL ?? "warn",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    },
  },
});
