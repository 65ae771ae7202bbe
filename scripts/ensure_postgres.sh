#!/bin/sh
# Prints the bin directory of a PostgreSQL server (/usr/lib/postgresql/<major>/bin), installing Debian's
# `postgresql` package first if there is none. The full-stack PostgreSQL test calls it (so does
# `make postgres`); it starts its own cluster from these binaries, so the package's own cluster is not wanted:
# postgresql-common is installed first and told not to create one.
# Exit status 1, with the reason on stderr, when PostgreSQL is not there and cannot be installed.
set -eu

newest_bin() {
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; fi
    done | sort -V | tail -n 1
}

bin=$(newest_bin)
if [ -z "$bin" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure_postgres: no PostgreSQL server in /usr/lib/postgresql/*/bin, and installing it (apt-get install postgresql) needs root" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure_postgres: no PostgreSQL server in /usr/lib/postgresql/*/bin, and no apt-get to install Debian's postgresql package" >&2
        exit 1
    fi
    echo "ensure_postgres: installing Debian's postgresql package (apt-get update && apt-get install -y postgresql)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-common; } >&2; then
        echo "ensure_postgres: apt-get could not install postgresql-common (see above)" >&2
        exit 1
    fi
    conf=/etc/postgresql-common/createcluster.conf
    if [ -f "$conf" ]; then
        sed -i 's/^#* *create_main_cluster *=.*/create_main_cluster = false/' "$conf"
    fi
    if ! apt-get install -y -qq --no-install-recommends postgresql >&2; then
        echo "ensure_postgres: apt-get could not install postgresql (see above)" >&2
        exit 1
    fi
    bin=$(newest_bin)
    if [ -z "$bin" ]; then
        echo "ensure_postgres: postgresql was installed but /usr/lib/postgresql/*/bin/initdb is missing" >&2
        exit 1
    fi
fi
echo "$bin"
