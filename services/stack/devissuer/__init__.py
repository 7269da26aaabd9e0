"""The development token issuer: a key pair in ``.local/``, its public half served as OIDC.

Only for a laptop or CI, where no identity provider is configured: `opsledger stack up` starts
it, `opsledger token` signs with its key, the services verify against its JWKS exactly as they
verify a real provider's tokens. Nothing here runs in production (`opsledger token` refuses).
"""
