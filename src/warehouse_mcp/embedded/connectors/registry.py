"""Every source type the API knows: its wizard form (PostHog's camelCase shape) and, for the few the
embedded backend runs itself, the connector that does the work.

The forms are data. Postgres, MySQL, Stripe, Hubspot and BigQuery follow PostHog's own definitions
(api-semantics §5); the others are small plausible forms (an API key, or an OAuth connection) so that
the wizard, the connect page and secret handling work for every type. Nothing heavy is imported here:
a connector module (psycopg, pymysql, pyarrow) is imported only when `connector_for` asks for it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warehouse_mcp.embedded.connectors.base import Connector, SourceError
from warehouse_mcp.models import SourceType

SOURCE_TYPES: tuple[str, ...] = tuple(member.value for member in SourceType)


@dataclass(frozen=True)
class Capabilities:
    """What differs per runnable source type, beyond reading its tables. The rest of the backend asks
    these questions instead of naming source types."""

    cdc: bool = False  # change data capture (logical replication): cdc sync type, prerequisite checks
    xmin: bool = False  # the xmin sync type (Postgres' row version as the cursor)
    direct_query_engine: str | None = None  # `connection_metadata.engine` of a direct-query source
    webhook_receiver: bool = False  # the backend receives its events (sync type `webhook`)
    revenue_analytics: bool = False  # revenue analytics is on by default for a new source
    # Its tables are a fixed set of PostHog's names, distinct once lower-cased: their warehouse tables are
    # named as PostHog names them (`Charge` → `stripe_charge`), with no collision suffix.
    fixed_table_names: bool = False


@dataclass(frozen=True)
class Runnable:
    load: Callable[[], Connector]  # imports the connector's module: drivers are heavy, so only on use
    capabilities: Capabilities


def _postgres() -> Connector:
    from warehouse_mcp.embedded.connectors.postgres import PostgresConnector

    return PostgresConnector()


def _mysql() -> Connector:
    from warehouse_mcp.embedded.connectors.mysql import MySQLConnector

    return MySQLConnector()


def _stripe() -> Connector:
    from warehouse_mcp.embedded.connectors.stripe import StripeConnector

    return StripeConnector()


# The source types the embedded backend runs: one line each (docs/architecture.md, "Adding a source type").
_RUNNABLE: dict[str, Runnable] = {
    "Postgres": Runnable(_postgres, Capabilities(cdc=True, xmin=True, direct_query_engine="postgres")),
    "MySQL": Runnable(_mysql, Capabilities(direct_query_engine="mysql")),
    "Stripe": Runnable(
        _stripe, Capabilities(webhook_receiver=True, revenue_analytics=True, fixed_table_names=True)
    ),
}
RUNNABLE_TYPES: tuple[str, ...] = tuple(_RUNNABLE)
NO_CAPABILITIES = Capabilities()


def capabilities(source_type: str) -> Capabilities:
    """What the backend can do with `source_type` (nothing special for a type it does not run)."""
    runnable = _RUNNABLE.get(source_type)
    return runnable.capabilities if runnable is not None else NO_CAPABILITIES


def types_with(capability: Callable[[Capabilities], object]) -> tuple[str, ...]:
    """The runnable source types that have `capability`, e.g. `types_with(lambda c: c.cdc)`."""
    return tuple(name for name, runnable in _RUNNABLE.items() if capability(runnable.capabilities))


FIXED_TABLE_NAMES: frozenset[str] = frozenset(types_with(lambda can: can.fixed_table_names))


def names(source_types: tuple[str, ...]) -> str:
    """`Postgres`, `Postgres and MySQL`, `A, B and C`: for messages."""
    return (
        " and ".join(filter(None, [", ".join(source_types[:-1]), source_types[-1]])) if source_types else ""
    )


Field = dict[str, Any]


class UnsupportedSource(SourceError):
    """A source type the embedded backend cannot run (or does not know at all)."""


# --- field builders (PostHog's SourceField*Config shapes) -------------------------------------------


def _input(
    name: str,
    label: str,
    *,
    kind: str = "text",
    required: bool = True,
    placeholder: str = "",
    secret: bool = False,
    caption: str | None = None,
) -> Field:
    field: Field = {
        "name": name,
        "label": label,
        "type": kind,
        "required": required,
        "placeholder": placeholder,
        "secret": secret,
    }
    if caption:
        field["caption"] = caption
    return field


def _password(name: str, label: str, *, placeholder: str = "", required: bool = True) -> Field:
    return _input(name, label, kind="password", required=required, placeholder=placeholder, secret=True)


def _api_key(label: str = "API key", name: str = "api_key", placeholder: str = "") -> Field:
    return _password(name, label, placeholder=placeholder)


def _oauth(name: str, label: str, kind: str, *, required: bool = True) -> Field:
    return {"name": name, "label": label, "type": "oauth", "kind": kind, "required": required}


def _option(label: str, value: str, fields: list[Field] | None = None) -> dict[str, Any]:
    option: dict[str, Any] = {"label": label, "value": value}
    if fields is not None:
        option["fields"] = fields
    return option


def _select(
    name: str,
    label: str,
    options: list[dict[str, Any]],
    default: str,
    *,
    required: bool = True,
    converter: str | None = None,
) -> Field:
    field: Field = {
        "name": name,
        "label": label,
        "type": "select",
        "required": required,
        "defaultValue": default,
        "options": options,
    }
    if converter:
        field["converter"] = converter
    return field


def _switch_group(
    name: str, label: str, fields: list[Field], *, default: bool = False, caption: str | None = None
) -> Field:
    field: Field = {
        "name": name,
        "label": label,
        "type": "switch-group",
        "default": default,
        "fields": fields,
    }
    if caption:
        field["caption"] = caption
    return field


def _file_upload(name: str, label: str, keys: list[str]) -> Field:
    return {
        "name": name,
        "label": label,
        "type": "file-upload",
        "required": True,
        "fileFormat": {"format": ".json", "keys": keys},
    }


SSH_AUTH_METHODS = ["password", "keypair"]  # what the embedded backend's tunnels sign in with


def _ssh_tunnel() -> Field:
    # `authMethods` and `hostKeyFingerprint` are the embedded backend's additions to PostHog's field.
    return {
        "name": "ssh_tunnel",
        "label": "Use SSH tunnel?",
        "type": "ssh-tunnel",
        "authMethods": list(SSH_AUTH_METHODS),
        "hostKeyFingerprint": (
            "optional host_key_fingerprint (SHA256:..., as ssh-keygen -lf prints it) pins the SSH host's key; "
            "without it the key is trusted on first use and stored with the source"
        ),
    }


def _ca_certificate() -> Field:
    return _input(
        "ssl_ca",
        "CA certificate (PEM, optional)",
        kind="textarea",
        required=False,
        placeholder="-----BEGIN CERTIFICATE-----",
        caption="The certificate of the authority that signed the server's. Empty: the system's trusted authorities.",
    )


def _verify_options() -> list[dict[str, Any]]:
    return [
        _option("Require TLS and check the certificate", "verify-ca", [_ca_certificate()]),
        _option("Require TLS, check the certificate and the host name", "verify-full", [_ca_certificate()]),
    ]


def _postgres_tls() -> Field:
    return _select(
        "ssl_mode",
        "TLS (SSL) mode",
        [
            _option("Prefer TLS (use it when the server offers it)", "prefer"),
            _option("Require TLS (don't check the certificate)", "require"),
            *_verify_options(),
            _option("No TLS", "disable"),
        ],
        "prefer",
    )


def _mysql_tls() -> Field:
    return _select(
        "ssl_mode",
        "Certificate check",
        [_option("Encrypt only (don't check the certificate)", "require"), *_verify_options()],
        "require",
    )


def _region(default: str = "US", *regions: str) -> Field:
    values = regions or ("US", "EU")
    return _select("region", "Region", [_option(value, value) for value in values], default)


def _sql_fields(
    *,
    port: int,
    schema_placeholder: str,
    schema_required: bool = False,
    database_placeholder: str = "postgres",
    user_placeholder: str = "postgres",
) -> list[Field]:
    """The host/port/database/user/password/schema form that Postgres-compatible sources share."""
    return [
        _input("host", "Host", placeholder="db.example.com"),
        _input("port", "Port", kind="number", placeholder=str(port)),
        _input("database", "Database", placeholder=database_placeholder),
        _input("user", "User", placeholder=user_placeholder),
        _password("password", "Password"),
        _input("schema", "Schema", required=schema_required, placeholder=schema_placeholder),
        _ssh_tunnel(),
    ]


def _postgres_fields() -> list[Field]:
    fields = _sql_fields(port=5432, schema_placeholder="public")
    return [*fields[:-1], _postgres_tls(), fields[-1]]


# --- source definitions -------------------------------------------------------------------------------

DATABASES = "Databases"
ADVERTISING = "Advertising"
MARKETING = "Marketing & email"
CRM = "CRM"
SUPPORT = "Customer support"
PAYMENTS = "Payments & billing"
FINANCE = "Finance & accounting"
ANALYTICS = "Analytics"
ENGINEERING = "Engineering & monitoring"
PRODUCTIVITY = "Productivity"
HR = "HR & recruiting"
COMMUNICATION = "Communication"
ECOMMERCE = "E-commerce"


def _source(
    name: str,
    category: str,
    fields: list[Field],
    *,
    label: str | None = None,
    caption: str | None = None,
    featured: bool = False,
    keywords: list[str] | None = None,
    suggested: tuple[str, ...] = (),
    suggested_tooltip: str | None = None,
    webhook_fields: list[Field] | None = None,
    unreleased: bool = False,
    column_selection: bool = False,
) -> dict[str, Any]:
    slug = name.lower()
    shown = label or name
    return {
        "name": name,
        "caption": caption
        if caption is not None
        else f"Enter your {shown} credentials to automatically pull your {shown} data into the PostHog Data warehouse.",
        "category": category,
        "iconPath": f"/static/services/{slug}.png",
        "docsUrl": f"https://posthog.com/docs/cdp/sources/{slug}",
        "fields": fields,
        "featured": featured,
        "keywords": keywords or [],
        "label": shown,
        "suggestedTables": [{"table": table, "tooltip": suggested_tooltip} for table in suggested],
        "webhookFields": webhook_fields,
        "unreleasedSource": unreleased,
        "supportsColumnSelection": column_selection,
    }


def _api_key_source(
    name: str, category: str, *extra: Field, key: Field | None = None, label: str | None = None
) -> dict[str, Any]:
    return _source(name, category, [key or _api_key(), *extra], label=label)


def _oauth_source(
    name: str, category: str, kind: str, *extra: Field, label: str | None = None, field: str | None = None
) -> dict[str, Any]:
    shown = label or name
    oauth_field = _oauth(field or f"{kind.replace('-', '_')}_integration_id", f"{shown} account", kind)
    return _source(
        name,
        category,
        [oauth_field, *extra],
        label=shown,
        caption=f"Connect your {shown} account to automatically pull your {shown} data into the PostHog Data warehouse.",
    )


def _account_id(name: str = "account_id", label: str = "Account ID") -> Field:
    return _input(name, label)


_REVENUE_TOOLTIP = "Enable for the best Revenue analytics experience."

_FORMS_LIST: list[dict[str, Any]] = [
    _source(
        "Postgres",
        DATABASES,
        [
            _input(
                "connection_string",
                "Connection string (optional)",
                required=False,
                placeholder="postgresql://user:password@localhost:5432/database",
                secret=True,
            ),
            *_postgres_fields(),
        ],
        caption="Enter your Postgres credentials to automatically pull your Postgres data into the PostHog Data warehouse",
        featured=True,
        keywords=["postgresql"],
        column_selection=True,
    ),
    _source(
        "MySQL",
        DATABASES,
        [
            _input("host", "Host", placeholder="localhost"),
            _input("port", "Port", kind="number", placeholder="3306"),
            _input("database", "Database", placeholder="mysql"),
            _input("user", "User", placeholder="mysql"),
            _password("password", "Password", required=False),
            _input("schema", "Schema", placeholder="public"),
            _select(
                "using_ssl",
                "Use SSL?",
                [_option("Yes", "true", [_mysql_tls()]), _option("No", "false")],
                "true",
                converter="str_to_bool",
            ),
            _ssh_tunnel(),
        ],
        caption="Enter your MySQL/MariaDB credentials to automatically pull your MySQL data into the PostHog Data warehouse.",
        keywords=["mariadb"],
        column_selection=True,
    ),
    _source(
        "Stripe",
        PAYMENTS,
        [
            _select(
                "auth_method",
                "Authentication type",
                [
                    _option(
                        "Restricted API key",
                        "api_key",
                        [_password("stripe_secret_key", "API key", placeholder="rk_live_...")],
                    ),
                    _option(
                        "OAuth connection",
                        "oauth",
                        [_oauth("stripe_integration_id", "Stripe account", "stripe", required=False)],
                    ),
                ],
                "api_key",
            ),
            _input("stripe_account_id", "Account id", required=False, placeholder="stripe_account_id"),
        ],
        caption="Connect your Stripe account to automatically sync your Stripe data into PostHog. "
        "Use a restricted API key (rk_live_...) with read access, or an OAuth connection.",
        featured=True,
        suggested=("Customer", "Charge", "Invoice", "Subscription", "Product"),
        suggested_tooltip=_REVENUE_TOOLTIP,
        webhook_fields=[_password("signing_secret", "Signing secret", placeholder="whsec_...")],
    ),
    _source(
        "Hubspot",
        CRM,
        [_oauth("hubspot_integration_id", "Hubspot account", "hubspot")],
        caption="Connect your Hubspot account to automatically pull your Hubspot data into the PostHog Data warehouse.",
        featured=True,
    ),
    _source(
        "BigQuery",
        DATABASES,
        [
            _file_upload(
                "key_file",
                "Google Cloud JSON key file",
                ["project_id", "private_key", "private_key_id", "client_email", "token_uri"],
            ),
            _input("dataset_id", "Dataset ID"),
            _switch_group(
                "temporary-dataset",
                "Use a different dataset for the temporary tables?",
                [_input("temporary_dataset_id", "Dataset ID for temporary tables")],
                caption="Temporary tables are created and deleted while querying; a separate dataset can limit "
                "the service account's permissions.",
            ),
            _switch_group(
                "dataset_project",
                "Use a different project for the dataset than your service account project?",
                [_input("dataset_project_id", "Project ID for dataset")],
            ),
        ],
        caption="",
        keywords=["google bigquery", "gcp"],
    ),
    _source(
        "Supabase",
        DATABASES,
        _sql_fields(port=5432, schema_placeholder="public"),
        keywords=["postgres", "postgresql"],
        column_selection=True,
    ),
    _source(
        "Redshift",
        DATABASES,
        _sql_fields(
            port=5439, schema_placeholder="public", database_placeholder="dev", user_placeholder="awsuser"
        ),
        label="Amazon Redshift",
        keywords=["aws"],
        column_selection=True,
    ),
    _source(
        "MSSQL",
        DATABASES,
        _sql_fields(
            port=1433, schema_placeholder="dbo", database_placeholder="master", user_placeholder="sa"
        ),
        label="Microsoft SQL Server",
        keywords=["sql server", "azure sql"],
        column_selection=True,
    ),
    _source(
        "MongoDB",
        DATABASES,
        [
            _input(
                "connection_string",
                "Connection string",
                kind="password",
                placeholder="mongodb+srv://user:password@cluster.example.com/database",
                secret=True,
            )
        ],
        keywords=["mongo"],
    ),
    _source(
        "Snowflake",
        DATABASES,
        [
            _input("account_id", "Account ID", placeholder="xy12345.us-east-1"),
            _input("database", "Database"),
            _input("warehouse", "Warehouse"),
            _select(
                "auth_type",
                "Authentication type",
                [
                    _option(
                        "Password",
                        "password",
                        [_input("user", "Username"), _password("password", "Password")],
                    ),
                    _option(
                        "Key pair",
                        "keypair",
                        [
                            _input("user", "Username"),
                            _input("private_key", "Private key", kind="textarea", secret=True),
                            _password("passphrase", "Passphrase", required=False),
                        ],
                    ),
                ],
                "password",
            ),
            _input("role", "Role (optional)", required=False),
            _input("schema", "Schema", placeholder="public"),
        ],
        column_selection=True,
    ),
    _source(
        "TemporalIO",
        ENGINEERING,
        [
            _input("host", "Host"),
            _input("port", "Port", kind="number", placeholder="7233"),
            _input("namespace", "Namespace"),
            _password("encryption_key", "Encryption key", required=False),
            _input("server_client_root_ca", "Server client root CA", kind="textarea", secret=True),
            _input("client_certificate", "Client certificate", kind="textarea", secret=True),
            _input("client_private_key", "Client private key", kind="textarea", secret=True),
        ],
        label="Temporal.io",
    ),
    _source(
        "GoogleSheets",
        PRODUCTIVITY,
        [
            _input(
                "spreadsheet_url",
                "Spreadsheet URL",
                kind="url",
                placeholder="https://docs.google.com/spreadsheets/d/...",
            )
        ],
        label="Google Sheets",
    ),
    _source(
        "Custom",
        ENGINEERING,
        [_input("base_url", "Base URL", kind="url"), _password("api_key", "API key", required=False)],
        caption="A custom source, run by a PostHog backend.",
        unreleased=True,
    ),
    # OAuth-based SaaS sources.
    _oauth_source("Salesforce", CRM, "salesforce"),
    _oauth_source(
        "GoogleAds", ADVERTISING, "google-ads", _account_id("customer_id", "Customer ID"), label="Google Ads"
    ),
    _oauth_source(
        "GoogleSearchConsole",
        ANALYTICS,
        "google-search-console",
        _input("site_url", "Site URL", kind="url"),
        label="Google Search Console",
    ),
    _oauth_source("MetaAds", ADVERTISING, "meta-ads", _account_id(), label="Meta Ads"),
    _oauth_source("LinkedinAds", ADVERTISING, "linkedin-ads", _account_id(), label="LinkedIn Ads"),
    _oauth_source("RedditAds", ADVERTISING, "reddit-ads", _account_id(), label="Reddit Ads"),
    _oauth_source(
        "TikTokAds",
        ADVERTISING,
        "tiktok-ads",
        _account_id("advertiser_id", "Advertiser ID"),
        label="TikTok Ads",
    ),
    _oauth_source("BingAds", ADVERTISING, "bing-ads", _account_id(), label="Microsoft Ads"),
    _oauth_source(
        "SnapchatAds",
        ADVERTISING,
        "snapchat-ads",
        _account_id("ad_account_id", "Ad account ID"),
        label="Snapchat Ads",
    ),
    _oauth_source("Intercom", SUPPORT, "intercom"),
    # API-key SaaS sources.
    _api_key_source("Ashby", HR),
    _api_key_source(
        "CustomerIO", MARKETING, _region(), key=_api_key("App API key", "app_api_key"), label="Customer.io"
    ),
    _api_key_source(
        "Github",
        ENGINEERING,
        _input("repository", "Repository", placeholder="owner/repo"),
        key=_password("personal_access_token", "Personal access token", placeholder="github_pat_..."),
        label="GitHub",
    ),
    _api_key_source(
        "Zendesk",
        SUPPORT,
        _input("subdomain", "Zendesk subdomain", placeholder="mycompany"),
        _input("email_address", "Email address", kind="email"),
    ),
    _api_key_source("Vitally", CRM, _region(), key=_password("secret_token", "Secret token")),
    _api_key_source("Chargebee", PAYMENTS, _input("site_name", "Site name", placeholder="mycompany")),
    _api_key_source(
        "Clerk", ENGINEERING, key=_password("clerk_secret_key", "Secret key", placeholder="sk_live_...")
    ),
    _api_key_source("DoIt", FINANCE),
    _api_key_source("Klaviyo", MARKETING, key=_api_key(placeholder="pk_...")),
    _api_key_source("Mailchimp", MARKETING),
    _api_key_source(
        "Braze",
        MARKETING,
        _input("base_url", "REST endpoint", kind="url", placeholder="https://rest.iad-01.braze.com"),
    ),
    _api_key_source("Mailjet", MARKETING, _password("api_secret", "API secret key")),
    _api_key_source(
        "Polar",
        PAYMENTS,
        key=_password("access_token", "Organization access token", placeholder="polar_oat_..."),
    ),
    _api_key_source(
        "RevenueCat",
        PAYMENTS,
        _input("project_id", "Project ID"),
        key=_api_key("Secret API key", placeholder="sk_..."),
    ),
    _api_key_source(
        "Shopify",
        ECOMMERCE,
        _input("shopify_store_id", "Store ID", placeholder="my-store"),
        key=_password("shopify_access_token", "Admin API access token", placeholder="shpat_..."),
    ),
    _api_key_source("Attio", CRM),
    _api_key_source("Linear", PRODUCTIVITY, key=_api_key(placeholder="lin_api_...")),
    _api_key_source("Amplitude", ANALYTICS, _password("secret_key", "Secret key"), _region()),
    _api_key_source(
        "Mixpanel",
        ANALYTICS,
        _input("project_id", "Project ID"),
        _input("username", "Service account username"),
        _region(),
        key=_password("secret", "Service account secret"),
    ),
    _api_key_source(
        "Jira",
        PRODUCTIVITY,
        _input("domain", "Jira domain", placeholder="mycompany.atlassian.net"),
        _input("email", "Email", kind="email"),
        key=_password("api_token", "API token"),
    ),
]

_DEFINED: dict[str, dict[str, Any]] = {form["name"]: form for form in _FORMS_LIST}
# Wizard order follows the SourceType enum; a type added there without a form here gets an API-key form.
_FORMS: dict[str, dict[str, Any]] = {
    source_type: _DEFINED.get(source_type) or _api_key_source(source_type, ENGINEERING)
    for source_type in SOURCE_TYPES
}


def wizard() -> dict[str, dict[str, Any]]:
    """Every source type's form definition, keyed by source type (a fresh copy: callers may change it)."""
    return copy.deepcopy(_FORMS)


def form(source_type: str) -> dict[str, Any] | None:
    definition = _FORMS.get(source_type)
    return copy.deepcopy(definition) if definition is not None else None


def form_ref(source_type: str) -> dict[str, Any] | None:
    """The shared form definition, not copied: read it, never change it."""
    return _FORMS.get(source_type)


def is_known(source_type: str) -> bool:
    return source_type in _FORMS


def is_runnable(source_type: str) -> bool:
    return source_type in RUNNABLE_TYPES


def connector_for(source_type: str) -> Connector:
    """The embedded connector for `source_type`; UnsupportedSource when this backend cannot run it."""
    if not is_known(source_type):
        raise UnsupportedSource(f"Unknown source type '{source_type}'")
    if source_type not in _RUNNABLE:
        runnable = ", ".join(RUNNABLE_TYPES)
        raise UnsupportedSource(
            f"The embedded backend runs only {runnable} sources; '{source_type}' needs a PostHog backend, "
            "which runs every source type (set POSTHOG_PERSONAL_API_KEY to use one)."
        )
    return _RUNNABLE[source_type].load()
