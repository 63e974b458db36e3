"""The two ways loading a dataset fails, each with a message meant to be printed as it is.

Commands print either as one line and exit with status 2 (see
:func:`harness.datasets.flags.dataset_from_args`); neither is a bug, so neither deserves a
traceback.

Examples
--------
>>> str(DatasetError("interactions.csv has no column 'user'; its columns: user_id, item_id"))
"interactions.csv has no column 'user'; its columns: user_id, item_id"
>>> issubclass(DatasetNotFound, FileNotFoundError)
True
"""
from __future__ import annotations


class DatasetError(ValueError):
    """A dataset description that cannot be used: unknown name, missing column, bad option."""


class DatasetNotFound(FileNotFoundError):
    """A dataset's files are not where the description or the data directory says."""
