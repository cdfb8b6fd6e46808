"""Which devices a run may use: checked before any data is read, with the fix in the message.

The choices depend on the machine (a GPU or not), so they cannot be declared beside the config
fields as the ranges are (`eventseq.config.option`); `check_trainer_devices` and `check_device`
are the one place that knows them, for training and for inference.
"""

from __future__ import annotations

import torch

from eventseq.errors import ConfigError

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
# Lightning's precision strings (lightning.fabric.connector._PRECISION_INPUT_STR and the aliases it accepts)
PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", "64",
              "transformer-engine", "transformer-engine-float16")


def _gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_trainer_devices(accelerator: str, devices: int, strategy: str, precision: str,
                          prefix: str = "trainer.") -> None:
    """Refuse an accelerator, device count, strategy or precision this machine or Lightning cannot run.

    Raises:
        ConfigError: naming the key, the value, what is allowed here and the fix.
    """
    from lightning.pytorch.strategies import StrategyRegistry

    if accelerator not in ACCELERATORS:
        raise ConfigError(f"{prefix}accelerator={accelerator!r}: expected one of {list(ACCELERATORS)}")
    if accelerator in ("gpu", "cuda") and _gpus() == 0:
        raise ConfigError(f"{prefix}accelerator={accelerator}, but this machine has no CUDA GPU that torch can use "
                          f"(torch {torch.__version__}): use {prefix}accelerator=cpu")
    if accelerator in ("gpu", "cuda") and devices > _gpus():
        raise ConfigError(f"{prefix}devices={devices}, but this machine has {_gpus()} GPU(s): use "
                          f"{prefix}devices={_gpus()} or fewer")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{prefix}accelerator=mps, but Apple's MPS is not available here: use {prefix}accelerator=cpu")
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if strategy not in strategies:
        raise ConfigError(f"{prefix}strategy={strategy!r}: expected one of {strategies}")
    if str(precision) not in PRECISIONS:
        raise ConfigError(f"{prefix}precision={precision!r}: expected one of {list(PRECISIONS)}")


def check_device(device: str, option: str = "device") -> torch.device:
    """The torch device `device` names, refused (ConfigError naming `option` and the fix) if this machine lacks it."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{option}={device!r}: not a torch device; expected cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if _gpus() == 0:
            raise ConfigError(f"{option}={device}, but this machine has no CUDA GPU that torch can use: use {option}=cpu")
        if parsed.index is not None and parsed.index >= _gpus():
            raise ConfigError(f"{option}={device}, but this machine has {_gpus()} GPU(s) (cuda:0 to cuda:{_gpus() - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{option}={device}, but Apple's MPS is not available here: use {option}=cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{option}={device!r}: expected cpu, cuda, cuda:N or mps")
    return parsed
