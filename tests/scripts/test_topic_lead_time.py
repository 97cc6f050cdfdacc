"""scripts/topic_lead_time.py: the topic's own series alerts earlier than the brand total."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import topic_lead_time  # noqa: E402


def test_the_topic_series_sees_the_storm_first(capsys) -> None:  # type: ignore[no-untyped-def]
    assert topic_lead_time.main(["--seeds", "2"]) == 0
    got = {(int(lv), name): float(med) for lv, name, med in
           re.findall(r"level (\d+)/bucket, (topic series|brand total): median ([\d.]+) min", capsys.readouterr().out)}
    assert len(got) == 4
    for level in (60, 200):
        assert got[(level, "topic series")] < got[(level, "brand total")]
