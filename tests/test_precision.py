"""bf16 only where the CPU makes it fast: the choice, its override, and where it is applied."""

from __future__ import annotations

import pytest
import torch

from sfumato.encoders import precision as P
from sfumato.encoders.ensemble import Ensemble


@pytest.fixture
def forced(monkeypatch):
    """Force ``SFUMATO_BF16`` to a value for one test; the cached choice is recomputed."""

    def force(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(P.ENV, raising=False)
        else:
            monkeypatch.setenv(P.ENV, value)
        P.cpu_bf16.cache_clear()

    yield force
    P.cpu_bf16.cache_clear()


class Recorder(torch.nn.Module):
    """An encoder that notes whether it ran under CPU bf16 autocast."""

    name, multiple = "recorder", 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 8, stride=8)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.is_autocast_enabled("cpu"))
        return self.conv(x)


def test_the_override_forces_either_and_rejects_anything_else(forced):
    forced("1")
    assert P.cpu_bf16() and P.precision() == "bf16" and P.precision("cuda") == "fp32"
    forced("0")
    assert not P.cpu_bf16() and P.precision() == "fp32"
    forced("yes")
    with pytest.raises(ValueError, match="SFUMATO_BF16 must be 0 or 1"):
        P.cpu_bf16()


def test_without_override_bf16_follows_onednn(forced):
    forced(None)
    assert P.cpu_bf16() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.parametrize("value", ["0", "1"])
def test_the_ensemble_takes_gradients_in_bf16_only_where_chosen(forced, value):
    forced(value)
    enc = Recorder()
    ensemble = Ensemble([enc])
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    (z,) = ensemble.encode(x, grad=True)
    assert z.dtype == torch.float32
    ensemble.encode(x)  # no gradient: never bf16
    assert enc.seen == [value == "1", False]
    Ensemble([enc], bf16=False).encode(x, grad=True)  # asked not to
    assert enc.seen[-1] is False


def test_lab_settings_record_fp32_and_keep_bf16_folders_apart(forced, tmp_path):
    from sfumato.lab.storage import merge_folder_settings, with_precision, without_precision

    forced("1")
    assert with_precision({"seeds": [0]}) == {"seeds": [0]}  # as folders made before the setting
    merge_folder_settings(tmp_path, with_precision({"seeds": [0]}), {"seeds": int})
    forced("0")
    settings = with_precision({"seeds": [1]})
    assert settings == {"seeds": [1], "precision": "fp32"} and without_precision(settings) == {"seeds": [1]}
    with pytest.raises(ValueError, match="precision"):
        merge_folder_settings(tmp_path, settings, {"seeds": int})
