"""Replay the production detector over recorded `timestamp,value` series and score it with NAB."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from firebreak.config.playbook import Detection
from firebreak.errors import FirebreakError
from firebreak.tasks.detection.detector import Decision, Detector
from firebreak.tasks.detection.nab import PROFILES, normalise, score_alerts, window_indices


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


def bucket_minutes_of(ts: Sequence[datetime]) -> int | None:
    """The series' bucket length: the median step between rows, in minutes (1 to 60)."""
    if len(ts) < 2:
        return None
    steps = sorted((b - a).total_seconds() for a, b in zip(ts, ts[1:]))
    minutes = round(steps[len(steps) // 2] / 60)
    return min(max(minutes, 1), 60) if minutes >= 1 else None


def run_detector(series: Series, cfg: Detection) -> list[Decision]:
    """Online: each row's decision sees only the rows before it."""
    det = Detector(cfg, bucket_minutes=bucket_minutes_of(series.timestamps))
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


def _load_nab(folder: Path) -> tuple[list[str], dict[str, list[list[str]]]]:
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
    return names, labels


def nab_series(folder: Path) -> list[tuple[str, Series, list[tuple[int, int]]]]:
    """Every series listed in ``folder/windows.json``: (file name, series, labelled windows as
    (first, last) row indices)."""
    folder = Path(folder)
    names, labels = _load_nab(folder)
    out = []
    for name in names:
        series = read_series(folder / name)
        spans = [(_parse_ts(a), _parse_ts(b)) for a, b in labels[name]]
        out.append((name, series, window_indices(series.timestamps, spans)))
    return out


def _score_file(series: Series, wins: list[tuple[int, int]], cfg: Detection) -> dict:
    alerts = [d.alert for d in run_detector(series, cfg)]
    entry: dict = {"rows": len(alerts), "alerts": sum(alerts), "windows": len(wins)}
    for pname, profile in PROFILES.items():
        s = score_alerts(alerts, wins, profile)
        entry[pname] = {
            "raw": s.score,
            "normalised": normalise(s.score, len(wins), profile) if wins else None,
            "tp": s.tp,
            "fn": s.fn,
            "fp": s.fp,
        }
    return entry


def _corpus(entries: list[dict]) -> dict[str, float]:
    n_windows = sum(e["windows"] for e in entries)
    if not n_windows:
        return {}
    return {p: normalise(sum(e[p]["raw"] for e in entries), n_windows, PROFILES[p]) for p in PROFILES}


def backtest_nab(
    folder: Path,
    cfg: Detection,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Run every CSV listed in ``folder/windows.json`` and score it under the three NAB profiles.

    Returns ``{"files": {name: {"alerts", "rows", "windows", profile: {"raw", "normalised",
    "tp", "fn", "fp"}}}, "corpus": {profile: normalised score}, "windows": n}``.
    """
    files: dict[str, dict] = {}
    nab = nab_series(folder)
    for k, (name, series, wins) in enumerate(nab):
        files[name] = _score_file(series, wins, cfg)
        if progress is not None:
            progress(k + 1, len(nab))
    entries = list(files.values())
    return {"files": files, "corpus": _corpus(entries), "windows": sum(e["windows"] for e in entries)}


# The setting a user would tune for their own data; everything else stays at the playbook's.
# Cool-downs of 60, 120 and 240 minutes scored the same on the shared series (the detector
# also waits for a storm to subside), so only the playbook's is tried by default.
LOO_THRESHOLDS = tuple(round(3.0 + 0.25 * i, 2) for i in range(15))  # 3.0, 3.25, … 6.5


def backtest_nab_leave_one_out(
    folder: Path,
    cfg: Detection,
    thresholds: tuple[float, ...] = LOO_THRESHOLDS,
    cooldowns: tuple[int, ...] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The score on series the settings never saw: for each series, per profile, the
    (volume_threshold, cooldown_minutes) pair that scores best on all the *other* series is
    chosen, and the held-out series is scored with it. The corpus score sums those held-out
    scores, so no series is judged with settings fitted to it.

    Returns ``{"corpus": {profile: score}, "files": {name: {profile: {"threshold",
    "cooldown_minutes", "normalised"}}}, "grid": n}``.
    """
    nab = {name: (series, wins) for name, series, wins in nab_series(folder)}
    names = list(nab)
    if len(names) < 2:
        raise FirebreakError(f"{folder}: leave-one-out needs at least two series, found {len(names)}")
    grid = [(t, c) for t in thresholds for c in (cooldowns or (cfg.cooldown_minutes,))]
    scored: dict[tuple[float, int], dict[str, dict]] = {}
    for k, (t, c) in enumerate(grid):
        setting = cfg.model_copy(update={"volume_threshold": t, "cooldown_minutes": c})
        scored[(t, c)] = {n: _score_file(*nab[n], setting) for n in names}
        if progress is not None:
            progress(k + 1, len(grid))
    series_windows = {n: scored[grid[0]][n]["windows"] for n in names}  # the same at every grid point
    held_out: dict[str, list[dict]] = {p: [] for p in PROFILES}
    files: dict[str, dict] = {n: {} for n in names}
    for held in names:
        rest = [n for n in names if n != held]
        scorable = any(series_windows[n] for n in rest)  # no window elsewhere: nothing to choose by
        for p in PROFILES:
            # The normalised corpus score grows with the raw sum, so the sum ranks the grid;
            # max() keeps the first of equals: the lower threshold, then the shorter cool-down.
            best = max(grid, key=lambda g: sum(scored[g][n][p]["raw"] for n in rest) if scorable else 0.0)
            entry = scored[best][held]
            held_out[p].append(entry)
            files[held][p] = {"threshold": best[0], "cooldown_minutes": best[1], "normalised": entry[p]["normalised"]}
    corpus = {p: c[p] for p in PROFILES if (c := _corpus(held_out[p]))}
    return {"corpus": corpus, "files": files, "grid": len(grid)}
