"""Built-in data: generators (transactions, a recommender's interaction log) and real data sets read from
PyPI packages (CDNOW from lifetimes, the UEA archive's sets from sktime)."""

from eventseq.datasets.cdnow import CDNOW_COLUMNS, load_cdnow
from eventseq.datasets.interactions import SyntheticInteractions, make_interactions
from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, SyntheticTransactions, make_transactions
from eventseq.datasets.uea import load_uea, uea_columns

__all__ = ["CDNOW_COLUMNS", "load_cdnow", "SYNTHETIC_COLUMNS", "SyntheticTransactions", "make_transactions",
           "SyntheticInteractions", "make_interactions", "load_uea", "uea_columns"]
