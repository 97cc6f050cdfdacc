"""Replay the production detector over recorded `timestamp,value` series and score it with NAB."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from firebreak.config.playbook import Detection
from firebreak.errors import FirebreakError
from firebreak.tasks.detect import Decision, Detector
from firebreak.tasks.nab import PROFILES, normalise, score_alerts, window_indices


@dataclass(frozen=True, slots=True)
class Series:
    timestamps: list[datetime]
    values: list[int]


def _parse_ts(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise FirebreakError(f"not a timestamp: {text!r}") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def read_series(path: Path) -> Series:
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
                raise FirebreakError(f"{path}: expected a header with timestamp,value")
            ts: list[datetime] = []
            vals: list[int] = []
            for lineno, row in enumerate(reader, start=2):
                try:
                    vals.append(int(round(float(row["value"]))))
                except (TypeError, ValueError):
                    raise FirebreakError(f"{path}:{lineno}: value {row['value']!r} is not a number") from None
                ts.append(_parse_ts(row["timestamp"]))
    except FileNotFoundError:
        raise FirebreakError(f"{path}: no such file") from None
    return Series(ts, vals)


def _infer_bucket_minutes(ts: list[datetime]) -> int | None:
    if len(ts) < 2:
        return None
    steps = sorted((b - a).total_seconds() for a, b in zip(ts, ts[1:]))
    minutes = round(steps[len(steps) // 2] / 60)
    return min(max(minutes, 1), 60) if minutes >= 1 else None


def run_detector(series: Series, cfg: Detection) -> list[Decision]:
    """Online: each row's decision sees only the rows before it."""
    det = Detector(cfg, bucket_minutes=_infer_bucket_minutes(series.timestamps))
    return [det.update(t, v) for t, v in zip(series.timestamps, series.values)]


def backtest_file(series_csv: Path, out_csv: Path, cfg: Detection) -> int:
    """Write `timestamp,value,alert,score` for every row; return the number of alerts."""
    series = read_series(Path(series_csv))
    decisions = run_detector(series, cfg)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value", "alert", "score"])
        for t, v, d in zip(series.timestamps, series.values, decisions):
            w.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), v, int(d.alert), f"{d.score:.4f}"])
    return sum(d.alert for d in decisions)


def backtest_nab(
    folder: Path,
    cfg: Detection,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Run every CSV listed in ``folder/windows.json`` and score it under the three NAB profiles.

    Returns ``{"files": {name: {"alerts", "rows", "windows", profile: {"raw", "normalised",
    "tp", "fn", "fp"}}}, "corpus": {profile: normalised score}, "windows": n}``.
    """
    folder = Path(folder)
    try:
        labels: dict[str, list[list[str]]] = json.loads((folder / "windows.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FirebreakError(f"{folder}: no windows.json") from None
    except json.JSONDecodeError as exc:
        raise FirebreakError(f"{folder}/windows.json: not valid JSON ({exc})") from None
    names = sorted(n for n in labels if (folder / n).is_file())
    if not names:
        raise FirebreakError(f"{folder}: none of the series in windows.json is present")
    files: dict[str, dict] = {}
    totals = {p: 0.0 for p in PROFILES}
    n_windows = 0
    for k, name in enumerate(names):
        series = read_series(folder / name)
        alerts = [d.alert for d in run_detector(series, cfg)]
        wins = window_indices(series.timestamps, [(_parse_ts(a), _parse_ts(b)) for a, b in labels[name]])
        entry: dict = {"rows": len(alerts), "alerts": sum(alerts), "windows": len(wins)}
        for pname, profile in PROFILES.items():
            s = score_alerts(alerts, wins, profile)
            totals[pname] += s.score
            entry[pname] = {
                "raw": s.score,
                "normalised": normalise(s.score, len(wins), profile) if wins else None,
                "tp": s.tp,
                "fn": s.fn,
                "fp": s.fp,
            }
        n_windows += len(wins)
        files[name] = entry
        if progress is not None:
            progress(k + 1, len(names))
    corpus = {p: normalise(totals[p], n_windows, PROFILES[p]) for p in PROFILES} if n_windows else {}
    return {"files": files, "corpus": corpus, "windows": n_windows}
