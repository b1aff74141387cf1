"""Governance: the connection registry and access grants, released scripts.

- `store`: the tables (schema `dm_governance` in the registry database) and their DDL.
- `connections`: named connections (type, contract, owners, the *name* of the secret
  variable), access requests, owners' decisions and the grants they create.
- `scripts`: each module's extraction and upload scripts with their sha256; releases pin it.
- `gate`: what a run checks at its start when governance is enabled (`DM_GOVERNANCE`).
- `notify`: e-mail to requesters and owners over SMTP.

They sit beside `metadata` (the stage assets import `gate`). Metadata drafts validate through the
code location's loader, so they live above it, in `etl_assets/drafts.py` (the CLI and the console
use them). This file imports nothing, so importing the gate pulls in nothing above it.
"""
