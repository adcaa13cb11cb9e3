"""Task kinds the engine runs; each module exposes ``KIND`` (see ``train.api``)."""
