"""Widget views. Each is a VBox over one core object, which it exposes as an attribute."""

from workbench.views.augment import AugmentTuner
from workbench.views.boxes import BoxLabeler
from workbench.views.browser import DataBrowser
from workbench.views.issues import IssueReview
from workbench.views.labeler import Labeler
from workbench.views.review import ReviewQueue
from workbench.views.train import TrainingMonitor

__all__ = [
    "AugmentTuner",
    "BoxLabeler",
    "DataBrowser",
    "IssueReview",
    "Labeler",
    "ReviewQueue",
    "TrainingMonitor",
]
