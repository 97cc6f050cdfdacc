"""How much earlier a topic's own series sees a topic storm than the brand's total does.

    .venv/bin/python scripts/topic_lead_time.py [--seeds 10]

Synthetic busy brand: 15 days of 5-minute buckets, Poisson counts around a daily cycle
(mean LEVEL, ±50%), and a topic that usually has 0.3 mentions a bucket. In the last three
hours the topic's rate climbs by LEVEL/24 per bucket (the brand's usual volume again after
two hours). Both series go through the production detector with the default playbook;
prints, per LEVEL, the minutes from the storm's start to the first alert on each (median
and range over the seeds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from firebreak.config.playbook import load_playbook  # noqa: E402
from firebreak.config.settings import DEFAULT_PLAYBOOK  # noqa: E402
from firebreak.tasks.detection.detector import Detector  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = 288
STORM = 36  # buckets: three hours


def minutes_to_alert(cfg, counts: np.ndarray, start: int) -> int | None:  # noqa: ANN001
    det = Detector(cfg)
    for i, v in enumerate(counts.tolist()):
        if det.update(T0 + timedelta(minutes=5 * i), v).alert and i >= start:
            return (i - start) * 5
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args(argv)
    cfg = load_playbook(DEFAULT_PLAYBOOK).detection
    n = 15 * DAY
    start = n - STORM
    i = np.arange(n)
    for level in (60, 200):
        topic_t, brand_t = [], []
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            topic = rng.poisson(0.3 + np.where(i >= start, (i - start) * level / 24, 0.0))
            brand = rng.poisson(level * (1 + 0.5 * np.sin(2 * np.pi * i / DAY))) + topic
            topic_t.append(minutes_to_alert(cfg, topic, start))
            brand_t.append(minutes_to_alert(cfg, brand, start))
        for name, ts in (("topic series", topic_t), ("brand total", brand_t)):
            seen = [t for t in ts if t is not None]
            span = f"{min(seen)}–{max(seen)}" if seen else "-"
            print(f"level {level}/bucket, {name}: median {statistics.median(seen) if seen else '-'} min "
                  f"(range {span}), missed {len(ts) - len(seen)} of {len(ts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
