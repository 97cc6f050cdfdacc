"""Contract tests across the whole suite (pytest plugin: `pytest_plugins = ["tests.contract"]`).

Every HTTP exchange any sandbox serves during the run is recorded (firebreak/sandbox/
recorder.py) and, at the end of each test, checked against the platform's published spec
(tests/spec_check.py):

- requests a *connector* made (User-Agent `firebreak/…`): path, method, parameters, body;
  Bluesky records against the lexicons; LinkedIn's documented paths and versioning headers.
  Requests a test sends by hand (plain httpx, to probe the sandbox's refusals) are not the
  connectors' and are not judged, but are counted as such;
- every 2xx JSON response of X and Mastodon against the OpenAPI response schema.

The terminal summary reports the counts per platform; any exchange that does not fit fails
the session (exit status 1) and is listed with the test that made it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from firebreak.sandbox import recorder
from firebreak.sandbox.recorder import Exchange

from tests import specs
from tests.spec_check import check_request, check_response

CONNECTOR_AGENT = "firebreak/"
SHOW = 30  # violations listed in full; the rest are counted


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)
    foreign: Counter[str] = field(default_factory=Counter)  # sent by tests by hand, not judged
    violations: list[tuple[str, str, str]] = field(default_factory=list)  # (test, platform, problem)


_tally = Tally()


def check(exchanges: list[Exchange], tally: Tally = _tally) -> None:
    for ex in exchanges:
        where = ex.test or "(outside any test)"
        if ex.user_agent.startswith(CONNECTOR_AGENT):
            tally.requests[ex.platform] += 1
            for problem in check_request(ex):
                tally.violations.append((where, ex.platform, f"request {problem}"))
        else:
            tally.foreign[ex.platform] += 1
        checked, problems = check_response(ex)
        if checked:
            tally.responses[ex.platform] += 1
            for problem in problems:
                tally.violations.append((where, ex.platform, f"response {problem}"))


# -- pytest hooks -----------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    if not specs.available():
        if specs.REQUIRED:
            raise pytest.UsageError(specs.missing_message(specs.SPECS) + " (FIREBREAK_REQUIRE_SPECS=1)")
        return  # nothing to check against: the summary says the contract was not checked
    recorder.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
    sink = recorder.active()
    if sink is not None:
        sink.current_test = item.nodeid
    yield
    if sink is not None:
        # Checked right after the test (and its fixtures) finished: the sandbox state it used
        # is still there to say what a Graph id is, and memory stays flat over a long run.
        check(sink.take())
        sink.current_test = ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    sink = recorder.active()
    if sink is not None:
        check(sink.take())
    if _tally.violations and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _lines(tally: Tally) -> Iterator[str]:
    platforms = sorted(set(tally.requests) | set(tally.responses) | set(tally.foreign))
    for p in platforms:
        yield (f"  {p:<10} requests checked {tally.requests[p]:>6}   responses checked {tally.responses[p]:>6}"
               f"   hand-made requests (not judged) {tally.foreign[p]:>4}")
    yield (f"  {'total':<10} requests checked {sum(tally.requests.values()):>6}   "
           f"responses checked {sum(tally.responses.values()):>6}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tr = terminalreporter
    if not specs.available():
        tr.section("platform contract")
        tr.write_line("NOT CHECKED: " + specs.missing_message(specs.SPECS), yellow=True, bold=True)
        return
    if not (_tally.requests or _tally.responses or _tally.violations):
        return
    tr.section(f"platform contract (specs in {specs.SPECS})")
    for line in _lines(_tally):
        tr.write_line(line)
    if _tally.violations:
        by_problem: dict[str, list[str]] = defaultdict(list)
        for test, platform, problem in _tally.violations:
            by_problem[f"{platform}: {problem}"].append(test)
        tr.write_line(f"CONTRACT FAILED: {len(_tally.violations)} exchanges do not fit the spec "
                      f"({len(by_problem)} distinct problems)", red=True, bold=True)
        for i, (problem, tests) in enumerate(sorted(by_problem.items())):
            if i >= SHOW:
                tr.write_line(f"  … and {len(by_problem) - SHOW} more")
                break
            tr.write_line(f"  {problem}  [{len(tests)}x, e.g. {tests[0]}]")
    else:
        tr.write_line("all checked exchanges fit their specs", green=True)


def tally() -> Tally:
    """The counts so far (for tests of this plugin)."""
    return _tally
