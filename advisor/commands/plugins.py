"""``tunewise plugins``: what is loaded, what each plugin provides, and what failed."""

from __future__ import annotations

import argparse
import json
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def report() -> dict[str, Any]:
    """Plugins, methods and failures as a JSON-ready dict."""
    from tunewise.plugins.manager import get_host

    host = get_host()
    infos = host.plugins()
    return {
        "plugins": [
            {
                "name": info.name,
                "package": info.package,
                "version": info.version,
                "builtin": info.builtin,
                "methods": info.methods,
                "hooks": info.hooks,
            }
            for info in infos
        ],
        "methods": sorted(host.methods),
        "failures": [
            {"plugin": f.plugin, "package": f.package, "stage": f.stage, "hook": f.hook, "error": f.error}
            for f in host.failures
        ],
        "disabled": sorted(host.skipped),
    }


def main(args: argparse.Namespace) -> int:
    data = report()
    if args.format == "json":
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="tunewise plugins")
    for column in ("plugin", "package", "version", "methods", "hooks"):
        table.add_column(column)
    for p in data["plugins"]:
        name = p["name"] + ("" if not p["builtin"] else " [dim](built-in)[/]")
        hooks = ", ".join(h.removeprefix("tunewise_") for h in p["hooks"])
        table.add_row(name, p["package"], p["version"], ", ".join(p["methods"]), hooks)
    console.print(table)
    if data["disabled"]:
        console.print(f"disabled by TUNEWISE_DISABLE_PLUGINS: {', '.join(data['disabled'])}")
    for f in data["failures"]:
        hook = f" in {f['hook']}" if f["hook"] else ""
        console.print(f"[red]failed[/] {f['plugin']} ({f['package']}): {f['stage']}{hook}: {f['error']}",
                      highlight=False)
    return 0
