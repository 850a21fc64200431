"""The run-level time plan: a profile's total budget, and what the run gives up to fit in it.

Before anything is timed, each case's cost is estimated by its question's ``estimate(case,
machine)`` (bench/<question>/scenario.py): what fewer rounds cannot cut (builds, launches, the
correctness check's own calls, fixed-step training) and what they can (rounds of timing at the
profile's budget, and at its fewest). When the sum is over the run's budget the plan, in order:
  1. times every case at its fewest rounds;
  2. shrinks the cases that can be shrunk (a smaller batch), costliest first, naming the change
     in the row;
  3. leaves out the costliest cases, each with the reason and the command that times it, never a
     case its question declares essential nor a suite's last case.
It stops as soon as the run fits (or nothing more may go: the plan then says it is over budget).
The plan is a pure function of the selection, the profile, the known-failure entries (a case one
selects is kept) and the machine's facts (cores, which dtypes this CPU emulates): the same
selection on the same machine gets the same plan, so two runs ``compare`` puts side by side
measured alike. Plain correctness tests are not planned: they
always run.
"""
from __future__ import annotations

import dataclasses

ACTIONS = ("full", "min_rounds", "shrunk", "left_out")
FAR_ABOVE_SHARE = 3.0  # a case is shrunk only when it alone costs this many times its share of the budget


@dataclasses.dataclass(frozen=True)
class Machine:
    """What the estimates depend on, all read without timing anything (deterministic)."""

    cores: int
    emulated: tuple[str, ...]  # low-precision dtypes this CPU converts through fp32 (bench.core.hardware)
    cuda: bool = False


@dataclasses.dataclass(frozen=True)
class Cost:
    """A case's estimated seconds on a 2-core CPU (the suites' reference machine).

    fixed_s: what fewer rounds cannot cut; timed_s: timing at the profile's budget; min_timed_s:
    timing at its fewest rounds; shrink: the cost factor of the shrunk case (1.0: it cannot be
    shrunk), shrink_note what shrinking changes; why: what makes it costly (said when it is left out)."""

    fixed_s: float
    timed_s: float = 0.0
    min_timed_s: float = 0.0
    shrink: float = 1.0
    shrink_note: str = ""
    why: str = ""
    essential: bool = False  # the case that keeps its question's meaning: never left out
    shared: str = ""         # a cost several cases share (a model's parity, a library's import),
    shared_s: float = 0.0    # paid once by the first of them that runs: saved only when all are left out

    def at(self, action: str) -> float:
        rounds = self.timed_s if action == "full" else self.min_timed_s
        if action == "left_out":
            return 0.0
        if action == "shrunk":
            return (self.fixed_s + rounds) * self.shrink
        return self.fixed_s + rounds


@dataclasses.dataclass(frozen=True)
class Decision:
    case: str
    suite: str
    action: str
    estimate_s: float
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Plan:
    budget_s: float | None
    decisions: tuple[Decision, ...]

    @property
    def total_s(self) -> float:
        return sum(d.estimate_s for d in self.decisions)

    def of(self, case: str) -> Decision | None:
        return next((d for d in self.decisions if d.case == case), None)

    def summary(self) -> list[str]:
        """One line per suite (cases, estimate, what the plan gave up), then the total."""
        suites: dict[str, list[Decision]] = {}
        for d in self.decisions:
            suites.setdefault(d.suite, []).append(d)
        out = []
        for suite, ds in sorted(suites.items()):
            acts = {a: sum(d.action == a for d in ds) for a in ACTIONS[1:]}
            given = ", ".join(f"{n} {a.replace('_', ' ')}" for a, n in acts.items() if n)
            out.append(f"{suite}: {len(ds)} case(s), about {_dur(sum(d.estimate_s for d in ds))}"
                       + (f" ({given})" if given else ""))
        limit = f" of a {_dur(self.budget_s)} budget" if self.budget_s else " (no run budget in this profile)"
        out.append(f"total: about {_dur(self.total_s)}{limit}")
        return out


def _dur(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def make_plan(cases: list[tuple[str, str, Cost]], budget_s: float | None, command: str) -> Plan:
    """``cases``: (case id, suite, cost). ``command`` is what times a left-out case (e.g.
    ``--bench-profile=full``)."""
    cases = sorted(cases, key=lambda c: c[0])  # the plan does not depend on collection order
    action = {cid: "full" for cid, _, _ in cases}
    cost = {cid: c for cid, _, c in cases}
    suite = {cid: s for cid, s, _ in cases}

    def shared_total() -> float:
        groups = {}
        for cid, c in cost.items():
            if c.shared and action[cid] != "left_out":
                groups[c.shared] = max(groups.get(c.shared, 0.0), c.shared_s)
        return sum(groups.values())

    def total() -> float:
        return sum(cost[cid].at(action[cid]) for cid in action) + shared_total()

    def saving(cid: str) -> float:  # what leaving ``cid`` out would save, its share of a shared cost included
        c = cost[cid]
        alone = c.shared and not any(cost[o].shared == c.shared and action[o] != "left_out" for o in action
                                     if o != cid)
        return c.at(action[cid]) + (c.shared_s if alone else 0.0)

    if budget_s is not None and total() > budget_s:
        for cid in action:  # 1. the fewest rounds everywhere
            if cost[cid].timed_s > cost[cid].min_timed_s:
                action[cid] = "min_rounds"
        # 2. shrink the cases far above their share of the budget, costliest first; 3. leave out
        # the costliest (never an essential one); ties by id, so one selection has one plan
        share = budget_s / max(len(cases), 1)
        for step, able in (("shrunk", lambda c: c.shrink < 1.0 and c.at("min_rounds") > FAR_ABOVE_SHARE * share),
                           ("left_out", lambda c: not c.essential)):
            order = sorted((cid for cid in action if able(cost[cid]) and action[cid] != "left_out"),
                           key=lambda cid: (-saving(cid), cid))
            for cid in order:
                if total() <= budget_s:
                    break
                if step == "left_out" and sum(action[o] != "left_out" and suite[o] == suite[cid] for o in action) == 1:
                    continue  # a suite keeps at least one case: the run still answers its question
                action[cid] = step
    out, paid = [], set()
    for cid, suite_name, c in cases:
        a = action[cid]
        first = bool(c.shared) and a != "left_out" and c.shared not in paid
        paid |= {c.shared} if first else set()
        note = ""
        if a == "shrunk":
            note = f"shrunk by the run's time plan: {c.shrink_note} (about {c.at('min_rounds'):.0f} s otherwise)"
        elif a == "left_out":
            runs_shared = c.shared and any(cost[o].shared == c.shared and action[o] != "left_out" for o in action)
            saved = c.at("min_rounds") + (0.0 if runs_shared else c.shared_s)
            note = (f"left out by the run's time plan: about {saved:.0f} s"
                    + (f" ({c.why})" if c.why else "") + f"; {command} times it")
        elif a == "min_rounds":
            note = "timed at its fewest rounds (the run's time plan)"
        out.append(Decision(cid, suite_name, a, round(c.at(a) + (c.shared_s if first else 0.0), 1), note))
    return Plan(budget_s, tuple(out))


def this_machine() -> Machine:
    import os

    from bench.core.hardware import probe

    caps = probe()
    return Machine(cores=os.cpu_count() or 1, cuda=caps.cuda,
                   emulated=tuple(d for d in ("bf16", "fp16") if caps.cpu_emulation_note("cpu", d)))


def default_cost(case: dict, profile, machine: Machine) -> Cost:
    """A case whose question declares no estimate (or cannot read the case): a quick call."""
    return budget_timed(profile.budget, 0.01, 1.0)


def budget_timed(budget, call_s: float, fixed_s: float, calls_before: int = 1, **kw) -> Cost:
    """A case timed by ``budget`` (bench.core.timing.Budget): ``fixed_s`` (its build and check,
    which make ``calls_before`` calls of ``call_s``) plus warm-up and rounds at the budget, or at
    its fewest. ``kw``: Cost's shrink, shrink_note, why, essential."""
    return Cost(fixed_s=fixed_s + calls_before * call_s, timed_s=budget.estimate_s(call_s),
                min_timed_s=max(1, budget.warmup_rounds) * call_s + budget.min_rounds * call_s, **kw)


def case_budget(profile, machine: Machine, device: str, dtype: str):
    """The budget a case will get (bench.core.timing.budget_for): reduced where the CPU emulates."""
    return profile.budget.reduced() if device == "cpu" and dtype in machine.emulated else profile.budget


# How much slower a CPU that emulates bf16 / fp16 runs a model's step than in fp32 (converting
# through fp32 around every GEMM and convolution): 4-17x on the reference machine
# (docs/methods.md, "The run's time plan").
EMULATION_FACTOR = 8.0
