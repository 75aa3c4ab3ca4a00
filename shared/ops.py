"""The operators' command line: `python -m shared.ops VERB ...` (`--help` lists the verbs).

It uses the same settings and clients as the functions (the composition root in
`shared/composition.py`) and prints references, counts and confirmations, never buyer data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from shared.settings import load_settings

Verb = Callable[[argparse.Namespace, Mapping[str, str], TextIO], int]


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
        },
    )
    return 0


VERBS: dict[str, tuple[Verb, Callable[[argparse.ArgumentParser], None]]] = {
    "functions": (cmd_functions, lambda p: None),
    "check-settings": (cmd_check_settings, lambda p: None),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m shared.ops", description=__doc__)
    verbs = root.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (fn, configure) in VERBS.items():
        sub = verbs.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        configure(sub)
        sub.set_defaults(handler=fn)
    return root


def main(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO = sys.stdout
) -> int:
    args = parser().parse_args(argv)
    handler: Verb = args.handler
    return handler(args, os.environ if env is None else env, out)


if __name__ == "__main__":
    raise SystemExit(main())
