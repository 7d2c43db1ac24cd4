"""What a robustness experiment is: the countermeasures it applies and the poisoning settings it reuses."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sfumato.lab.poison.settings import PoisonConfig

SCHEMA = "sfumato.lab.robustness/1"
DEFAULT_COUNTERMEASURES = ("jpeg75", "resize0.5", "ae_roundtrip", "impress")
NONE = "none"


@dataclass
class RobustnessConfig:
    """What is measured; the poisoning settings themselves come from the main experiment's config."""

    poison: PoisonConfig
    dose: int = 100
    countermeasures: tuple[str, ...] = DEFAULT_COUNTERMEASURES
    methods: tuple[str, ...] = ("shade", "shade-robust")

    def experiment_config(self, countermeasure: str) -> PoisonConfig:
        """The poisoning settings of one countermeasure's runs (the main ones for ``none``).

        Countermeasure runs are evaluated at the main experiment's longest fine-tuning and default
        guidance only: the setting the report compares, at two thirds of a full run's cost.
        """
        if countermeasure == NONE:
            return replace(self.poison, doses=(0, self.dose), methods=self.methods)
        return replace(
            self.poison,
            doses=(0, self.dose),
            methods=self.methods,
            guidance=self.poison.guidance[:1],
            finetune_steps=self.poison.finetune_steps[-1:],
            countermeasure=countermeasure,
        )
