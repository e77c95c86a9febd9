"""Per-app traces and assessments: where MLflow's UI looks for per-row evaluation results.

Each app becomes one trace linked to the evaluation's run: a root span for the app (inputs:
its name, template and commands; outputs: its metrics) and one child span per stage with the
stage's real start and end, outcome, reason, exit code and (already redacted) log excerpt.
Each trace carries one feedback per check that applies (``build_success`` ...: true/false,
the stage's reason as rationale), the DevX scores and ``appeval_100`` as numbers, and the
suite's ``klaud_app.record()`` values, all with source CODE and named as in the report.

``app_traces`` is pure (the report in, plain dataclasses out); ``write_traces`` sends them the
way MLflow's own exporter does, but batched: one ``start_trace`` per app carrying its tags,
run link and assessments (several in flight at once to a server), then every span of every
app in a few ``log_spans`` requests
(stores without span logging, such as Databricks, get the spans as the trace's artifact, as
MLflow's exporter does there). Trace ids derive from the evaluation id and the app, and
traces are tagged with the evaluation id, so a resend replaces a partial send's traces
(``delete_evaluation_traces``) instead of adding copies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pytest_klaudbiusz.results.metrics import CHECK_STAGES, CHECKS
from pytest_klaudbiusz.tracking.runs import EVALUATION_ID_TAG  # the runs' tag, on traces too

if TYPE_CHECKING:
    import pytest
    from mlflow.tracking import MlflowClient
#: Numeric per-app scores written as feedback; the DevX ones explain themselves by the
#: criteria that failed (``details[...]``).
SCORES = {
    "local_runability_score": "local_runability",
    "deployability_score": "deployability",
    "appeval_100": None,
}
SOURCE_ID = "pytest-klaudbiusz"
APPS_PER_SPAN_REQUEST = 50  # a few hundred spans with their log excerpts per log_spans call
PREVIEW_CHARS = 1000
#: ``start_trace`` requests in flight at once to a server (as MLflow's async exporter does)
PARALLEL_REQUESTS = 8  # the request/response previews the trace list shows


@dataclass(frozen=True)
class StageSpan:
    name: str
    start_ns: int
    end_ns: int
    status: str  # "OK", "ERROR", or "UNSET" (skipped: it did not run)
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """One feedback: a check (bool), a score or a recorded custom value (number)."""

    name: str
    value: bool | float
    rationale: str | None = None


@dataclass(frozen=True)
class AppTrace:
    trace_id: str
    app_name: str
    ok: bool  # evaluated, and no check failed
    start_ns: int
    end_ns: int
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    tags: dict[str, str]
    stages: list[StageSpan] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)


def add_options(parser: pytest.Parser) -> None:
    from pytest_klaudbiusz.options import add_option

    add_option(
        parser,
        "--klaud-no-traces",
        "klaud_no_traces",
        "log no per-app traces and assessments to MLflow, only the run",
        ini_type="bool",
        action="store_true",
        default=None,
    )


def traces_wanted(config: pytest.Config) -> bool:
    from pytest_klaudbiusz.options import OptionReader

    return not OptionReader(config).flag("klaud_no_traces")


def _seconds(timestamp: str) -> float:
    moment = datetime.fromisoformat(timestamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def trace_id(evaluation_id: str | None, app: Mapping[str, Any]) -> str:
    """MLflow's ``tr-<32 hex>``; the same for the same app of the same evaluation."""
    if not evaluation_id:
        return f"tr-{uuid.uuid4().hex}"
    key = f"{evaluation_id}\0{app.get('app_dir')}\0{app['app_name']}".encode()
    return f"tr-{hashlib.sha256(key).hexdigest()[:32]}"


def _stage_spans(stages: Sequence[Mapping[str, Any]], start: float) -> list[StageSpan]:
    """Spans at the stages' recorded times; a stage without one (skipped, or a report from
    before they were recorded) starts where the previous one ended."""
    spans, cursor = [], start
    for stage in stages:
        begin = stage.get("started_at") or cursor
        end = begin + float(stage.get("duration_sec") or 0.0)
        cursor = max(cursor, end)
        outcome = stage["outcome"]
        status = {"passed": "OK", "not_applicable": "OK", "failed": "ERROR"}.get(outcome, "UNSET")
        outputs = {
            "outcome": outcome,
            "reason": stage.get("reason") or None,
            "exit_code": stage.get("exit_code"),
            "duration_sec": stage.get("duration_sec"),
            "log": stage.get("log_tail") or None,
        }
        inputs = {"command": stage["command"]} if stage.get("command") else {}
        spans.append(StageSpan(stage["name"], _ns(begin), _ns(end), status, inputs, outputs))
    return spans


def _failed_criteria(app: Mapping[str, Any], key: str | None) -> str | None:
    if key is None:
        return None
    failed = [c["criterion"] for c in (app.get("details") or {}).get(key, []) if not c["passed"]]
    return "failed: " + ", ".join(failed) if failed else "every criterion met"


def _verdicts(app: Mapping[str, Any]) -> list[Verdict]:
    metrics = app.get("metrics") or {}
    stages = {s["name"]: s for s in app.get("stages") or []}
    verdicts = []
    for check in CHECKS:
        value = metrics.get(check)
        if isinstance(value, bool):
            stage = stages.get(CHECK_STAGES[check]) or {}
            verdicts.append(Verdict(check, value, stage.get("reason") or stage.get("outcome")))
    for score, criteria in SCORES.items():
        value = metrics.get(score)
        if isinstance(value, int | float) and not isinstance(value, bool):
            verdicts.append(Verdict(score, float(value), _failed_criteria(app, criteria)))
    taken = {v.name for v in verdicts} | set(CHECKS) | set(SCORES)
    for name, value in sorted((app.get("custom_metrics") or {}).items()):
        verdicts.append(Verdict(f"custom_{name}" if name in taken else name, float(value)))
    return verdicts


def app_traces(report: Mapping[str, Any]) -> list[AppTrace]:
    """One ``AppTrace`` per app of the report (pure: no MLflow)."""
    run = report["run"]
    evaluation_id = run.get("evaluation_id")
    run_start = _seconds(run["started_at"])
    traces = []
    for app in report["apps"]:
        stages = app.get("stages") or []
        recorded = [s["started_at"] for s in stages if s.get("started_at")]
        spans = _stage_spans(stages, min(recorded, default=run_start))
        start = min((s.start_ns for s in spans), default=_ns(run_start))
        end = max((s.end_ns for s in spans), default=start)
        metrics = app.get("metrics") or {}
        ok = app.get("status") == "evaluated" and not any(metrics.get(c) is False for c in CHECKS)
        inputs = {
            "app_name": app["app_name"],
            "template_type": app.get("template_type"),
            "commands": {s["name"]: s["command"] for s in stages if s.get("command")},
        }
        outputs = {
            "status": app.get("status"),
            "metrics": metrics,
            "issues": app.get("issues") or [],
            **({"error": app["error"]} if app.get("error") else {}),
            **({"custom_metrics": app["custom_metrics"]} if app.get("custom_metrics") else {}),
        }
        tags = {
            "mlflow.traceName": app["app_name"],
            "klaud_app": app["app_name"],
            "klaud_status": str(app.get("status")),
            "template_type": str(app.get("template_type")),
            "mode": str(run.get("mode")),
        }
        if evaluation_id:
            tags[EVALUATION_ID_TAG] = str(evaluation_id)
        traces.append(
            AppTrace(
                trace_id=trace_id(evaluation_id, app),
                app_name=app["app_name"],
                ok=ok,
                start_ns=start,
                end_ns=end,
                inputs=inputs,
                outputs=outputs,
                tags=tags,
                stages=spans,
                verdicts=_verdicts(app),
            )
        )
    return traces


# --- the MLflow side -----------------------------------------------------------------------


def _b64(number: int, size: int) -> str:
    return base64.b64encode(number.to_bytes(size, "big")).decode()


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _span(trace: AppTrace, span_id: int, parent: int | None, part: AppTrace | StageSpan) -> Any:
    """An MLflow ``Span`` in its stored (JSON) form: the path MLflow reads traces back by."""
    from mlflow.entities import Span, SpanType
    from mlflow.tracing.constant import SpanAttributeKey

    if isinstance(part, AppTrace):
        name, kind, status = part.app_name, SpanType.EVALUATOR, "OK" if part.ok else "ERROR"
    else:
        name, kind, status = part.name, SpanType.TOOL, part.status
    attributes = {
        SpanAttributeKey.REQUEST_ID: _dumps(trace.trace_id),
        SpanAttributeKey.SPAN_TYPE: _dumps(kind),
        SpanAttributeKey.INPUTS: _dumps(part.inputs),
        SpanAttributeKey.OUTPUTS: _dumps(part.outputs),
    }
    if isinstance(part, StageSpan):
        attributes.update(
            {f"klaud.{k}": _dumps(part.outputs[k]) for k in ("outcome", "reason", "exit_code")}
        )
    otel_trace_id = int(trace.trace_id.removeprefix("tr-"), 16)
    return Span.from_dict(
        {
            "trace_id": _b64(otel_trace_id, 16),
            "span_id": _b64(span_id, 8),
            "parent_span_id": _b64(parent, 8) if parent else None,
            "name": name,
            "start_time_unix_nano": part.start_ns,
            "end_time_unix_nano": part.end_ns,
            "attributes": attributes,
            "status": {"code": f"STATUS_CODE_{status}", "message": ""},
            "events": [],
        }
    )


def _spans(trace: AppTrace) -> list[Any]:
    return [_span(trace, 1, None, trace)] + [
        _span(trace, 2 + i, 1, stage) for i, stage in enumerate(trace.stages)
    ]


def _trace_info(trace: AppTrace, experiment_id: str, run_id: str) -> Any:
    from mlflow.entities import (
        AssessmentSource,
        Feedback,
        TraceInfo,
        TraceLocation,
        TraceState,
    )
    from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY

    source = AssessmentSource(source_type="CODE", source_id=SOURCE_ID)
    return TraceInfo(
        trace_id=trace.trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=trace.start_ns // 1_000_000,
        execution_duration=(trace.end_ns - trace.start_ns) // 1_000_000,
        state=TraceState.OK if trace.ok else TraceState.ERROR,
        request_preview=_dumps(trace.inputs)[:PREVIEW_CHARS],
        response_preview=_dumps(trace.outputs["metrics"])[:PREVIEW_CHARS],
        trace_metadata={
            "mlflow.sourceRun": run_id,
            TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION),
        },
        tags=dict(trace.tags),
        assessments=[
            Feedback(
                name=v.name,
                value=v.value,
                rationale=v.rationale,
                source=source,
                trace_id=trace.trace_id,
            )
            for v in trace.verdicts
        ],
    )


def write_traces(uri: str, experiment_id: str, run_id: str, traces: Sequence[AppTrace]) -> None:
    """Create the traces, linked to the run, with their assessments and spans; raises what
    MLflow raises (the caller turns it into a ``TrackingError``)."""
    from mlflow.entities import TraceData
    from mlflow.tracing.client import TracingClient

    client = TracingClient(uri)
    sent = [_trace_info(trace, experiment_id, run_id) for trace in traces]
    databricks = uri == "databricks" or uri.startswith("databricks:")
    if databricks or uri.startswith(("http://", "https://")):  # overlap the round trips
        with ThreadPoolExecutor(PARALLEL_REQUESTS) as pool:
            created = list(pool.map(client.start_trace, sent))
    else:  # one database: requests in parallel would only wait for its lock
        created = [client.start_trace(info) for info in sent]
    infos = {}
    for info, stored in zip(sent, created, strict=True):
        if len(stored.assessments) < len(info.assessments):  # a store that drops them
            for assessment in info.assessments:
                client.log_assessment(info.trace_id, assessment)
        infos[info.trace_id] = stored
    spans = {trace.trace_id: _spans(trace) for trace in traces}
    if not databricks:  # Databricks takes spans only as artifacts (or UC tables)
        try:
            ids = list(spans)
            for i in range(0, len(ids), APPS_PER_SPAN_REQUEST):
                batch = [s for tid in ids[i : i + APPS_PER_SPAN_REQUEST] for s in spans[tid]]
                client.log_spans(experiment_id, batch)
            return
        except NotImplementedError:  # a store or server without span logging (< 3.4)
            pass
    for trace_id_, trace_spans in spans.items():
        client._upload_trace_data(infos[trace_id_], TraceData(spans=trace_spans))


def delete_evaluation_traces(client: MlflowClient, experiment_id: str, evaluation_id: str) -> int:
    """Delete the traces a partial send of the evaluation left; returns how many."""
    found: list[str] = []
    page_token = None
    while True:
        page = client.search_traces(
            locations=[experiment_id],
            filter_string=f"tag.{EVALUATION_ID_TAG} = '{evaluation_id}'",
            max_results=500,
            include_spans=False,
            page_token=page_token,
        )
        found += [t.info.trace_id for t in page]
        page_token = page.token
        if not page_token:
            break
    deleted = 0
    for i in range(0, len(found), 100):
        deleted += client.delete_traces(experiment_id, trace_ids=found[i : i + 100])
    return deleted
