"""``riskstream model import|list|use``: manage the model registry without training or Python.

An operator installs the shipped model (or a version directory copied from elsewhere) with
``import``, sees what is there with ``list`` and chooses the served version with ``use``;
workers hot-reload the ``current`` pointer.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskstream.reachable import fail
from riskstream.settings import load_settings

model_app = typer.Typer(help="The model registry: import, list, use.", no_args_is_help=True)
console = Console()


def _registry(registry: Path | None):  # type: ignore[no-untyped-def]
    from models.registry import Registry

    return Registry(registry or load_settings().model_registry)


RegistryOpt = typer.Option(
    None, "--registry", help="Registry folder (default: RISKSTREAM_MODEL_REGISTRY)"
)


@model_app.command("import")
def import_command(
    source: Path | None = typer.Argument(
        None, help="A model version folder (default: the shipped models/pretrained/lstm_oulad)"
    ),
    use: bool = typer.Option(True, "--use/--no-use", help="Make it the current version"),
    registry: Path | None = RegistryOpt,
) -> None:
    """Copy a model version into the registry as the next version (checks it loads)."""
    from models.pretrained import SHIPPED
    from models.registry import RegistryError, SpecMismatchError

    reg = _registry(registry)
    src = source or SHIPPED
    if not src.is_dir():
        raise fail(f"{src} is not a folder; give a model version folder")
    try:
        version = reg.import_version(src, make_current=False)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    try:
        reg.load(version, device="cpu")
    except (SpecMismatchError, RegistryError) as exc:
        console.print(
            f"[yellow]imported as {version} but this code cannot load it:[/] {exc}; "
            "it was not made current"
        )
        raise typer.Exit(1) from None
    if use:
        reg.set_current(version)
    state = "current" if use else "not current (riskstream model use " + version + ")"
    console.print(f"imported {src} as [bold]{version}[/] in {reg.root}: {state}")


@model_app.command("list")
def list_command(registry: Path | None = RegistryOpt) -> None:
    """Versions with kind, creation time, origin and thresholds; * marks the current one."""
    reg = _registry(registry)
    rows = reg.versions()
    if not rows:
        raise fail(
            f"no model in {reg.root}: `riskstream model import` installs the shipped one, "
            "`riskstream train` trains one"
        )
    table = Table("", "version", "kind", "created", "from", "thresholds (medium/high)")
    for r in rows:
        meta_path = reg.root / r["version"] / "meta.json"
        origin = ""
        if meta_path.is_file():
            import json

            meta = json.loads(meta_path.read_text())
            origin = str(meta.get("imported_from") or meta.get("notes") or "")
        th = r.get("thresholds") or {}
        table.add_row(
            "*" if r["current"] else "",
            r["version"],
            str(r.get("kind") or ""),
            str(r.get("created") or "")[:19],
            origin,
            f"{float(th['medium']):.3f}/{float(th['high']):.3f}" if th else "",
        )
    console.print(table)


@model_app.command("use")
def use_command(version: str, registry: Path | None = RegistryOpt) -> None:
    """Make VERSION current (checked to load first); running workers pick it up."""
    from models.registry import RegistryError, SpecMismatchError

    reg = _registry(registry)
    try:
        reg.load(version, device="cpu")
        reg.set_current(version)
    except (SpecMismatchError, RegistryError) as exc:
        raise fail(str(exc)) from None
    console.print(f"current model: [bold]{version}[/] ({reg.root})")
