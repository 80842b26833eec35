/**
 * CI runs the whole suite on Node 20 and again on the current LTS (see .ci/run). A few long tests
 * measure what no Node version changes (the bytes of Redis keys, the count of S3 LIST requests, a
 * cron's ticks in Redis over 20 s); the second run sets TRANCHE_SECOND_NODE_RUN=1 and skips them, to
 * keep CI inside its 30 minutes. Everything that touches Node itself (worker threads, heap limits,
 * child processes, DuckDB, the planner's memory) runs on both.
 */
export const secondNodeRun = process.env.TRANCHE_SECOND_NODE_RUN === "1";
