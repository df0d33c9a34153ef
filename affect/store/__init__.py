"""The prepared store: face crops, landmarks and spectrograms in memory-mapped shards + a labels table.

- :mod:`affect.store.format`: the on-disk layout, the job / header records and the commit protocol
  (no torch, no pandas: imported by everything else here);
- :mod:`affect.store.writer`: what ``affect prepare`` runs (the driver, the watchdog, the report),
  with :mod:`affect.store.manifest` (manifest I/O) and :mod:`affect.store.shard` (one shard's work);
- :mod:`affect.store.parts` and :mod:`affect.store.merge`: ``--shard I/N`` parts and ``affect prepare merge``;
- :mod:`affect.store.reader`: the datasets that read a store at training time;
- :mod:`affect.store.cli`: the ``affect prepare`` command line (jsonargparse).

The data layer (``affect.data``) imports only :mod:`affect.store.reader` (and through it the format).
"""
