"""Settings of the services that verify bearer tokens (ingest, query): which issuer, and how
its claims name our roles and operations. Environment names: ``OPSLEDGER_OIDC_<NAME>``.

In development and tests the issuer defaults to the local stack's development issuer; in
production it must be named, over https unless `OPSLEDGER_INSECURE_HTTP_ISSUER` says otherwise.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator

from services.common.auth import ROLES, Role
from services.common.oidc import (
    ASYMMETRIC_ALGORITHMS,
    ClaimMapping,
    HttpKeySource,
    IssuerConfig,
    KeyCache,
    OidcVerifier,
)
from services.common.settings import CommonSettings

# The development issuer `opsledger stack up` starts (services/stack/issuer.py), at the stack's
# default address; `opsledger stack env` prints the address of the one actually running.
LOCAL_ISSUER = "http://127.0.0.1:39480"


def _oidc(name: str) -> AliasChoices:
    return AliasChoices(f"OPSLEDGER_OIDC_{name}")


class IssuerSettings(CommonSettings):
    """Who signs the tokens this service accepts, and how their claims map to ours."""

    oidc_issuer: str | None = Field(
        None,
        validation_alias=_oidc("ISSUER"),
        description="The identity provider's issuer URL, exactly as its tokens' `iss` says "
        "(Entra ID: https://login.microsoftonline.com/<tenant>/v2.0; Keycloak: "
        "https://<host>/realms/<realm>). Unset: the local development issuer, refused in "
        "production.",
    )
    oidc_audience: str = Field(
        "opsledger",
        validation_alias=_oidc("AUDIENCE"),
        description="Required `aud`: the client id or application ID URI tokens are issued for.",
    )
    oidc_jwks_url: str | None = Field(
        None,
        validation_alias=_oidc("JWKS_URL"),
        description="Where the issuer publishes its keys; unset: read from its discovery document.",
    )
    oidc_algorithms: list[str] = Field(
        list(ASYMMETRIC_ALGORITHMS),
        validation_alias=_oidc("ALGORITHMS"),
        description="Accepted signature algorithms (a subset of RS256, ES256, EdDSA).",
    )
    oidc_roles_claim: str = Field(
        "roles",
        validation_alias=_oidc("ROLES_CLAIM"),
        description="Claim (dotted path) holding the caller's roles or groups, e.g. `roles`, "
        "`groups`, `realm_access.roles`.",
    )
    oidc_role_map: dict[str, Role] = Field(
        {role: role for role in ROLES},
        validation_alias=_oidc("ROLE_MAP"),
        description="JSON object from the provider's role or group names to ours, e.g. "
        '`{"Opsledger.Supervisor": "supervisor"}`; names not in it are ignored.',
    )
    oidc_operations_claim: str = Field(
        "operations",
        validation_alias=_oidc("OPERATIONS_CLAIM"),
        description="Claim (dotted path) listing the operation ids the caller may use.",
    )
    oidc_subject_claim: str = Field(
        "sub",
        validation_alias=_oidc("SUBJECT_CLAIM"),
        description="Claim naming the caller in logs and the ledger (e.g. `sub`, `oid`).",
    )
    oidc_leeway_s: float = Field(
        10.0,
        validation_alias=_oidc("LEEWAY_S"),
        ge=0,
        le=120,
        description="Clock skew tolerated on `exp` and `nbf`, in seconds.",
    )
    oidc_jwks_refresh_s: float = Field(
        300.0,
        validation_alias=_oidc("JWKS_REFRESH_S"),
        gt=0,
        le=86_400,
        description="Keys are re-read this often (in the background).",
    )
    oidc_jwks_min_refresh_interval_s: float = Field(
        10.0,
        validation_alias=_oidc("JWKS_MIN_REFRESH_INTERVAL_S"),
        ge=0,
        le=3600,
        description="Least time between two reads of the keys (an unknown `kid` triggers one).",
    )
    oidc_jwks_max_stale_s: float = Field(
        3600.0,
        validation_alias=_oidc("JWKS_MAX_STALE_S"),
        gt=0,
        le=7 * 86_400,
        description="How long keys fetched earlier keep verifying while the provider is away; "
        "past it every request is refused (503).",
    )
    oidc_timeout_s: float = Field(
        5.0,
        validation_alias=_oidc("TIMEOUT_S"),
        gt=0,
        le=60,
        description="Bound on one request to the provider.",
    )
    oidc_ca_file: str | None = Field(
        None,
        validation_alias=_oidc("CA_FILE"),
        description="CA bundle that signed the issuer's TLS certificate (a provider behind a "
        "private CA); unset: the system's trusted roots.",
    )
    insecure_http_issuer: bool = Field(
        False,
        validation_alias=AliasChoices("OPSLEDGER_INSECURE_HTTP_ISSUER"),
        description="INSECURE: let production fetch the issuer's keys over plain http.",
    )

    @property
    def issuer(self) -> str:
        """The issuer in force (the local development issuer when none is named)."""
        return self.oidc_issuer or LOCAL_ISSUER

    @model_validator(mode="after")
    def _refuse_development_issuer_in_production(self) -> IssuerSettings:
        refused = [a for a in self.oidc_algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if refused or not self.oidc_algorithms:
            raise ValueError(
                f"OPSLEDGER_OIDC_ALGORITHMS: only {', '.join(ASYMMETRIC_ALGORITHMS)} are "
                f"accepted (refused: {', '.join(refused) or 'an empty list'})"
            )
        if self.env != "production":
            return self
        if not self.oidc_issuer:
            raise ValueError(
                "OPSLEDGER_OIDC_ISSUER must name the identity provider in production "
                "(the development issuer is for laptops and CI)"
            )
        if not self.oidc_issuer.startswith("https://") and not self.insecure_http_issuer:
            raise ValueError(
                "OPSLEDGER_OIDC_ISSUER must be https:// in production "
                "(or set OPSLEDGER_INSECURE_HTTP_ISSUER=true)"
            )
        return self

    def verifier(self) -> OidcVerifier:
        """A verifier for this issuer (keys fetched on first use, never at construction)."""
        config = IssuerConfig(
            issuer=self.issuer,
            audience=self.oidc_audience,
            algorithms=tuple(self.oidc_algorithms),
            leeway_s=self.oidc_leeway_s,
            mapping=ClaimMapping(
                roles_claim=self.oidc_roles_claim,
                operations_claim=self.oidc_operations_claim,
                subject_claim=self.oidc_subject_claim,
                role_values=dict(self.oidc_role_map),
            ),
        )
        source = HttpKeySource(
            self.issuer,
            jwks_url=self.oidc_jwks_url,
            timeout_s=self.oidc_timeout_s,
            ca_file=self.oidc_ca_file,
        )
        keys = KeyCache(
            source,
            refresh_s=self.oidc_jwks_refresh_s,
            min_refresh_interval_s=self.oidc_jwks_min_refresh_interval_s,
            max_stale_s=self.oidc_jwks_max_stale_s,
        )
        return OidcVerifier(config, keys)
