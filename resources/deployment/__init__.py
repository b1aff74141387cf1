"""The deployment: the one place that reads the environment and maps it to resources.

`Deployment.from_environ()` reads every `DM_*` setting (and `DAGSTER_HOME`) once; `resources_for`
turns a deployment into the resource dictionary the Definitions and the CLI both use. Nothing else
in the project reads `os.environ`: values a module's metadata names by variable (connection URLs
and secrets, pseudonymization keys) are looked up through `SecretsResource`, defined here too.

One module per concern: `environment` (the `Deployment` and its two kinds), `secret_values`,
`policy` (previews, governance), `s3`, `web` (sign-in), `audit`, `smtp`, `process` (what a
process sets up for itself) and `mapping` (`resources_for`); `values` turns a variable's text into
a setting. Callers import the names from `resources.deployment`.
"""

from resources.deployment.audit import AuditSettings, audit_settings
from resources.deployment.environment import EXECUTORS, KINDS, PROJECT_ROOT, Deployment, current
from resources.deployment.mapping import resources_for
from resources.deployment.policy import GovernanceResource, PrivacyResource
from resources.deployment.process import configure_arrow, local_user_name, set_dagster_home
from resources.deployment.s3 import S3_VARIABLES, s3_resource
from resources.deployment.secret_values import ALWAYS_MASKED, SecretsResource
from resources.deployment.smtp import SmtpSettings, smtp_settings
from resources.deployment.values import DeploymentError
from resources.deployment.web import (
    AUTH_MODES,
    LOOPBACK_HOSTS,
    OidcSettings,
    ProxySettings,
    WebSettings,
    web_settings,
)

__all__ = [
    "ALWAYS_MASKED",
    "AUTH_MODES",
    "EXECUTORS",
    "KINDS",
    "LOOPBACK_HOSTS",
    "PROJECT_ROOT",
    "S3_VARIABLES",
    "AuditSettings",
    "Deployment",
    "DeploymentError",
    "GovernanceResource",
    "OidcSettings",
    "PrivacyResource",
    "ProxySettings",
    "SecretsResource",
    "SmtpSettings",
    "WebSettings",
    "audit_settings",
    "configure_arrow",
    "current",
    "local_user_name",
    "resources_for",
    "s3_resource",
    "set_dagster_home",
    "smtp_settings",
    "web_settings",
]
