#!/usr/bin/env bash
# Runs once, when the PostgreSQL data volume is first initialised (docker-entrypoint-initdb.d):
# creates batchd's read-model database and a role that owns it and nothing else. Temporal's own
# databases (persistence and visibility) are created by temporalio/auto-setup as POSTGRES_USER.
set -euo pipefail
: "${BATCHD_DB_USER:?BATCHD_DB_USER must be set}"
: "${BATCHD_DB_PASSWORD:?BATCHD_DB_PASSWORD must be set}"
: "${BATCHD_DB_NAME:?BATCHD_DB_NAME must be set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v user="$BATCHD_DB_USER" -v password="$BATCHD_DB_PASSWORD" -v db="$BATCHD_DB_NAME" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
