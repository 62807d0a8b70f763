-- 1: the initial schema
CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    team_id INTEGER NOT NULL,
    source_type TEXT NOT NULL,
    prefix TEXT,
    description TEXT,
    created_via TEXT NOT NULL DEFAULT 'api',
    access_method TEXT NOT NULL DEFAULT 'warehouse',
    direct_query_enabled INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'Running',
    job_inputs TEXT NOT NULL DEFAULT '{}',          -- JSON, non-sensitive keys only
    job_inputs_secret BLOB,                          -- Vault(JSON of the sensitive keys)
    connection_metadata TEXT NOT NULL DEFAULT '{}',  -- JSON, e.g. {"engine": "duckdb"}
    revenue_enabled INTEGER NOT NULL DEFAULT 0,
    revenue_include_invoiceless INTEGER NOT NULL DEFAULT 1,
    webhook TEXT,                                    -- JSON {external_id, url, inputs:{non-secret}}
    webhook_secret BLOB,                             -- Vault(JSON {signing_secret, ...})
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
);
CREATE INDEX sources_team ON sources(team_id, deleted);

CREATE TABLE schemas (
    id TEXT PRIMARY KEY,
    team_id INTEGER NOT NULL,
    source_id TEXT NOT NULL REFERENCES sources(id),
    name TEXT NOT NULL,
    label TEXT,
    description TEXT,
    should_sync INTEGER NOT NULL DEFAULT 0,
    sync_type TEXT,                                  -- full_refresh|incremental|append|webhook|cdc|xmin
    incremental_field TEXT,
    incremental_field_type TEXT,
    sync_frequency_interval INTEGER,                 -- seconds; NULL = never
    sync_time_of_day TEXT,                           -- HH:MM:SS UTC or NULL
    primary_key_columns TEXT,                        -- JSON list or NULL
    cdc_table_mode TEXT NOT NULL DEFAULT 'consolidated',
    enabled_columns TEXT,                            -- JSON list or NULL (= all)
    available_columns TEXT NOT NULL DEFAULT '[]',    -- JSON [{name, data_type, is_nullable}]
    status TEXT,                                     -- Running|Paused|Failed|Completed|NULL
    latest_error TEXT,
    last_synced_at TEXT,
    sync_cursor TEXT,                                -- JSON: last max of incremental_field
    table_id TEXT,                                   -- set once data has landed
    table_name TEXT,                                 -- DuckDB table name
    table_row_count INTEGER,
    table_columns TEXT,                              -- JSON [{name, type}] as landed
    next_sync_at TEXT,                               -- when the scheduler should run it next
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
);
CREATE INDEX schemas_source ON schemas(source_id, deleted);
CREATE INDEX schemas_due ON schemas(deleted, should_sync, next_sync_at);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    team_id INTEGER NOT NULL,
    source_id TEXT NOT NULL REFERENCES sources(id),
    schema_id TEXT NOT NULL REFERENCES schemas(id),
    status TEXT NOT NULL,                            -- Running|Completed|Failed|Cancelled
    rows_synced INTEGER NOT NULL DEFAULT 0,
    latest_error TEXT,
    workflow_run_id TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_by TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX jobs_source ON jobs(source_id, created_at);
CREATE INDEX jobs_schema_status ON jobs(schema_id, status);

CREATE TABLE stored_credentials (
    id TEXT PRIMARY KEY,
    team_id INTEGER NOT NULL,
    source_type TEXT NOT NULL,
    payload_secret BLOB NOT NULL,                    -- Vault(JSON of the whole payload)
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE connect_tokens (
    token_hash TEXT PRIMARY KEY,                     -- sha256 of the one-time token in the URL
    team_id INTEGER NOT NULL,
    source_type TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    credential_id TEXT
);
