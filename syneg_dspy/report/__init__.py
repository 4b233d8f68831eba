"""The per-run report (Markdown + self-contained HTML)."""

from syneg_dspy.report.report import write_report

__all__ = ["write_report"]
