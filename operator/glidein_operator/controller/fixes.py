"""The command that fixes a missing Secret, as the operator's conditions and
``glidein-operator check`` both say it: values left for the admin to fill, never ours."""

from __future__ import annotations

from glidein_operator.api.trustdomain import CREDENTIAL_SECRET_KEYS

POOL_KEY_FILE = "/etc/condor/passwords.d/POOL"
# Credential types whose values are files (a proxy, a token, a kubeconfig), not words.
FILE_CREDENTIALS = frozenset({"kubeconfig", "x509-proxy", "scitoken", "idtoken"})


def secret_command(
    namespace: str, name: str, credential_type: str, keys: tuple[str, ...] | None = None
) -> str:
    """``kubectl create secret`` for a credential (its type's keys unless given)."""
    wanted = keys if keys is not None else CREDENTIAL_SECRET_KEYS.get(credential_type, ())
    args = [
        f"--from-file={k}=<file>"
        if credential_type in FILE_CREDENTIALS
        else f"--from-literal={k}=..."
        for k in wanted
    ]
    return f"kubectl -n {namespace} create secret generic {name} " + " ".join(args)


def pool_key_command(namespace: str, name: str) -> str:
    return (
        f"kubectl -n {namespace} create secret generic {name} "
        f"--from-file=signingKey={POOL_KEY_FILE}"
    )
