"""What posthog-mode CDC leaves at the source, removed when the source goes or CDC is turned off.

A replication slot nobody reads keeps every WAL segment since its position: left behind, it fills the
source's disk. So the slot and publication this backend created are dropped before the source is deleted
or its CDC turned off, and when that fails the change is refused with the reason, never done silently.
self_managed slots and publications belong to the user and are never touched; neither are they when
`cdc_auto_drop_slot` is off.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from warehouse_mcp.embedded.connectors.base import SourceError
from warehouse_mcp.embedded.connectors.forms import truthy

logger = logging.getLogger(__name__)

ACTIVE_SLOT_WAIT_SECONDS = 10.0


def drop_if_managed(source_id: str, config: dict[str, Any]) -> None:
    """Drop the slot and publication of a posthog-mode CDC source (with cdc_auto_drop_slot); SourceError
    says why when that is not possible."""
    if not truthy(config.get("cdc_enabled")) or not truthy(config.get("cdc_auto_drop_slot", True)):
        return
    # Imported here: sync.cdc loads DuckDB, which the API (and so the server's start) must not.
    from warehouse_mcp.embedded.sync.cdc import slot_and_publication

    slot, publication, managed = slot_and_publication(source_id, config)
    if not managed:
        return
    from warehouse_mcp.embedded.connectors import postgres_cdc

    deadline = time.monotonic() + ACTIVE_SLOT_WAIT_SECONDS
    while True:
        try:
            postgres_cdc.drop_slot_and_publication(config, slot, publication)
            logger.info("Dropped replication slot %s and publication %s", slot, publication)
            return
        except SourceError as error:
            # A sync reading the slot holds it for a moment: wait for it rather than fail.
            if "is active for PID" not in str(error) or time.monotonic() > deadline:
                raise SourceError(
                    f"Could not drop the replication slot '{slot}' and publication '{publication}' at the "
                    f"source: {error} Fix the connection and retry; or (a database that is gone, or a slot you "
                    "will remove yourself) set job_inputs.cdc_auto_drop_slot to false, retry, and drop them "
                    f"yourself (SELECT pg_drop_replication_slot('{slot}'); "
                    f"DROP PUBLICATION {publication};)."
                ) from None
            time.sleep(0.2)
