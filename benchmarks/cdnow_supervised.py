"""Real data check: churn on CDNOW, a supervised GRU vs an RFM logistic regression, same split.

Usage: python benchmarks/cdnow_supervised.py [--epochs 10]
Needs the CDNOW file: pip install --no-deps lifetimes==0.11.3

The baseline is what an analyst would fit first: recency, frequency and monetary value
(RFM) from the same history, logistic regression, evaluated on the same test entities.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from eventseq.data import PrepareConfig, prepare
from eventseq.datasets import CDNOW_COLUMNS, load_cdnow
from eventseq.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    events, labels = load_cdnow()
    workdir = tempfile.mkdtemp(prefix="cdnow_")
    prepare(events, PrepareConfig(**CDNOW_COLUMNS), labels=labels, output=f"{workdir}/prepared")

    config = TrainConfig(output=f"{workdir}/run")
    config.data.path = f"{workdir}/prepared"
    config.data.batch_size = 256
    config.trainer.max_epochs = args.epochs
    config.trainer.progress_bar = False
    start = time.perf_counter()
    result = train(config)
    gru_seconds = time.perf_counter() - start

    cutoff = dt.date(1997, 9, 30)
    rfm = events.group_by("customer_id").agg(
        (pl.lit(cutoff) - pl.col("date").max()).dt.total_days().alias("recency_days"),
        pl.len().alias("frequency"),
        pl.col("dollar_value").sum().log1p().alias("log_monetary"),
    ).join(labels, on="customer_id")
    parts = pl.read_parquet(f"{workdir}/run/splits.parquet")
    frame = rfm.join(parts, on="customer_id")
    features = ["recency_days", "frequency", "log_monetary"]
    fit_part = frame.filter(pl.col("part") != "test")
    test_part = frame.filter(pl.col("part") == "test")
    start = time.perf_counter()
    scaler = StandardScaler().fit(fit_part.select(features).to_numpy())
    model = LogisticRegression().fit(scaler.transform(fit_part.select(features).to_numpy()), fit_part["churn"])
    scores = model.predict_proba(scaler.transform(test_part.select(features).to_numpy()))[:, 1]
    rfm_auroc = roc_auc_score(test_part["churn"].to_numpy(), scores)
    rfm_seconds = time.perf_counter() - start

    print(f"\nCDNOW churn: {labels.height:,} customers, {events.height:,} events, churn share {labels['churn'].mean():.3f}")
    print(f"{'model':<34}{'test AUROC':>12}{'seconds':>10}")
    print(f"{'RFM + logistic regression':<34}{rfm_auroc:>12.4f}{rfm_seconds:>10.1f}")
    print(f"{'eventseq GRU (supervised)':<34}{result.metrics['test_auroc']:>12.4f}{gru_seconds:>10.1f}")
    print(f"ratio GRU / RFM AUROC: {result.metrics['test_auroc'] / rfm_auroc:.3f}  (same test customers: {np.int64(test_part.height)})")


if __name__ == "__main__":
    main()
