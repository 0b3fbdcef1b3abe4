-- FerretDB v1 keeps the shipping service's documents in PostgreSQL and logs in to it with
-- the MongoDB client's own user and password (SASL PLAIN). So the shipping service's
-- identity is a PostgreSQL role that owns FerretDB's database and nothing else.
-- Run by postgres-init on every `up` (idempotent); psql passes :'shipping_password' from
-- the compose secret, so no password appears in this file.
\set ON_ERROR_STOP on

SELECT 'CREATE ROLE shipping LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shipping') \gexec
ALTER ROLE shipping WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'shipping_password';

SELECT 'CREATE DATABASE ferretdb OWNER shipping'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ferretdb') \gexec
REVOKE ALL ON DATABASE ferretdb FROM PUBLIC;
GRANT ALL ON DATABASE ferretdb TO shipping;
