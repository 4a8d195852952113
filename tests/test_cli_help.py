"""Every command's --help reads as written: no markup eaten ("needs the [api] extra"), no
<bool> after flags, and the one-line errors a user meets first."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fullmaja_stac.cli import app

COMMANDS = ["synth", "info", "ingest", "export", "validate", "timeseries", "composite", "request", "import-log", "status", "resubmit", "forget",
            "download", "emulator", "search", "fetch", "serve", "build-browser", "demo", "publish pgstac"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_intact(command):
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "<bool>" not in text and "the  extra" not in text and "Traceback" not in text
    assert "Usage:" in text and "--help" in text


def test_serve_help_names_the_extra_and_the_basemap():
    text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "100"}).output
    assert "the [api] extra" in " ".join(text.split()) and "--basemap" in text
