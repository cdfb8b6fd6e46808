"""Run an `eventseq` command that sends itself a signal at the start of an epoch (tests of kills and resumes).

Usage: python signal_worker.py SIGNAL EPOCH eventseq-arguments...

SIGNAL is KILL, TERM or INT (or NONE to run the command as it is); it is sent when epoch EPOCH + 1
starts, that is once epoch EPOCH's checkpoints are written. The command's exit code is this
process's (a SIGKILL ends it with -9, as a real one would).
"""

from __future__ import annotations

import os
import signal
import sys

import lightning as L
from lightning.pytorch.callbacks import Callback

from eventseq.training import trainer as training  # where fit_module builds its Trainer
from eventseq.cli import main


class SignalAtEpoch(Callback):
    def __init__(self, signal_number: int, epoch: int) -> None:
        self.signal_number, self.epoch = signal_number, epoch

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch + 1:
            os.kill(os.getpid(), self.signal_number)


if __name__ == "__main__":
    name, epoch, *arguments = sys.argv[1:]
    if name != "NONE":
        build = training.build_trainer

        def build_with_signal(*args, **kwargs):
            trainer = build(*args, **kwargs)
            trainer.callbacks.append(SignalAtEpoch(getattr(signal, f"SIG{name}"), int(epoch)))
            return trainer

        training.build_trainer = build_with_signal
    sys.exit(main(arguments))
