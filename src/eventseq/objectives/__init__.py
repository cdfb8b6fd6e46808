"""Objectives: one file per training task, each a LightningModule over an Encoder."""
