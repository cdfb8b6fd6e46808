"""benchmarks/encoder_speed.py: times every shipped encoder option and writes the ratio table."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "encoder_speed.py"


def test_tiny_run_writes_one_row_per_encoder_with_ratios_to_the_gru(tmp_path):
    spec = importlib.util.spec_from_file_location("encoder_speed_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    output = tmp_path / "speed.md"
    module.main(["--lengths", "6,12", "--batch", "3", "--steps", "1", "--output", str(output)])
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ") and "ms" in line]
    assert [row.split(" | ")[0][2:] for row in rows] == list(module.ENCODERS)
    assert rows[0].count("(1.0x)") == 2  # the GRU against itself
    for row in rows:
        assert len(re.findall(r"\d+ ms \(\d+\.\dx\)", row)) == 2
    assert module.encoder_config("cnn").type == "cnn" and module.encoder_config("gru").pooling == "last+mean+max"
