"""The report as people read it: numbers formatted once (percentages, intervals, deltas with their
direction), bar and histogram geometry for the charts. The page and the exported HTML file share it, so
both show the same headline numbers."""

from __future__ import annotations

from typing import Any


def number(value: float | None, percent: bool) -> str:
    if value is None:
        return "–"
    if percent:
        return f"{100 * value:.1f}%"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _interval(summary: dict[str, Any] | None, percent: bool) -> str:
    if not summary:
        return ""
    return f"{number(summary['low'], percent)} – {number(summary['high'], percent)}"


def _delta(delta: dict[str, Any] | None, m: dict[str, Any]) -> dict[str, Any] | None:
    if not delta:
        return None
    percent = m["percent"]
    mean = delta["mean"]
    text = f"{100 * mean:+.1f} pts" if percent else f"{mean:+.3g}"
    significant = delta["low"] > 0 or delta["high"] < 0
    good = None
    if m.get("higher_is_better") is not None and significant:
        good = (mean > 0) == bool(m["higher_is_better"])
    ci = (
        f"{100 * delta['low']:+.1f} – {100 * delta['high']:+.1f}"
        if percent
        else f"{delta['low']:+.3g} – {delta['high']:+.3g}"
    )
    return {"text": text, "ci": ci, "good": good, "significant": significant}


def _width(value: float, scale: float) -> float:
    """A value as % of a bar chart's width (`scale` fills it), clamped to the chart."""
    return max(0.0, min(100.0, 100 * value / scale)) if scale > 0 else 0.0


def headline_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: each model's value and 95% interval, and each candidate's change against the
    baseline with its interval (green or red only when the interval excludes zero)."""
    labels = [m["label"] for m in report.get("models", [])]
    rows = []
    for m in report.get("metrics", []):
        values = m.get("values") or {}
        tops = [v["high"] for v in values.values() if v] or [1.0]
        scale = 1.0 if m["percent"] else (max(tops) or 1.0)
        cells = []
        for label in labels:
            v = values.get(label)
            low, high = (_width(v["low"], scale), _width(v["high"], scale)) if v else (0.0, 0.0)
            cells.append({
                "model": label,
                "value": number(v["mean"], m["percent"]) if v else "–",
                "ci": _interval(v, m["percent"]),
                "n": v["n"] if v else 0,
                "bar": _width(v["mean"], scale) if v else 0.0,
                "low": low, "high": high, "span": high - low,
            })  # fmt: skip
        deltas = [
            {"model": label, **(_delta((m.get("deltas") or {}).get(label), m) or {})} for label in labels[1:]
        ]
        rows.append({
            "key": m["key"], "label": m["label"], "kind": m["kind"], "cells": cells, "deltas": deltas,
            "problem": m.get("problem"), "primary": m["key"] == report.get("primary"),
            "direction": {True: "higher is better", False: "lower is better"}.get(m.get("higher_is_better"), ""),
        })  # fmt: skip
    return rows


def distributions(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-metric histograms of the per-sample scores, one series per model, as bar heights in %."""
    out = []
    for m in report.get("metrics", []):
        dist = m.get("distribution")
        if not dist or m["kind"] not in ("grader", "text", "judge", "loss", "length"):
            continue
        counts = dist.get("counts") or {}
        top = max((c for series in counts.values() for c in series), default=0)
        if not top:
            continue
        low, high = dist["low"], dist["high"]
        series = [
            {"model": label, "bars": [{"count": c, "height": round(100 * c / top, 1)} for c in values]}
            for label, values in counts.items()
        ]
        out.append({
            "key": m["key"], "label": m["label"], "series": series,
            "low": number(low, m["percent"]), "high": number(high, m["percent"]),
        })  # fmt: skip
    return out


def pairwise_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, p in (report.get("pairwise") or {}).items():
        rate = p.get("win_rate") or {}
        rows.append({
            "model": label, "win": number(p["win"], True), "tie": number(p["tie"], True), "loss": number(p["loss"], True),
            "win_w": 100 * p["win"], "tie_w": 100 * p["tie"], "loss_w": 100 * p["loss"],
            "total": number(p["win"] + p["tie"] + p["loss"], True) if p.get("judged") else "–",
            "disagreement": number(p["disagreement"], True), "judged": p.get("judged", 0), "unjudged": p.get("unjudged", 0),
            "win_rate": number(rate.get("mean"), True) if rate else "–", "win_rate_ci": _interval(rate or None, True),
            "problem": p.get("problem"),
        })  # fmt: skip
    return rows


def context(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "report": report,
        "headline": headline_rows(report),
        "distributions": distributions(report),
        "pairwise": pairwise_rows(report),
        "confidence": round(100 * float(report.get("confidence", 0.95))),
    }
