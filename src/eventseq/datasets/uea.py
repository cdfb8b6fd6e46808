"""Real multivariate sequences of the UEA/UCR time-series classification archive, read from a PyPI package.

`sktime`'s wheel carries a few archive sets as `.ts` files (JapaneseVowels, BasicMotions, PLAID, ...).
We locate them through the package metadata and read them as files; `sktime` itself is never imported,
so its dependencies are not needed: `pip install --no-deps sktime==1.2.0` (without `--no-deps`, pip
would also take its pins, pandas < 3.1 among them, which is why it is not in the `real` extra).

Each series is an entity, each time step an event (its position as `event_time`, one numeric field per
dimension), its class the label. JapaneseVowels: 640 utterances of 9 speakers, 12 LPC coefficients per
frame, 7-29 frames: the speaker is in how the coefficients move, a real order-and-value signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from eventseq.datasets.packaged import package_directory
from eventseq.errors import FileFormatError

UEA_DIRECTORY = "datasets/data"  # in the sktime package
INSTALL = "pip install --no-deps sktime==1.2.0"


def uea_columns(dimensions: int) -> dict:
    """PrepareConfig arguments for `load_uea`'s events and labels."""
    return dict(id_column="entity_id", time_column="event_time", time_unit="s",
                numeric=[f"dim_{number}" for number in range(dimensions)], targets={"label": "multiclass"})


def uea_path(name: str) -> Path:
    """The directory of archive set `name` inside the installed `sktime` package (not imported)."""
    root = package_directory("sktime", "the UEA archive's sets", INSTALL) / UEA_DIRECTORY
    path = root / name
    if not (path / f"{name}_TRAIN.ts").is_file():
        shipped = sorted(entry.name for entry in root.iterdir() if (entry / f"{entry.name}_TRAIN.ts").is_file()) \
            if root.is_dir() else []
        raise FileFormatError(f"no UEA set '{name}' in {root}: the installed sktime ships {shipped}")
    return path


def _read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """The series ([dimensions, length] each) and class labels of one `.ts` file without time stamps."""
    series, labels = [], []
    in_data = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower().startswith("@timestamps") and line.split()[-1].lower() == "true":
                raise FileFormatError(f"{path}: series with time stamps are not read (@timeStamps true)")
            in_data = line.lower() == "@data"
            continue
        *dimensions, label = line.split(":")
        try:
            values = [np.array([float(value) for value in dimension.split(",")]) for dimension in dimensions]
        except ValueError as error:
            raise FileFormatError(f"{path}, line {number}: expected comma-separated numbers per dimension "
                                  f"({error})") from None
        if not values or len({len(dimension) for dimension in values}) != 1:
            raise FileFormatError(f"{path}, line {number}: every dimension of a series needs the same length")
        series.append(np.stack(values))
        labels.append(label.strip())
    if not series:
        raise FileFormatError(f"{path}: no series after @data")
    return series, labels


def load_uea(name: str = "JapaneseVowels") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (events, labels) of archive set `name`, its train and test files together.

    Events: entity_id (int), event_time (int: the step), dim_0 ... dim_{D-1} (float). Labels: entity_id,
    label (str, the class), part ("train" / "test": the archive's own split). Prepare them with
    `PrepareConfig(**uea_columns(D))`.

    Raises:
        FileFormatError: sktime (the package carrying the files) is missing, the set is not among the ones
            it ships, or a file is not a `.ts` file of equal-length dimensions.
    """
    path = uea_path(name)
    series, labels, parts = [], [], []
    for part in ("train", "test"):
        read, classes = _read_ts(path / f"{name}_{part.upper()}.ts")
        series += read
        labels += classes
        parts += [part] * len(read)
    dimensions = {len(one) for one in series}
    if len(dimensions) != 1:
        raise FileFormatError(f"{path}: the series have different numbers of dimensions {sorted(dimensions)}")
    lengths = np.array([one.shape[1] for one in series])
    values = np.concatenate([one.T for one in series])  # [events, D]
    events = pl.DataFrame({
        "entity_id": np.repeat(np.arange(len(series)), lengths),
        "event_time": np.concatenate([np.arange(length) for length in lengths]),
        **{f"dim_{number}": values[:, number] for number in range(values.shape[1])},
    })
    return events, pl.DataFrame({"entity_id": np.arange(len(series)), "label": labels, "part": parts})
