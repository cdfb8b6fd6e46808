"""The self-supervised methods, by name: the one list every other place follows.

A method is a file `objectives/<file>.py` holding its objective (an nn.Module, see
`objectives/selfsupervised.py`) and its config dataclass. This registry names them by import path,
so reading it loads no model code (`saved.py` knows the model kinds from it without importing torch
objectives). From it follow:

- `SelfSupervisedModule(schema, method)`: the objective and config classes (`Method.classes`);
- `PretrainConfig`: one config section per method, named like it (`vicreg.invariance_weight=10`);
- saved models: a self-supervised model's kind is its method's name;
- the `method=` presets in `eventseq/configs/method/` (a test holds them equal to this list).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from eventseq.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Method:
    """Where a method's classes live, and what the rest of eventseq needs to know about it.

    Attributes:
        module: the module of its objective and config, e.g. "eventseq.objectives.coles".
        objective: the objective class's name in `module`.
        config: the config dataclass's name in `module`.
        arguments: extra keyword arguments of the objective (nsp and sop share one class).
        batch_statistics: the loss standardizes over a batch (a batch of one entity gives NaN).
    """

    module: str
    objective: str
    config: str
    arguments: dict[str, Any] = field(default_factory=dict)
    batch_statistics: bool = False

    def classes(self) -> tuple[Any, type]:
        """(objective class, config class), imported on first use."""
        module = importlib.import_module(self.module)
        return getattr(module, self.objective), getattr(module, self.config)


METHODS: dict[str, Method] = {
    "coles": Method("eventseq.objectives.coles", "ColesObjective", "ColesConfig"),
    "vicreg": Method("eventseq.objectives.vicreg", "VicregObjective", "VicregConfig", batch_statistics=True),
    "barlow_twins": Method("eventseq.objectives.barlow_twins", "BarlowTwinsObjective", "BarlowTwinsConfig",
                           batch_statistics=True),
    "cpc": Method("eventseq.objectives.cpc", "CpcObjective", "CpcConfig"),
    "mlm": Method("eventseq.objectives.mlm", "MlmObjective", "MlmConfig"),
    "rtd": Method("eventseq.objectives.rtd", "RtdObjective", "RtdConfig"),
    "gpt": Method("eventseq.objectives.gpt", "GptObjective", "GptConfig"),
    "nsp": Method("eventseq.objectives.nsp_sop", "PairTaskObjective", "PairTaskConfig", {"task": "nsp"}),
    "sop": Method("eventseq.objectives.nsp_sop", "PairTaskObjective", "PairTaskConfig", {"task": "sop"}),
    "tabformer": Method("eventseq.objectives.tabformer", "TabFormerObjective", "TabFormerConfig"),
    "word2vec": Method("eventseq.objectives.word2vec", "Word2VecObjective", "Word2VecConfig"),
}


def method_named(method: str) -> Method:
    """The registry entry of `method`; ConfigError listing the methods otherwise."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r}: available methods: {', '.join(METHODS)}{did_you_mean(method, METHODS)}")
    return METHODS[method]


def method_sections() -> list[tuple[str, type, Any]]:
    """One config section per method, as `dataclasses.make_dataclass` takes fields: (name, type, field)."""
    sections = []
    for name, method in METHODS.items():
        config_class = method.classes()[1]
        sections.append((name, config_class, field(default_factory=config_class)))
    return sections
