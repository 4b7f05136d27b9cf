"""What every check leaves behind: cases (what was checked) and findings (what is wrong)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"


@dataclass
class Finding:
    """One thing a user or an operator would notice, named precisely enough to act on."""

    check: str
    target: str
    message: str
    severity: str = ERROR
    status: int | None = None
    source: str = ""
    kind: str = ""


@dataclass
class Case:
    """One verified property (a JUnit test case)."""

    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False
    seconds: float = 0.0


@dataclass
class CheckResult:
    """The outcome of one check. `gated`: a failure fails the verification run."""

    name: str
    title: str
    gated: bool = True
    skipped: str = ""
    cases: list[Case] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        if self.skipped:
            return not self.gated
        return all(case.passed or case.skipped for case in self.cases) and not any(
            finding.severity == ERROR for finding in self.findings)

    def case(self, name: str, passed: bool, detail: str = "") -> bool:
        self.cases.append(Case(name=name, passed=passed, detail=detail))
        return passed

    def finding(self, target: str, message: str, **extra: Any) -> None:
        self.findings.append(Finding(check=self.name, target=target, message=message, **extra))

    def finish(self) -> CheckResult:
        self.seconds = round(time.time() - self.started_at, 3)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        data = dict(data)
        data.pop("passed", None)
        data["cases"] = [Case(**case) for case in data.get("cases", [])]
        data["findings"] = [Finding(**finding) for finding in data.get("findings", [])]
        return cls(**data)

    def write(self, run_dir: Path) -> Path:
        path = run_dir / f"{self.name}.result.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path


def load_results(run_dir: Path) -> list[CheckResult]:
    return [CheckResult.from_dict(json.loads(path.read_text()))
            for path in sorted(run_dir.glob("*.result.json"))]
