# batchd: one image for every role (control worker, API, fake-host agents, a real host's agent).
#   docker build -t batchd .
#   docker run --rm -e TEMPORAL_ADDRESS=temporal.example:7233 batchd worker,api
#   docker run --rm -e TEMPORAL_ADDRESS=... batchd agent --pool accounts/default/nodePools/gpu --host gpu-1
# Everything is configured through environment variables (src/config.ts). The image expects a
# Temporal cluster at TEMPORAL_ADDRESS; it carries no Temporal CLI for the embedded dev server.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: dev dependencies, TypeScript, the workflow bundle; then drop dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Toolchain for the rank launcher (native/rank-launch.c, compiled by `npm run build`), and for a
# native module that must compile from source when no prebuilt binary fits (better-sqlite3).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make gcc g++ libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY scripts ./scripts
COPY native ./native
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime: Node, plus what ranks run with (python3, bash, procps for process-group handling) ----
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 bash procps ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown node:node /data
WORKDIR /app
ENV NODE_ENV=production \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8080
COPY --from=build --chown=root:root /app/package.json ./package.json
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
# The code is root-owned and read-only to the service; only DATA_DIR is writable.
USER node
VOLUME ["/data"]
EXPOSE 8080
# The preload leaves the SDK's stack-trace hook out of the workflow threads (src/temporal/workflow-threads.ts).
ENTRYPOINT ["node", "--require", "./dist/src/temporal/workflow-threads.js", "dist/src/main.js"]
