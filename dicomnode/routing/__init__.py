"""dicomnode.routing: declarative routes matched against series headers, and ``route explain``.

Typical use by the config loader and the job engine::

    routes = compile_routes(raw_routes, pipelines=pipeline_names, destinations=destination_names)
    facts = SeriesFacts.from_header(header, instances=n, calling_ae=ae)
    for route in routes:
        if route.level is Level.SERIES and route.match(facts).matched:
            ...  # queue a job
    study = route.match_study(all_series_of_the_study)  # level: study, once the study is stable

and by ``dicomnode route explain``::

    result = scan(path)
    rows = evaluate(result.series, routes)
    print(render_table(rows, skipped=len(result.skipped)))
"""

from dicomnode.routing.compile import compile_condition, compile_routes, compile_when
from dicomnode.routing.conditions import Condition, Observed
from dicomnode.routing.explain import ExplainRow, evaluate, explain, render_json, render_table
from dicomnode.routing.facts import SeriesFacts
from dicomnode.routing.route import Clause, Failure, Match, NamedInput, Route, StudyMatch
from dicomnode.routing.scan import Scan, SkippedFile, scan
from dicomnode.routing.schema import (
    SPECIAL_KEYS,
    ConditionSpec,
    Level,
    NotCondition,
    Output,
    PresentCondition,
    Priority,
    RangeCondition,
    RegexCondition,
    RouteSpec,
)

__all__ = [
    "SPECIAL_KEYS",
    "Clause",
    "Condition",
    "ConditionSpec",
    "ExplainRow",
    "Failure",
    "Level",
    "Match",
    "NamedInput",
    "NotCondition",
    "Observed",
    "Output",
    "PresentCondition",
    "Priority",
    "RangeCondition",
    "RegexCondition",
    "Route",
    "RouteSpec",
    "Scan",
    "SeriesFacts",
    "SkippedFile",
    "StudyMatch",
    "compile_condition",
    "compile_routes",
    "compile_when",
    "evaluate",
    "explain",
    "render_json",
    "render_table",
    "scan",
]
