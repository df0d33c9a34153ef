"""The data module of a corpus released as videos that parsing decodes into frame folders."""

from __future__ import annotations

from affect.data.datamodule import CorpusDataModule


class VideoCorpusDataModule(CorpusDataModule):
    """A :class:`~affect.data.datamodule.CorpusDataModule` whose manifest parser extracts the frames of
    the corpus's videos when ``self.extract`` is True (Aff-Wild, DISFA, SEWA, OMG-Emotion)."""

    extract: bool = True

    def prepare_data(self) -> None:
        """Decode the videos into frame folders once, on one process per node (Lightning calls this
        on local rank 0 before ``setup``); the other ranks then parse against the completed cache."""
        if self.extract:
            self.manifest  # noqa: B018 (parsing extracts the frames)
