"""``python -m core.eval <command> [options]``: dispatch to ``core/eval/<command>.py``.

Commands are discovered from the modules of this package, so adding a module that
follows the contract in :mod:`core.eval` adds a command without editing this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

import core.eval as _package


def commands() -> list[str]:
    """Names of the available subcommands (public modules of this package)."""
    return sorted(
        m.name for m in pkgutil.iter_modules(_package.__path__) if not m.name.startswith("_") and not m.ispkg
    )


def _load(name: str) -> ModuleType | None:
    module = importlib.import_module(f"{_package.__name__}.{name}")
    if callable(getattr(module, "add_arguments", None)) and callable(getattr(module, "run", None)):
        return module
    return None


def _summary(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _usage() -> str:
    lines = ["usage: python -m core.eval <command> [options]", "", "commands:"]
    for name in commands():
        try:
            module = _load(name)
        except Exception as exc:  # a broken module must not hide the others
            lines.append(f"  {name:<12} (cannot be loaded: {exc})")
            continue
        if module is not None:
            lines.append(f"  {name:<12} {_summary(module)}")
    lines += ["", "python -m core.eval <command> --help shows the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    module = _load(name) if name in commands() else None
    if module is None:
        print(f"unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog=f"python -m core.eval {name}",
        description=(module.__doc__ or "").strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
