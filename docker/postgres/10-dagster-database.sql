-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d): the Dagster
-- instance's own database beside the platform's (POSTGRES_DB). Both keep migrations in alembic_version.
CREATE DATABASE dagster;
