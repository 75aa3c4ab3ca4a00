"""The operators' command line: `python -m ops VERB ...` (`--help` lists the verbs).

It uses the same settings and clients as the functions (the composition root in
`shared/app/composition.py`) and prints references, counts and confirmations, never buyer data.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ops.notifications import cmd_notifications
from ops.notifications import configure as _notifications
from shared.orders.messages import ORDER_ID_PATTERN, REQUEST_ID_PATTERN
from shared.settings import POISON_MESSAGE_DAYS, load_settings

if TYPE_CHECKING:
    from shared.app.composition import LocalOverrides
    from shared.crypto.key_vault import AzureSecretStore
    from shared.privacy.service import PrivacyService
    from shared.settings import Settings
    from shared.storage.queues import StorageQueues

Verb = Callable[[argparse.Namespace, Mapping[str, str], TextIO], int]

#: Set by `main` for the local run and tests (a test credential, loopback TLS); None in Azure.
_overrides: LocalOverrides | None = None


def _print_json(out: TextIO, value: object) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def cmd_functions(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """List the registered functions with their triggers."""
    import function_app

    rows = []
    for fn in function_app.app.get_functions():
        trigger = json.loads(fn.get_function_json())["bindings"]
        (main,) = [b for b in trigger if str(b["type"]).endswith("Trigger")]
        source = main.get("queueName") or main.get("schedule")
        rows.append({"function": fn.get_function_name(), "trigger": main["type"], "source": source})
    _print_json(out, rows)
    return 0


def cmd_check_settings(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Validate the app settings and print the recoverability bound."""
    settings = load_settings(env)
    _print_json(
        out,
        {
            "sellers": len(settings.sellers),
            "retentionDays": settings.retention_days,
            "recoverabilityDays": settings.recoverability_days,
            "recoverabilityTerms": {
                "RETENTION_DAYS": settings.retention_days,
                "KEY_EPOCH_DAYS": settings.key_epoch_days,
                "COSMOS_BACKUP_RETENTION_DAYS": settings.cosmos_backup_retention_days,
                "KEY_VAULT_SOFT_DELETE_DAYS": settings.key_vault_soft_delete_days,
            },
            # Counted after the retention, against the last three terms' sum (the longer counts).
            "poisonMessageDays": POISON_MESSAGE_DAYS,
        },
    )
    return 0


def _clients(
    env: Mapping[str, str], settings: Settings | None = None
) -> tuple[AzureSecretStore, StorageQueues]:
    """The Key Vault secret store and the storage queues, as the functions reach them (with
    `settings` already read, or the app's settings from `env`)."""
    from shared.app.composition import LocalOverrides, _default_credential, connect
    from shared.storage.queues import StorageQueues

    overrides = _overrides or LocalOverrides()
    chosen = settings or load_settings(env)
    clients = connect(chosen, overrides.credential or _default_credential(), overrides)
    return clients.secrets, StorageQueues(clients.queues)


def _ref(env: Mapping[str, str], order_id: str) -> str:
    from shared.orders.reference import OrderReferencer

    secrets, _ = _clients(env)
    return OrderReferencer(secrets, create_missing=False).ref(order_id)


def cmd_init_keys(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Make the order-reference key and the invoice archive key, once (never overwrites)."""
    from shared.app.keys import init_keys

    secrets, _ = _clients(env)
    _print_json(out, dict(init_keys(secrets)))
    return 0


def cmd_preflight(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Check the deployment (settings, secrets, keys, carriers): one line per check, no values."""
    from ops.preflight import preflight

    results = preflight(env, lambda settings: _clients(env, settings)[0])
    for check in results:
        out.write(check.line() + "\n")
    return 0 if all(check.ok for check in results) else 1


def cmd_ref(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Print an order's pseudonymous reference, to find its trail in Log Analytics."""
    out.write(_ref(env, args.order_id) + "\n")
    return 0


def cmd_request(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Queue a privacy request (access, delete, amazon-delete, restrict) for an order."""
    from shared.orders.messages import PRIVACY_REQUESTS
    from shared.privacy.service import encode_recipient_key

    request_id = args.request_id or f"req-{uuid.uuid4().hex}"
    body: dict[str, str] = {
        "requestId": request_id,
        "type": args.type.replace("-", "_"),
        "ref": _ref(env, args.order_id),
    }
    if args.type == "access":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        if args.recipient_key is None:
            raise SystemExit("access needs --recipient-key (the requester's RSA public key, PEM)")
        key = serialization.load_pem_public_key(Path(args.recipient_key).read_bytes())
        if not isinstance(key, rsa.RSAPublicKey):
            raise SystemExit("--recipient-key must be an RSA public key")
        body["recipientKey"] = encode_recipient_key(key)
    _, queues = _clients(env)
    queues.send(PRIVACY_REQUESTS, json.dumps(body))
    _print_json(out, {"queued": PRIVACY_REQUESTS, "requestId": request_id, "ref": body["ref"]})
    return 0


def _privacy(env: Mapping[str, str]) -> PrivacyService:
    from shared.app.composition import build_runtime
    from shared.app.runtime import utc_now

    privacy: PrivacyService = build_runtime(env, utc_now, _overrides).privacy  # type: ignore[assignment]
    return privacy


def cmd_correct(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Correct an order's buyer fields: a JSON object of field -> value on standard input
    (never on the command line, where shells keep history)."""
    from shared.app.runtime import utc_now
    from shared.crypto.pii import Pii

    changes = json.loads(sys.stdin.read() if args.stdin is None else args.stdin.read())
    if not isinstance(changes, dict) or not all(v is None or isinstance(v, str) for v in changes.values()):
        raise SystemExit("standard input must hold a JSON object of field -> text (or null to remove it)")
    privacy = _privacy(env)
    ref = _ref(env, args.order_id)
    corrected = {str(k): None if v is None else Pii(v) for k, v in changes.items()}
    outcome = privacy.correct(ref, corrected, utc_now())
    _print_json(out, {"ref": ref, "held": outcome.held, "fieldsChanged": list(outcome.fields_changed)})
    return 0


def cmd_confirmation(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Print the written deletion confirmation of a request (PII-free)."""
    privacy = _privacy(env)
    text = privacy.confirmation_text(_ref(env, args.order_id), args.request_id)
    if text is None:
        out.write("no confirmation recorded for that order and request\n")
        return 1
    out.write(text + "\n")
    return 0


def cmd_recoverability(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Print the recoverability bound term by term (must stay within Amazon's 30 days)."""
    from shared.crypto.key_epochs import recoverability_report

    _print_json(out, recoverability_report(load_settings(env)))
    return 0


def _checked(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    """An argparse type: the text as typed, or a clear refusal (a stray space or newline would
    name no stored order, and a deletion would then confirm that nothing was held)."""

    def check(text: str) -> str:
        if not pattern.fullmatch(text):
            raise argparse.ArgumentTypeError(f"not {what}")
        return text

    return check


def _order(p: argparse.ArgumentParser) -> None:
    p.add_argument("order_id", type=_checked(ORDER_ID_PATTERN, "an Amazon order id (3-7-7 digits)"))


def _request(p: argparse.ArgumentParser) -> None:
    p.add_argument("type", choices=["access", "delete", "amazon-delete", "restrict"])
    _order(p)
    p.add_argument(
        "--request-id",
        type=_checked(REQUEST_ID_PATTERN, "a request id (8-128 letters, digits, . _ : -)"),
        help="your ticket or Amazon's request id (default: generated)",
    )
    p.add_argument("--recipient-key", help="access only: the requester's RSA public key (PEM file)")


def _correct(p: argparse.ArgumentParser) -> None:
    _order(p)
    p.set_defaults(stdin=None)


def _confirmation(p: argparse.ArgumentParser) -> None:
    _order(p)
    p.add_argument("request_id", type=_checked(REQUEST_ID_PATTERN, "a request id"))


VERBS: dict[str, tuple[Verb, Callable[[argparse.ArgumentParser], None]]] = {
    "functions": (cmd_functions, lambda p: None),
    "check-settings": (cmd_check_settings, lambda p: None),
    "recoverability": (cmd_recoverability, lambda p: None),
    "init-keys": (cmd_init_keys, lambda p: None),
    "preflight": (cmd_preflight, lambda p: None),
    "ref": (cmd_ref, _order),
    "request": (cmd_request, _request),
    "correct": (cmd_correct, _correct),
    "confirmation": (cmd_confirmation, _confirmation),
    "notifications": (cmd_notifications, _notifications),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m ops", description=__doc__)
    verbs = root.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (fn, configure) in VERBS.items():
        sub = verbs.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        configure(sub)
        sub.set_defaults(handler=fn)
    return root


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO = sys.stdout,
    overrides: LocalOverrides | None = None,
) -> int:
    global _overrides  # noqa: PLW0603 - one CLI invocation per process
    _overrides = overrides
    args = parser().parse_args(argv)
    handler: Verb = args.handler
    return handler(args, os.environ if env is None else env, out)


if __name__ == "__main__":
    raise SystemExit(main())
