"""E-mail about access requests: the owners hear of a new request, the requester of the decision.

Sent over SMTP with the deployment's settings (`resources.deployment.SmtpSettings`, shared with
the alerts); with `DM_SMTP_HOST` unset nothing is sent and the caller is told so. A message names
the connection, the people and the reason, never a secret or a record.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from etl_assets.governance.connections import AccessRequest, RegisteredConnection
from resources.deployment import SmtpSettings


@dataclass(frozen=True)
class Delivery:
    """What happened to one notification (shown to the user who caused it)."""

    recipients: tuple[str, ...]
    sent: bool
    note: str = ""


def mailboxes(people: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The e-mail addresses among `people` (a `team:<name>` owner has no mailbox)."""
    return tuple(dict.fromkeys(p for p in people if "@" in p and not p.startswith("team:")))


def send(settings: SmtpSettings, to: tuple[str, ...], subject: str, body: str) -> Delivery:
    if not to:
        return Delivery((), False, "no e-mail address to notify")
    if not settings.enabled:
        return Delivery(to, False, "e-mail is off (DM_SMTP_HOST is unset)")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.sender, ", ".join(to), subject
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        return Delivery(to, False, f"could not send e-mail: {type(exc).__name__}: {exc}"[:300])
    return Delivery(to, True)


def owners_assigned(
    settings: SmtpSettings, connection: RegisteredConnection, new_owners: list[str], link: str = ""
) -> Delivery:
    """Tell people they were made owners of a connection (they decide its access requests)."""
    body = (
        f"{connection.updated_by} made you an owner of the connection {connection.name!r}"
        f" ({connection.type}). You approve or deny requests for access to it"
        + (f" at {link}" if link else " in the console (Access requests)")
        + ".\n"
    )
    return send(settings, mailboxes(new_owners), f"You own the connection {connection.name}", body)


def request_to_owners(
    settings: SmtpSettings, connection: RegisteredConnection, request: AccessRequest, link: str = ""
) -> Delivery:
    body = (
        f"{request.requested_by} asks for access to the connection {connection.name!r}"
        f" ({connection.type}) for {request.grantee}.\n\nReason:\n{request.reason}\n\n"
        f"As an owner of {connection.name!r}, approve or deny request {request.id}"
        + (f" at {link}" if link else " in the console (Access requests)")
        + ".\n"
    )
    return send(
        settings,
        mailboxes(connection.owners),
        f"Access request {request.id}: {connection.name} for {request.grantee}",
        body,
    )


def decision_to_requester(
    settings: SmtpSettings, request: AccessRequest, link: str = ""
) -> Delivery:
    body = (
        f"Your request {request.id} for access to the connection {request.connection!r}"
        f" (for {request.grantee}) was {request.status} by {request.decided_by}.\n"
        + (f"\nNote: {request.note}\n" if request.note else "")
        + (f"\n{link}\n" if link else "")
    )
    return send(
        settings,
        mailboxes((request.requested_by, request.grantee)),
        f"Access request {request.id} {request.status}: {request.connection}",
        body,
    )
