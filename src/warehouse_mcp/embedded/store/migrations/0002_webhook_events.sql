-- 2: webhook events already applied (stripe_webhooks.py): replays are ignored, stale events skipped
CREATE TABLE webhook_events (
    source_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    object_id TEXT,
    event_created INTEGER,                           -- unix time the event was created
    received_at TEXT NOT NULL,
    PRIMARY KEY (source_id, event_id)
);
CREATE INDEX webhook_events_object ON webhook_events(source_id, object_id, event_created);
CREATE INDEX webhook_events_received ON webhook_events(received_at);
