#!/bin/sh
# First start of the PostgreSQL container: one database and one role each for Prefect and
# Firebreak (passwords from deploy/.env through the container's environment).
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE prefect LOGIN PASSWORD '${PREFECT_DB_PASSWORD}';
CREATE DATABASE prefect OWNER prefect;
CREATE ROLE firebreak LOGIN PASSWORD '${FIREBREAK_DB_PASSWORD}';
CREATE DATABASE firebreak OWNER firebreak;
SQL
