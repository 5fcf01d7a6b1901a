"""Widget views. Each is a VBox over one core object, which it exposes as an attribute."""

from workbench.views.browser import DataBrowser
from workbench.views.issues import IssueReview

__all__ = ["DataBrowser", "IssueReview"]
