"""The lab: proof (or refutation) that a protection works against a generator trained on protected images.

Rooms, one job each (``docs/architecture.md`` draws how they connect):

- :mod:`sfumato.lab.data`: CIFAR-10, image folders and captions; the mimicry experiment's artists.
- :mod:`sfumato.lab.models`: the latent-diffusion generator and its training, the text encoder, the
  latent spaces and their cache, the base generator.
- :mod:`sfumato.lab.judging`: classifier judges, the style judge, evaluation, Fréchet distances, scoring.
- :mod:`sfumato.lab.poison`, :mod:`sfumato.lab.mimicry`, :mod:`sfumato.lab.robustness`: one experiment
  each, with its settings, runs, figures and report.
- Shared by the experiments: :mod:`sfumato.lab.finetune_runs` (fine-tune, sample, keep the images),
  :mod:`sfumato.lab.storage` (atomic files, settings merge), :mod:`sfumato.lab.merging` (runs carried over
  from another workdir's results), :mod:`sfumato.lab.figures` (grids, plots, table cells);
  :mod:`sfumato.lab.cli` is the ``sfumato lab`` command.
"""
