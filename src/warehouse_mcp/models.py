"""The API's enumerations and value mappings (docs/api-semantics.md), shared by the tools and the embedded backend."""

from __future__ import annotations

from enum import StrEnum


class SourceType(StrEnum):
    """Source type values PostHog defines (value == label), as listed in docs/api-semantics.md."""

    Ashby = "Ashby"
    Supabase = "Supabase"
    CustomerIO = "CustomerIO"
    Github = "Github"
    Stripe = "Stripe"
    Hubspot = "Hubspot"
    Postgres = "Postgres"
    Zendesk = "Zendesk"
    Snowflake = "Snowflake"
    Salesforce = "Salesforce"
    MySQL = "MySQL"
    MongoDB = "MongoDB"
    MSSQL = "MSSQL"
    Vitally = "Vitally"
    BigQuery = "BigQuery"
    Chargebee = "Chargebee"
    Clerk = "Clerk"
    GoogleAds = "GoogleAds"
    GoogleSearchConsole = "GoogleSearchConsole"
    TemporalIO = "TemporalIO"
    DoIt = "DoIt"
    GoogleSheets = "GoogleSheets"
    MetaAds = "MetaAds"
    Klaviyo = "Klaviyo"
    Mailchimp = "Mailchimp"
    Braze = "Braze"
    Mailjet = "Mailjet"
    Redshift = "Redshift"
    Polar = "Polar"
    RevenueCat = "RevenueCat"
    LinkedinAds = "LinkedinAds"
    RedditAds = "RedditAds"
    TikTokAds = "TikTokAds"
    BingAds = "BingAds"
    Shopify = "Shopify"
    Attio = "Attio"
    SnapchatAds = "SnapchatAds"
    Linear = "Linear"
    Intercom = "Intercom"
    Amplitude = "Amplitude"
    Mixpanel = "Mixpanel"
    Jira = "Jira"
    Custom = "Custom"


class SyncType(StrEnum):
    full_refresh = "full_refresh"
    incremental = "incremental"
    append = "append"
    webhook = "webhook"
    cdc = "cdc"
    xmin = "xmin"


class SyncFrequency(StrEnum):
    never = "never"
    one_min = "1min"
    five_min = "5min"
    fifteen_min = "15min"
    thirty_min = "30min"
    one_hour = "1hour"
    six_hour = "6hour"
    twelve_hour = "12hour"
    day = "24hour"
    week = "7day"
    month = "30day"


# sync_frequency <-> interval in seconds (None = never). 6hour is the default for new schemas.
FREQUENCY_SECONDS: dict[str, int | None] = {
    "never": None,
    "1min": 60,
    "5min": 5 * 60,
    "15min": 15 * 60,
    "30min": 30 * 60,
    "1hour": 3600,
    "6hour": 6 * 3600,
    "12hour": 12 * 3600,
    "24hour": 24 * 3600,
    "7day": 7 * 24 * 3600,
    "30day": 30 * 24 * 3600,
}
DEFAULT_FREQUENCY = "6hour"


def frequency_name(seconds: int | None) -> str:
    for name, value in FREQUENCY_SECONDS.items():
        if value == seconds:
            return name
    return DEFAULT_FREQUENCY


class IncrementalFieldType(StrEnum):
    integer = "integer"
    numeric = "numeric"
    datetime = "datetime"
    date = "date"
    timestamp = "timestamp"
    objectid = "objectid"
    xid = "xid"


class CdcTableMode(StrEnum):
    consolidated = "consolidated"
    cdc_only = "cdc_only"
    both = "both"


class AccessMethod(StrEnum):
    warehouse = "warehouse"
    direct = "direct"


class CreatedVia(StrEnum):
    web = "web"
    api = "api"
    mcp = "mcp"


class CdcManagementMode(StrEnum):
    posthog = "posthog"
    self_managed = "self_managed"


class SchemaStatus(StrEnum):
    Running = "Running"
    Paused = "Paused"
    Failed = "Failed"
    Completed = "Completed"
    BillingLimitReached = "Billing limits"
    BillingLimitTooLow = "Billing limits too low"


class JobStatus(StrEnum):
    Running = "Running"
    Failed = "Failed"
    Completed = "Completed"
    Cancelled = "Cancelled"
    BillingLimitReached = "Billing limits"
    BillingLimitTooLow = "Billing limit too low"


# Incremental cursor field preference used by setup's defaults (api-semantics.md §4 setup).
INCREMENTAL_FIELD_PREFERENCE = (
    "updated_at",
    "updatedat",
    "modified_at",
    "modifiedat",
    "last_modified",
    "updated",
    "modified",
    "created_at",
    "createdat",
    "created",
)
