"""Comparison of a shadow test: per-variant metrics, prediction agreement, a verdict, reports.

Pure computation and rendering: ``compare`` reads only the pairs, metrics and experiment it is
handed (no files, no network), so the CLI and a server route can both call it::

    comparison = compare(pairs, metrics, experiment, CompareOptions(selector="labels"))
    print(render_text(comparison))
    Path("report.html").write_text(render_html(comparison))
    comparison.to_json()
"""

from shadowlab.analysis.agreement import (
    Agreement,
    Confusion,
    Example,
    Failure,
    LabelSummary,
    NumericSummary,
)
from shadowlab.analysis.comparison import Comparison, ExperimentInfo, compare, experiment_info
from shadowlab.analysis.htmlreport import render_html
from shadowlab.analysis.inputs import (
    CompareOptions,
    Guardrails,
    MinutePoint,
    ShadowCopies,
    VariantOperational,
)
from shadowlab.analysis.operational import Estimate, Rate, VariantFigures
from shadowlab.analysis.selector import Selector, SelectorError
from shadowlab.analysis.stats import KSResult
from shadowlab.analysis.textreport import render_text
from shadowlab.analysis.verdict import FAIL, INSUFFICIENT, PASS, GuardrailResult, Verdict

__all__ = [
    "FAIL",
    "INSUFFICIENT",
    "PASS",
    "Agreement",
    "CompareOptions",
    "Comparison",
    "Confusion",
    "Estimate",
    "Example",
    "ExperimentInfo",
    "Failure",
    "GuardrailResult",
    "Guardrails",
    "KSResult",
    "LabelSummary",
    "MinutePoint",
    "NumericSummary",
    "Rate",
    "Selector",
    "SelectorError",
    "ShadowCopies",
    "VariantFigures",
    "VariantOperational",
    "Verdict",
    "compare",
    "experiment_info",
    "render_html",
    "render_text",
]
