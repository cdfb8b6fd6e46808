"""Saved models: a directory with config.json (architecture + schema) and model.safetensors.

A combined supervised model (the network stacked with LightGBM over aggregates, eventseq.combined)
adds combined.json and LightGBM's text files. Loading rebuilds the module from JSON and reads tensors
with safetensors and boosters with LightGBM: nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import safetensors.torch
import torch
from omegaconf.errors import OmegaConfBaseException

from eventseq import __version__
from eventseq._io import atomic_directory, read_json
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError, FileFormatError
from eventseq.objectives.methods import METHODS

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
COMBINED_FILES = ("combined.json", "lightgbm-*.txt")  # eventseq.combined's COMBINED_FILE, BOOSTER_PATTERN

# kind (stored in config.json) -> "module:class" that rebuilds it, imported only when such a model is
# loaded (so this module depends on no model code). Self-supervised models are tagged with their method
# (coles, vicreg, ...), all rebuilt by SelfSupervisedModule.
MODEL_KINDS: dict[str, str] = {
    "supervised": "eventseq.objectives.supervised:SupervisedModule",
    **{method: "eventseq.objectives.selfsupervised:SelfSupervisedModule" for method in METHODS},
    "rec_pretrain": "eventseq.rec.pretrain:NextPositiveModule",
    "rec_ranker": "eventseq.rec.finetune:RankerModule",
}


def model_class(kind: str) -> type[L.LightningModule]:
    """The LightningModule class that rebuilds a saved model of `kind` (a key of MODEL_KINDS)."""
    import importlib

    module_name, class_name = MODEL_KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


# what each family of model is for: the commands that take it (named in the error for a wrong kind)
FAMILY_USES = {
    "supervised": "eventseq predict, embed or evaluate (or train init_from=)",
    "self-supervised": "eventseq embed or evaluate, or train init_from= to fine-tune it",
    "rec_pretrain": "eventseq rec finetune init_from=",
    "rec_ranker": "eventseq rec score or rec evaluate",
}


def model_family(module: L.LightningModule) -> str:
    """supervised, self-supervised (any pretraining method), rec_pretrain or rec_ranker."""
    kind = getattr(module, "kind", type(module).__name__)
    return "self-supervised" if kind in METHODS else kind


def require_family(module: L.LightningModule, accepted: tuple[str, ...], command: str, source: Any = None) -> None:
    """Refuse a model of another family than `command` takes, naming what it is and which command serves it.

    Only eventseq's own kinds are checked: a user's own LightningModule passed to the API is used as it is.

    Raises:
        ConfigError: e.g. "eventseq predict needs a supervised model; runs/coles/model is a self-supervised
            (coles) model: use eventseq embed or evaluate ...".
    """
    family = model_family(module)
    if family in accepted or family not in FAMILY_USES:  # a user's own module is taken as it quacks
        return
    kind = getattr(module, "kind", family)
    what = f"{source} is" if source is not None else "the model is"
    detail = f" ({kind})" if kind != family else ""
    raise ConfigError(f"{command} needs a {' or '.join(accepted)} model; {what} a {family}{detail} model: "
                      f"use {FAMILY_USES.get(family, 'the command that made it')}")


def save_model(module: L.LightningModule, directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write `config.json` and `model.safetensors` into `directory` (atomically replaced).

    Args:
        module: a module of a kind in MODEL_KINDS, with `schema` and `to_config()`.
        directory: target directory; an existing one is replaced only once the new one is complete, and
            only if it holds nothing but a saved model's files (a user's directory is never replaced).
        extra: additional JSON-able information (metrics, training config) stored in config.json.
    """
    import json

    combined = getattr(module, "combined", None)
    payload = {
        "eventseq_version": __version__,
        "kind": module.kind,
        "schema": module.schema.to_dict(),
        "model": module.to_config(),
        "combined": combined is not None,
        "extra": extra or {},
    }
    with atomic_directory(directory, (CONFIG_FILE, WEIGHTS_FILE, *COMBINED_FILES)) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(payload, indent=2, default=str))
        safetensors.torch.save_model(module, str(tmp / WEIGHTS_FILE))
        if combined is not None:
            combined.save(tmp)
    return Path(directory)


def load_model(directory: str | os.PathLike) -> L.LightningModule:
    """Rebuild a saved model in eval mode.

    Raises:
        FileFormatError: the directory, config or weights are missing, corrupt or do not match.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileFormatError(f"model directory not found: {directory}")
    config_path = directory / CONFIG_FILE
    try:
        payload = read_json(config_path, "model config")
    except UnicodeDecodeError as error:
        raise FileFormatError(f"model config {config_path} is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise FileFormatError(f"model config {config_path} is not a JSON object")
    kind = payload.get("kind")
    if kind not in MODEL_KINDS:
        raise FileFormatError(f"{config_path}: unknown model kind {kind!r} (known: {list(MODEL_KINDS)})")
    try:
        schema = Schema.from_dict(payload["schema"])
        module = model_class(kind).from_config(schema, payload["model"])
    except (KeyError, TypeError, AttributeError, ValueError, OmegaConfBaseException) as error:
        # a hand-edited or foreign config.json: missing sections, wrong types, invalid options
        detail = f"missing {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise FileFormatError(f"{config_path} does not describe a valid {kind} model: {detail}") from None
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileFormatError(f"model weights not found: {weights}")
    try:
        missing, unexpected = safetensors.torch.load_model(module, str(weights), strict=False)
    except (safetensors.SafetensorError, OSError, RuntimeError) as error:
        raise FileFormatError(f"cannot load {weights}: corrupt or from another architecture ({error})") from None
    if missing or unexpected:
        raise FileFormatError(
            f"{weights} does not match {directory / CONFIG_FILE}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    broken = [name for name, tensor in module.state_dict().items()
              if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if broken:
        raise FileFormatError(f"{weights} holds NaN/inf weights ({broken[:3]}): the training that saved it diverged "
                              f"or the file was damaged; retrain the model")
    if payload.get("combined"):
        from eventseq.combined import CombinedModel

        module.combined = CombinedModel.load(directory)
    module.saved_info = payload.get("extra", {})
    return module.eval()


def load_checkpoint_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a Lightning checkpoint without unpickling arbitrary objects (weights_only=True)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt files
        raise FileFormatError(f"cannot read checkpoint {path}: {error}") from None
