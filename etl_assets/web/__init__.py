"""`dmetl serve`: Dagster's UI and GraphQL API behind sign-in (local, OIDC or a trusted proxy),
roles as Dagster's per-request permissions plus a mutation allow-list, transport hardening, and
an audit event for every sign-in, sign-out and mutation attempt. See docs/security.md."""
