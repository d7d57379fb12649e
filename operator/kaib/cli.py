"""The `kaib` command: one subcommand per user task, each implemented in the module that owns it.

Subcommand modules are imported only when their command runs, so `kaib validate` never pays for
the Azure SDKs or kopf.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command -> (module, help). Each module exposes `add_arguments(parser)` and `main(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("kaib.demo", "run a whole build locally: control plane, sandbox, operator, example"),
    "run": ("kaib.controller.run", "run the operator"),
    "convert": ("kaib.api.convert_cli", "convert an AIB template (JSON) to an ImageTemplate, or back"),
    "validate": ("kaib.api.validate_cli", "check ImageTemplate/ImageBuild manifests offline"),
    "render": ("kaib.packer.cli", "write the Packer templates an ImageTemplate will run"),
    "logs": ("kaib.logs", "print a build's customization and validation logs"),
    "sandbox": ("kaib.sandbox.cli", "run the local Azure sandbox in the foreground"),
    "dev": ("kaib.devenv.cli", "start or stop the local environment (control plane + sandbox)"),
    "builder-agent": ("kaib.builder.agent", "the builder container's entry point"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser, for help and errors; each command parses its own arguments."""
    parser = argparse.ArgumentParser(prog="kaib", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"kaib {name}", description=COMMANDS[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    result: int = module.main(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
