"""The rules of the embedded backend (sources, schema changes, job inputs, credentials, webhooks, CDC), below http/ and above store/, connectors/ and sync/."""
