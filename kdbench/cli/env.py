"""`kdbench env`: what a bug report needs."""

from __future__ import annotations

from typing import Annotated

import typer

from kdbench.cli.app import app, console, err_console, user_errors
from kdbench.core.errors import KdbenchError


@app.command(name="env")
@user_errors
def env_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the environment block as JSON.")] = False,
) -> None:
    """What a bug report needs: Python, CPU and its ISA features, torch (CUDA, cuDNN, CPU kernels), GPU and driver,
    ONNX Runtime's installed build(s) and providers, library versions and the git commit - the block every result
    file embeds. Warns when two ONNX Runtime builds are installed or none."""
    import json

    from kdbench.core import env
    from kdbench.core import ortbuild as ort
    from kdbench.judge.render import env_rows

    doc = env.collect()
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        rows = env_rows(doc)
        for key, value in rows:
            console.print(f"{key:>14}: {value}", highlight=False, soft_wrap=True, markup=False)
    if len(ort.installed()) != 1:
        try:
            ort.check("cpu")
        except KdbenchError as exc:
            err_console.print(f"warning: {exc}", markup=False, soft_wrap=True)
