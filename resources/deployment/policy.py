"""What the deployment allows: restricted previews in the UI, and the governance gate at run
start. Both are resources so assets and sensors get them injected."""

import dagster as dg
from pydantic import Field


class PrivacyResource(dg.ConfigurableResource):
    """What the deployment allows Dagster to show of the restricted zone."""

    restricted_previews: bool = Field(
        default=False,
        description="show rows of extracted and clean data in asset metadata (under"
        " dm/restricted/): exposes personal data to every UI user who may see restricted data",
    )


class GovernanceResource(dg.ConfigurableResource):
    """Whether runs must pass the governance gate (etl_assets/governance/gate.py): every
    connection of a module granted to its owners, every script released and unmodified."""

    enabled: bool = Field(
        default=False,
        description="refuse a run whose connections lack a grant or whose scripts are unreleased"
        " or modified (DM_GOVERNANCE; on by default in DM_DEPLOYMENT=prod)",
    )
