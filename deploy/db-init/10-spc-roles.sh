#!/usr/bin/env bash
# Roles of the shopfloor-spc database, run once by the timescale/timescaledb image when it
# initialises an empty data directory (mounted as /docker-entrypoint-initdb.d/100-spc-roles.sh,
# after the image's own 000_install_timescaledb.sh has created the extension in $POSTGRES_DB).
#
#   spc             the server's login: owns the schema, runs the migrations; not a superuser
#   grafana_reader  Grafana's login: SELECT on the server's tables, except the secrets
#                   (api_keys, webhook_subscriptions) and webhook/ingest bookkeeping
#
# Environment: POSTGRES_USER, POSTGRES_DB (the image's), SPC_DB_PASSWORD, GRAFANA_DB_PASSWORD.
# Safe to run again (roles and grants are created if missing, passwords reset). For a database
# that already exists, run it by hand: see deploy/README.md, "Existing databases".
set -euo pipefail

: "${SPC_DB_PASSWORD:?SPC_DB_PASSWORD is required}"
: "${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD is required}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
     --dbname "${POSTGRES_DB:-spc}" \
     -v spc_password="$SPC_DB_PASSWORD" -v grafana_password="$GRAFANA_DB_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE spc LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spc')
\gexec
SELECT 'CREATE ROLE grafana_reader LOGIN'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader')
\gexec
ALTER ROLE spc WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'spc_password';
ALTER ROLE grafana_reader WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'grafana_password';
-- The server reads shared_preload_libraries at start to see whether TimescaleDB is loaded;
-- PostgreSQL lets only superusers and this role read that setting.
GRANT pg_read_all_settings TO spc;
-- Grafana's queries never write and never run for long.
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';

SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO spc', current_database())
\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO grafana_reader', current_database())
\gexec
GRANT USAGE, CREATE ON SCHEMA public TO spc;
GRANT USAGE ON SCHEMA public TO grafana_reader;

-- Tables the server creates (now or in later migrations) are readable by Grafana...
ALTER DEFAULT PRIVILEGES FOR ROLE spc IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;

-- ...except these: key hashes, webhook secrets and delivery/ingest bookkeeping. The event trigger
-- takes the default grant back when the server's migration creates them.
CREATE OR REPLACE FUNCTION spc_hide_from_grafana() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    obj record;
BEGIN
    FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands()
               WHERE command_tag = 'CREATE TABLE' AND schema_name = 'public'
    LOOP
        IF obj.object_identity IN ('public.api_keys', 'public.webhook_subscriptions',
                                   'public.webhook_outbox', 'public.ingest_batches') THEN
            EXECUTE format('REVOKE ALL ON TABLE %s FROM grafana_reader', obj.object_identity);
        END IF;
    END LOOP;
END
$fn$;
DROP EVENT TRIGGER IF EXISTS spc_hide_from_grafana;
CREATE EVENT TRIGGER spc_hide_from_grafana ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION spc_hide_from_grafana();
DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'webhook_subscriptions', 'webhook_outbox',
                             'ingest_batches'] LOOP
        IF to_regclass('public.' || t) IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON TABLE public.%I FROM grafana_reader', t);
        END IF;
    END LOOP;
END
$do$;
SQL
echo "spc-roles: roles spc and grafana_reader ready in database ${POSTGRES_DB:-spc}"
