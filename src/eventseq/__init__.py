"""eventseq: deep learning on event sequences (transactions, clickstreams, app logs)."""

__version__ = "0.1.0"
