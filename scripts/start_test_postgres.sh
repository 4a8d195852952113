#!/usr/bin/env bash
# Start a PostgreSQL + PostGIS server from Debian's packages for the pgstac test and print the
# DSN it can use (the only thing on stdout). Installs the packages when they are missing.
# Needs root (apt-get, pg_ctlcluster); prints why on stderr and exits non-zero otherwise.
# With --no-install it only starts what is already installed (the test suite uses that).
set -euo pipefail

install() {
    if [ "${1:-}" = "--no-install" ]; then
        echo "not installed: $2 (.ci/run installs it: bash scripts/start_test_postgres.sh)" >&2
        exit 1
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
}
MODE=${1:-}
if [ "$(id -u)" != 0 ]; then
    echo "needs root to start Debian's PostgreSQL cluster (pg_ctlcluster, runuser)" >&2
    exit 1
fi

ROLE=fullmaja DB=fullmaja_test PASSWORD=fullmaja

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    install "$MODE" postgresql
fi
VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)
if [ ! -e "/usr/share/postgresql/$VERSION/extension/postgis.control" ]; then
    install "$MODE" "postgresql-$VERSION-postgis-3"
fi

CLUSTER=$(pg_lsclusters --no-header | awk -v v="$VERSION" '$1 == v {print $2; exit}')
if [ -z "$CLUSTER" ]; then
    CLUSTER=main
    pg_createcluster "$VERSION" "$CLUSTER" >&2
fi
if ! pg_lsclusters --no-header | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c' | grep -q online; then
    pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
PORT=$(pg_lsclusters --no-header | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $3}')

psql_admin() { runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qAt "$@"; }
# pgstac's migrations create extensions (postgis, btree_gist, unaccent): the role owns its test
# database and is a superuser of this throwaway server only.
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $ROLE LOGIN SUPERUSER PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi
echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
