"""The replication slot and publication of a CDC source: the names its config gives, else PostHog's
defaults derived from the source id. Light on purpose: the API names them without loading the sync engine."""

from __future__ import annotations

import uuid
from typing import Any


def slot_and_publication(source_id: str, config: dict[str, Any]) -> tuple[str, str, bool]:
    """(slot, publication, managed by this backend) of a CDC source's config."""
    hex12 = uuid.UUID(source_id).hex[:12]
    return (
        str(config.get("cdc_slot_name") or f"posthog_{hex12}"),
        str(config.get("cdc_publication_name") or f"posthog_pub_{hex12}"),
        (config.get("cdc_management_mode") or "posthog") != "self_managed",
    )
