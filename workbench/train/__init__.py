"""Fine-tuning on the curated data: split, data, the loop, run records, interpretation.

torch and torchvision are imported on first use of a function or class that needs them.
"""

from workbench.train.config import TrainConfig, TrainError
from workbench.train.data import TrainingData
from workbench.train.interpret import Interpretation
from workbench.train.loop import STATUSES, RunResult, Trainer
from workbench.train.runs import Run, RunEmbedder, list_runs
from workbench.train.split import grouped_split, load_split, save_split, split_for

__all__ = [
    "STATUSES",
    "Interpretation",
    "Run",
    "RunEmbedder",
    "RunResult",
    "TrainConfig",
    "TrainError",
    "Trainer",
    "TrainingData",
    "grouped_split",
    "list_runs",
    "load_split",
    "save_split",
    "split_for",
]
