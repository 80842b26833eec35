# syntax=docker/dockerfile:1
#
# tranche image: `docker build -t tranche .`
#   docker run --rm tranche --help
#   docker run --rm -v $PWD/tranche.yaml:/etc/tranche/tranche.yaml tranche worker
#   docker run --rm -v $PWD/tranche.yaml:/etc/tranche/tranche.yaml tranche run events --json
# The default command is `worker`; the config is read from $TRANCHE_CONFIG (/etc/tranche/tranche.yaml).

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: install everything, compile TypeScript (npm ci runs `prepare`), drop dev dependencies
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
COPY workers ./workers
COPY examples ./examples
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund \
    && test -f dist/src/cli/main.js && test -f dist/workers/thread.js \
    && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: compiled code and production dependencies only, non-root
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    TRANCHE_CONFIG=/etc/tranche/tranche.yaml
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/bin ./bin
COPY --from=build /app/dist ./dist
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/examples ./examples
RUN mkdir -p /etc/tranche && chown node:node /etc/tranche
USER node
# /metrics and /healthz of `tranche worker` (and of `tranche run --metrics-port 9464`).
EXPOSE 9464
# No HEALTHCHECK here: the same image runs `tranche run`, which serves no /healthz unless asked.
# docker-compose.yml and the Kubernetes manifests probe /healthz of workers themselves.
# Note: node runs as PID 1; both `tranche worker` (finishes its batches, then exits) and
# `tranche run` (finishes the current run, starts no other) handle SIGTERM themselves.
ENTRYPOINT ["node", "/app/bin/tranche.js"]
CMD ["worker"]
