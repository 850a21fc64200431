"""Expected failures, one mechanism for two sources: the repository's manifest of known upstream
failures (``known_failures.toml``, plus a user's own through ``--bench-known-failures``) and the
statuses a model declares it is built to show (the graph suite's trace pitfalls).

A case still runs. When it fails the way its expectation says, its status becomes
``known_failure`` (the reason carries the public link); when it fails another way it stays a
real failure and says the expected one did not occur; when it passes, it is ``fixed_upstream``.
This is PyTorch's dynamo benchmark scheme (``benchmarks/dynamo/ci_expected_accuracy/*.csv``,
read by ``check_accuracy.py``: a matching failure passes, a model that now passes is
``IMPROVED``) with a link and a version scope per entry, so the day upstream fixes a bug the
report says so (TensorRT-LLM's ``waives.txt`` skips the test and never learns).
"""
from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from bench.core.rows import FAILURES

MANIFEST = "known_failures.toml"  # at the repository's root (pytest's rootdir)
# An entry older than this is worth a look: upstream may have fixed it under another version.
STALE_AFTER_DAYS = 180
EXPECTABLE = (*FAILURES, "unsupported")  # the statuses a known-failure entry may expect
_VERSIONED = ("torch", "transformers", "cuda")
_FIELDS = {"case", "test", "link", "why", "added", "scope", "expect"}
_SCOPE_FIELDS = {"device", "cpu_capability", *_VERSIONED}
_EXPECT_FIELDS = {"status", "exception", "message"}


@dataclasses.dataclass(frozen=True)
class Expectation:
    """How a case is expected to fail, and where that is documented.

    status: the status the case ends with; exception: the exception's type name (last dotted
    part, e.g. ``InductorError``), looked for in the failure's text; message: a regular
    expression searched in it. ``source`` says who declared it ("known_failures.toml entry 1",
    "model data_dependent"); ``upstream`` whether it is a bug outside this project (manifest) or
    a behaviour a model is built to show."""

    status: str
    link: str
    why: str
    source: str
    exception: str | None = None
    message: str | None = None
    upstream: bool = True

    def matches(self, status: str, text: str) -> bool:
        return (status == self.status and (not self.exception or self.exception in text)
                and (not self.message or re.search(self.message, text, re.S) is not None))

    def describe(self) -> str:
        what = " ".join(p for p in (self.status, self.exception, f"/{self.message}/" if self.message else "") if p)
        return f"{what} ({self.link})"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One manifest entry: which cases (row columns as glob patterns, or the pytest id), in
    which scope (device kind, version ranges, CPU capability), and the expectation."""

    case: dict[str, str]
    test: str | None
    scope: dict[str, Any]
    added: datetime.date
    expectation: Expectation

    def selects(self, row: dict) -> bool:
        if self.test and not fnmatch.fnmatchcase(str(row.get("test") or ""), self.test):
            return False
        return all(fnmatch.fnmatchcase(str(row.get(k)), str(v)) for k, v in self.case.items())

    def in_scope(self, row: dict, stack: dict) -> bool:
        device = self.scope.get("device")
        if device and str(row.get("device") or "").split(":")[0] not in device:
            return False
        caps = self.scope.get("cpu_capability")
        if caps and str(stack.get("cpu_capability") or "").upper() not in caps:
            return False
        for name in _VERSIONED:
            spec = self.scope.get(name)
            if spec is not None and not _version_in(stack.get(name), spec):
                return False
        return True


def _version_in(version: str | None, spec: SpecifierSet) -> bool:
    v = _parse(version)
    return v is not None and spec.contains(v, prereleases=True)


def _parse(version: str | None) -> Version | None:
    try:
        return Version(Version(str(version)).public) if version else None
    except InvalidVersion:
        return None


def stack_versions() -> dict:
    """What scopes are judged against: torch, transformers and CUDA versions, CPU capability."""
    import torch

    from bench.core.env import _version

    return {"torch": torch.__version__, "transformers": _version("transformers"), "cuda": torch.version.cuda,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file, the entry and the field."""


def load(path: Path) -> list[Entry]:
    """The entries of one manifest file (``[[failure]]`` tables)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"failure"}
    if unknown:
        raise ManifestError(f"{path}: unknown top-level key(s) {sorted(unknown)}; valid: [[failure]] tables")
    return [_entry(path, i, raw) for i, raw in enumerate(data.get("failure", []), 1)]


def _entry(path: Path, n: int, raw: dict) -> Entry:
    where = f"{path} entry {n}"

    def bad(text: str) -> ManifestError:
        return ManifestError(f"{where}: {text}")

    if not isinstance(raw, dict):
        raise bad("each [[failure]] must be a table")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise bad(f"unknown field(s) {sorted(unknown)}; valid: {sorted(_FIELDS)}")
    link = str(raw.get("link") or "")
    if not re.match(r"https?://\S+$", link):
        raise bad(f"'link' must be the public issue's URL (http:// or https://), got {link!r}")
    why = str(raw.get("why") or "").strip()
    if not why:
        raise bad("'why' (one line: what fails and why it is not this suite's bug) is required")
    case = raw.get("case") or {}
    if not isinstance(case, dict) or not (case or raw.get("test")):
        raise bad("'case' (a table of row columns to glob patterns, e.g. {suite = \"generation\", "
                  "attention = \"flex_attention\"}) or 'test' (a pytest id pattern) is required")
    added = raw.get("added")
    if not isinstance(added, datetime.date) or isinstance(added, datetime.datetime):
        raise bad(f"'added' must be a TOML date (e.g. added = 2026-12-03), got {added!r}")
    scope = dict(raw.get("scope") or {})
    unknown = set(scope) - _SCOPE_FIELDS
    if unknown:
        raise bad(f"unknown scope field(s) {sorted(unknown)}; valid: {sorted(_SCOPE_FIELDS)}")
    for name in _VERSIONED:
        if name in scope:
            try:
                scope[name] = SpecifierSet(str(scope[name]))
            except InvalidSpecifier:
                raise bad(f"scope.{name} {scope[name]!r} is not a version range (e.g. \">=2.13,<2.15\")") from None
    for name, upper in (("device", False), ("cpu_capability", True)):
        if name in scope:
            values = [scope[name]] if isinstance(scope[name], str) else list(scope[name])
            scope[name] = tuple(v.upper() if upper else v for v in map(str, values))
    if any(d not in ("cpu", "cuda") for d in scope.get("device", ())):
        raise bad(f"scope.device {list(scope['device'])}: valid kinds are cpu and cuda")
    expect = dict(raw.get("expect") or {})
    unknown = set(expect) - _EXPECT_FIELDS
    if unknown:
        raise bad(f"unknown expect field(s) {sorted(unknown)}; valid: {sorted(_EXPECT_FIELDS)}")
    status = expect.get("status", "error")
    if status not in EXPECTABLE:
        raise bad(f"expect.status {status!r}; valid: {', '.join(EXPECTABLE)}")
    message = expect.get("message")
    if message is not None:
        try:
            re.compile(message)
        except re.error as exc:
            raise bad(f"expect.message {message!r} is not a regular expression ({exc})") from None
    return Entry(case={str(k): str(v) for k, v in case.items()}, test=raw.get("test"), scope=scope, added=added,
                 expectation=Expectation(status=status, link=link, why=why, source=where,
                                         exception=expect.get("exception"), message=message))


def load_all(root: Path, extra: list[str] | tuple[str, ...] = ()) -> list[Entry]:
    """The repository's manifest (``root/known_failures.toml``, when there) and each user file."""
    own = Path(root) / MANIFEST
    paths = ([own] if own.is_file() else []) + [Path(p).expanduser() for p in extra]
    return [e for p in paths for e in load(p)]


def for_row(entries: list[Entry], row: dict, stack: dict, text: str = "") -> Expectation | None:
    """The entry that selects ``row`` and whose scope holds on this stack; of several, the first
    that matches the row's failure (status and ``text``), else the first."""
    found = [e.expectation for e in entries if e.selects(row) and e.in_scope(row, stack)]
    status = row.get("status") or ""
    return next((x for x in found if x.matches(status, f"{text}\n{row.get('reason') or ''}")), None) or \
        (found[0] if found else None)


def stale(entries: list[Entry], stack: dict, today: datetime.date | None = None,
          after_days: int = STALE_AFTER_DAYS) -> list[str]:
    """Entries worth re-checking: older than ``after_days``, or whose version range lies
    entirely below the installed version (upstream moved on; is the bug still there?)."""
    today = today or datetime.date.today()
    out = []
    for e in entries:
        link = e.expectation.link
        age = (today - e.added).days
        if age > after_days:
            out.append(f"known failure {link} ({e.expectation.source}) was added {age} days ago: "
                       "check whether it is still true")
        for name in _VERSIONED:
            spec, have = e.scope.get(name), _parse(stack.get(name))
            if spec is not None and have is not None and _below(spec, have):
                out.append(f"known failure {link} ({e.expectation.source}) is scoped to {name} {spec}, "
                           f"entirely below the installed {have}: check whether it still occurs and widen or "
                           "remove the entry")
    return out


def _below(spec: SpecifierSet, have: Version) -> bool:
    """Whether every version ``spec`` admits is lower than ``have`` (an upper bound under it)."""
    if spec.contains(have, prereleases=True):
        return False
    for s in spec:
        bound = _parse(s.version.replace("*", "0"))
        if bound is None:
            continue
        if (s.operator == "<" and bound <= have) or (s.operator in ("<=", "==", "===") and bound < have):
            return True
    return False


def declared(model: str, status: str, why: str, link: str) -> Expectation:
    """An expectation a model declares about itself (not an upstream bug)."""
    return Expectation(status=status, link=link, why=why, source=f"model {model}", upstream=False)


def judge(row: dict, expectation: Expectation, text: str) -> str | None:
    """Set ``row``'s status from what happened against what was expected; return the verdict:
    ``known`` (failed as expected: ``known_failure``), ``different`` (failed otherwise: a real
    failure, its reason says the expected one did not occur), ``fixed`` (passed:
    ``fixed_upstream``), or None (the case did not run: a skip says nothing either way).
    ``text`` is the failure's whole text (exception type and message)."""
    status, reason = row.get("status"), str(row.get("reason") or "")
    row.update(expected=expectation.describe(), expected_link=expectation.link,
               expected_upstream=expectation.upstream)
    if status == "skipped":
        return None
    kind = "known upstream failure" if expectation.upstream else "expected by design"
    if status == "ok" and not expectation.upstream:  # a model built to fail no longer does: the check lost its power
        row["status"] = "error"
        row["reason"] = (f"the model is built to show {expectation.describe()} ({expectation.source}: "
                         f"{expectation.why}) but it passed: the check that should catch it did not")
        return "different"
    if status == "ok":
        row["status"] = "fixed_upstream"
        row["reason"] = (f"the {kind} did not occur: {expectation.link} ({expectation.source}: {expectation.why}); "
                         "if it holds on a rerun, remove or narrow the entry")
        return "fixed"
    if expectation.matches(status, f"{text}\n{reason}"):
        row["status"], row["reason"] = "known_failure", f"{kind}, {expectation.link}: {reason}"
        return "known"
    row["reason"] = (f"{reason} [the {kind} {expectation.describe()} did not occur as expected "
                     f"({expectation.source}): this is another failure]")
    if status not in FAILURES:
        row["reason"] = f"{status}: {row['reason']}"
        row["status"] = "error"  # the row says what the exit code says: a failure
    return "different"
