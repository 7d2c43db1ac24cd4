"""The lab's command line: which latent space the protector's encoder-only attacks aim at by default."""

from __future__ import annotations

from sfumato.cli import build_parser
from sfumato.lab.cli import _protector_encoders


def _args(*argv: str):
    return build_parser().parse_args(["lab", *argv])


def test_the_protector_attacks_the_latent_space_of_the_generator_it_holds():
    """White- and grey-box: the victim's own space; black-box: the surrogate's, never the victim's
    private encoder (which the protector does not have); an explicit list wins."""
    assert _protector_encoders(_args("poison")) == ("flux2",)
    sd = "/lab/sd-class-autoencoder/checkpoint.pt"
    assert _protector_encoders(_args("mimicry", "--encoder", sd)) == (sd,)
    private = "/lab/private-autoencoder/checkpoint.pt"
    black = _args("mimicry", "--encoder", private, "--surrogate-encoder", "flux2")
    assert _protector_encoders(black) == ("flux2",)
    assert _args("mimicry", "--cloak-encoders", "flux2,sana").cloak_encoders == ("flux2", "sana")
    assert _args("poison", "--poison-encoders", "sana").poison_encoders == ("sana",)
