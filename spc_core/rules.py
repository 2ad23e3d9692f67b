"""Run rules (tests for special causes): Western Electric 1-4, Nelson 1-8, AIAG, and variants.

Sources: Western Electric, *Statistical Quality Control Handbook* (1956), and Montgomery,
*Introduction to Statistical Quality Control*, 6th ed., section 5.3.6 (WE rules 1-4); Nelson,
"The Shewhart control chart - tests for special causes", J. Quality Technology 16(4), 1984 (rules
1-8); NIST/SEMATECH e-Handbook 6.3.2 (the WECO rules); AIAG, *Statistical Process Control (SPC)
Reference Manual*, 2nd ed. (2005), ch. II (points beyond limits, runs of 7, trends of 7).

Every rule is a function of the plotted statistic ``x``, the center line ``center`` and the sigma of
the plotted statistic ``sigma`` (for an Xbar chart that is sigma/sqrt(n), never the sigma of the
individual values). ``center`` and ``sigma`` are scalars or per-point arrays, so stair-step and
multi-phase limits work. Each rule function returns the sorted indices of the points at which the
rule fires, as R qcc's ``rules.R`` does.

Conventions (all tested in tests/spc_core/test_rules_*.py):

* **Reported at the completing point.** A violation is reported at the index of the point that
  completes the pattern; `find_violations` also gives the indices of the whole pattern. A pattern
  that keeps going fires again at every further point (a run of 10 points on one side fires the
  8-point rule at the 8th, 9th and 10th point), as Minitab does.
* **Zone boundaries.** A point exactly on a zone edge belongs to the inner zone: "beyond k sigma" is
  ``|x - center| > k sigma`` (strict), "within k sigma" is ``|x - center| <= k sigma``. A point
  exactly on the center line is on neither side: it breaks a same-side run.
* **k of m rules** (WE 2/3, Nelson 5/6): the completing point must itself be beyond the zone edge,
  and at least k of the m points ending at it (it included) are beyond that edge on its side.
* **Trend / alternation.** Equal consecutive values are neither up nor down: they break a trend and
  an alternation. A trend of L points is L-1 consecutive increases (or decreases); an alternation of
  L points is L-1 differences of alternating sign.
* **Missing points.** A point is invalid when ``x``, ``center`` or ``sigma`` is NaN or infinite
  there. An invalid point satisfies no condition: it never fires, it breaks every run (same side,
  trend, alternation, within/beyond zone), and in a k-of-m window it counts as one of the m points
  but not one of the k. The start of a series behaves as if preceded by invalid points, so a
  violation at index i depends only on the points ``i - window + 1 .. i`` (which is what makes
  streaming evaluation equal batch evaluation).
* **Precedence.** When several rules fire on one point, `find_violations` lists them in the order
  of the rules requested (for the named sets: lowest-numbered rule first, as Minitab labels a
  point by its lowest test); the first one is the point's primary rule (`primary_rule`).
* **Dispersion charts** (R, S, MR): only rule 1 applies by default, see `DISPERSION_RULES`.

Rule ids and sets: "we1".."we4", "nelson1".."nelson8", "aiag1".."aiag3" (beyond 3 sigma, 7 in a
row on one side, 7 in a row increasing or decreasing); sets "we", "nelson", "aiag"; a variant is
"id:K" with Minitab's parameter K (e.g. "nelson2:7" for runs of 7, "nelson3:7" for trends of 7,
"nelson1:2.5" for 2.5-sigma limits, "nelson5:3" for 3 of 4 beyond 2 sigma); any `Rule` can be
defined directly; a custom list mixes all of these, in the order given (which is the precedence).

All evaluation is vectorised along the time axis (axis 0): zone masks are computed once and
shared, runs are found with O(log L) shifted ANDs, k-of-m counts with shifted sums, and long
series are processed in cache-sized blocks that overlap by the longest window. There is no
Python loop per point. The same kernels accept 2-D arrays (time x series), which `streaming` uses
to evaluate thousands of series in one call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from spc_core._checks import as_float_array

RuleKind = Literal["beyond", "k_of_m", "same_side", "trend", "alternating", "within", "outside"]


@dataclass(frozen=True)
class Rule:
    """One run rule.

    kind: "beyond" (1 point beyond ``z`` sigma), "k_of_m" (``count`` of ``length`` consecutive
    points beyond ``z`` sigma on the same side), "same_side" (``length`` points in a row on one side
    of the center), "trend" (``length`` points in a row increasing or decreasing), "alternating"
    (``length`` points in a row alternating up and down), "within" (``length`` points in a row
    within ``z`` sigma, either side), "outside" (``length`` points in a row beyond ``z`` sigma,
    either side).
    """

    id: str
    kind: RuleKind
    length: int = 1
    count: int = 1
    z: float = 3.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(
                f"rule {self.id!r}: kind must be one of {sorted(_KINDS)}, got {self.kind!r}"
            )
        if not isinstance(self.length, int | np.integer) or self.length < 1:
            raise ValueError(
                f"rule {self.id!r}: length must be a positive integer, got {self.length!r}"
            )
        if self.kind in ("trend", "alternating") and self.length < 3:
            raise ValueError(
                f"rule {self.id!r}: a {self.kind} needs length >= 3, got {self.length}"
            )
        if not 1 <= self.count <= self.length:
            raise ValueError(
                f"rule {self.id!r}: count must be between 1 and length ({self.length}), "
                f"got {self.count}"
            )
        if not (np.isfinite(self.z) and self.z >= 0):
            raise ValueError(f"rule {self.id!r}: z must be a finite number >= 0, got {self.z!r}")

    @property
    def window(self) -> int:
        """How many points (the completing one included) the rule looks at."""
        return self.length


_KINDS = frozenset(("beyond", "k_of_m", "same_side", "trend", "alternating", "within", "outside"))

# The standard rules. "K" in the comments is Minitab's parameter for the rule.
RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("we1", "beyond", z=3.0),
        Rule("we2", "k_of_m", length=3, count=2, z=2.0),
        Rule("we3", "k_of_m", length=5, count=4, z=1.0),
        Rule("we4", "same_side", length=8),
        Rule("nelson1", "beyond", z=3.0),
        Rule("nelson2", "same_side", length=9),
        Rule("nelson3", "trend", length=6),
        Rule("nelson4", "alternating", length=14),
        Rule("nelson5", "k_of_m", length=3, count=2, z=2.0),
        Rule("nelson6", "k_of_m", length=5, count=4, z=1.0),
        Rule("nelson7", "within", length=15, z=1.0),
        Rule("nelson8", "outside", length=8, z=1.0),
        Rule("aiag1", "beyond", z=3.0),
        Rule("aiag2", "same_side", length=7),
        Rule("aiag3", "trend", length=7),
    )
}

RULE_SETS: dict[str, tuple[str, ...]] = {
    "we": ("we1", "we2", "we3", "we4"),
    "nelson": tuple(f"nelson{i}" for i in range(1, 9)),
    "aiag": ("aiag1", "aiag2", "aiag3"),
}

# Dispersion charts (R, S, MR): only "beyond the limits" applies unless the caller asks for more,
# because their statistics are skewed and, for MR, serially correlated.
DISPERSION_RULES: tuple[str, ...] = ("nelson1",)

_PARAM_RE = re.compile(r"^(?P<base>[a-z]+\d+):(?P<param>[0-9]+(\.[0-9]+)?)$")

RuleSpec = str | Rule | Iterable[str | Rule]


def variant(base_id: str, k: float) -> Rule:
    """The rule `base_id` with Minitab's parameter K changed; its id is ``f"{base_id}:{K}"``.

    K is the sigma multiple for "beyond" rules, the number of points for run, trend, alternation,
    within and outside rules, and the count k of "k out of k+1" for k-of-m rules.
    """
    if base_id not in RULES:
        raise ValueError(f"rules: unknown rule {base_id!r}; known rules: {', '.join(RULES)}")
    base = RULES[base_id]
    new_id = f"{base_id}:{k:g}"
    if base.kind == "beyond":
        return Rule(new_id, "beyond", z=float(k))
    if float(k) != int(k):
        raise ValueError(f"rules: {base_id} needs an integer parameter, got {k!r}")
    if base.kind == "k_of_m":
        return Rule(new_id, "k_of_m", length=int(k) + 1, count=int(k), z=base.z)
    return Rule(new_id, base.kind, length=int(k), z=base.z)


def resolve_rules(rules: RuleSpec) -> tuple[Rule, ...]:
    """Turn a set name ("we", "nelson", "aiag"), a rule id ("nelson2"), a parameterised id
    ("nelson2:7"), a comma-separated list of these, a `Rule`, or an iterable of these into rules."""
    if isinstance(rules, Rule):
        return (rules,)
    if isinstance(rules, str):
        items: list[str | Rule] = [part.strip() for part in rules.split(",") if part.strip()]
        if not items:
            raise ValueError("rules must name at least one rule or rule set, got an empty string")
    else:
        try:
            items = list(rules)
        except TypeError:
            raise TypeError(
                f"rules must be a rule-set name, a rule id, a Rule or a list of them, got {rules!r}"
            ) from None
    out: list[Rule] = []
    for item in items:
        if isinstance(item, Rule):
            out.append(item)
        elif not isinstance(item, str):
            raise TypeError(f"rules: each item must be a str or Rule, got {item!r}")
        elif item in RULE_SETS:
            out.extend(RULES[r] for r in RULE_SETS[item])
        elif item in RULES:
            out.append(RULES[item])
        elif (m := _PARAM_RE.match(item)) is not None:
            out.append(variant(m["base"], float(m["param"])))
        else:
            raise ValueError(
                f"rules: unknown rule or rule set {item!r}; use one of {', '.join(RULE_SETS)}, "
                f"a rule id ({', '.join(RULES)}) or 'id:K' such as 'nelson2:7'"
            )
    seen: set[str] = set()
    unique = []
    for rule in out:
        if rule.id not in seen:
            seen.add(rule.id)
            unique.append(rule)
    return tuple(unique)


# ----------------------------------------------------------------------------------------------
# Input checking


class Prepared(NamedTuple):
    """Inputs checked and broadcast: x with invalid points set to NaN, deviation d = x - center,
    sigma broadcastable to x. Shared by every rule so zones are computed once."""

    x: np.ndarray
    d: np.ndarray
    sigma: np.ndarray | float


def check_inputs(
    x: object, center: object, sigma: object, *, ndim: int | None = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``center``, ``sigma`` as float arrays; errors name the argument at fault."""
    xa = as_float_array(x, "x")
    if ndim is not None and xa.ndim != ndim:
        raise ValueError(f"x must be a {ndim}-D array, got shape {xa.shape}")
    ca = as_float_array(center, "center")
    sa = as_float_array(sigma, "sigma")
    for name, arr in (("center", ca), ("sigma", sa)):
        if arr.ndim != 0 and arr.shape != xa.shape:
            raise ValueError(
                f"{name} must be a scalar or have the shape of x {xa.shape}, got {arr.shape}"
            )
    with np.errstate(invalid="ignore"):
        if np.any(sa <= 0):
            raise ValueError("sigma must be > 0 (NaN marks a point without limits)")
    return xa, ca, sa


def build(xa: np.ndarray, ca: np.ndarray, sa: np.ndarray) -> Prepared:
    """The shared arrays for checked inputs: invalid points become NaN in x and d."""
    invalid = ~np.isfinite(xa)
    if ca.ndim or not np.isfinite(ca):
        invalid = invalid | ~np.isfinite(ca)
    if sa.ndim or not np.isfinite(sa):
        invalid = invalid | ~np.isfinite(sa)
    if invalid.any():
        xa = np.where(invalid, np.nan, xa)
    return Prepared(xa, xa - ca, float(sa) if sa.ndim == 0 else sa)


def prepare(x: object, center: object, sigma: object, *, ndim: int | None = 1) -> Prepared:
    """Check ``x``, ``center`` and ``sigma`` and return the arrays the rule kernels share."""
    return build(*check_inputs(x, center, sigma, ndim=ndim))


# ----------------------------------------------------------------------------------------------
# Vectorised kernels. Time runs along axis 0: a 1-D series, or a (time, series) 2-D array, so
# that every shifted slice of a 2-D array is one contiguous block (fast for many series at once).


def run_mask(mask: np.ndarray, length: int) -> np.ndarray:
    """True at i when mask is True at every one of i - length + 1 .. i (O(log length) passes)."""
    n = mask.shape[0]
    if length > n:
        return np.zeros_like(mask)
    # Two buffers used in turn: each pass ANDs the current mask with itself delayed.
    cur, spare = mask.copy(), np.empty_like(mask)
    span = 1
    while span * 2 <= length:
        # cur covers `span` points; AND with itself delayed by span covers 2*span points.
        np.logical_and(cur[span:], cur[: n - span], out=spare[span:])
        spare[:span] = False
        cur, spare = spare, cur
        span *= 2
    rest = length - span
    if rest > 0:
        np.logical_and(cur[rest:], cur[: n - rest], out=spare[rest:])
        spare[:rest] = False
        cur = spare
    return cur


def count_mask(mask: np.ndarray, window: int) -> np.ndarray:
    """Number of True values among i - window + 1 .. i."""
    count = mask.astype(np.uint8)
    n = mask.shape[0]
    for k in range(1, min(window, n)):
        count[k:] += mask[: n - k]
    return count


class _Zones:
    """Lazily computed masks shared between rules of one evaluation."""

    def __init__(self, prep: Prepared) -> None:
        self.prep = prep
        self._cache: dict[tuple[str, float], np.ndarray] = {}

    def above(self, z: float) -> np.ndarray:
        key = ("above", z)
        if key not in self._cache:
            with np.errstate(invalid="ignore"):
                self._cache[key] = self.prep.d > z * self.prep.sigma
        return self._cache[key]

    def below(self, z: float) -> np.ndarray:
        key = ("below", z)
        if key not in self._cache:
            with np.errstate(invalid="ignore"):
                self._cache[key] = self.prep.d < -z * self.prep.sigma
        return self._cache[key]

    def beyond(self, z: float) -> np.ndarray:
        key = ("beyond", z)
        if key not in self._cache:
            self._cache[key] = self.above(z) | self.below(z)
        return self._cache[key]

    def within(self, z: float) -> np.ndarray:
        key = ("within", z)
        if key not in self._cache:
            with np.errstate(invalid="ignore"):
                self._cache[key] = np.abs(self.prep.d) <= z * self.prep.sigma
        return self._cache[key]

    def steps(self) -> tuple[np.ndarray, np.ndarray]:
        """(up, down): up[i] when x[i] > x[i-1]; both False at i = 0 and around invalid points."""
        if ("up", 0.0) not in self._cache:
            x = self.prep.x
            up = np.zeros(x.shape, dtype=bool)
            down = np.zeros(x.shape, dtype=bool)
            with np.errstate(invalid="ignore"):
                np.greater(x[1:], x[:-1], out=up[1:])
                np.less(x[1:], x[:-1], out=down[1:])
            self._cache[("up", 0.0)] = up
            self._cache[("down", 0.0)] = down
        return self._cache[("up", 0.0)], self._cache[("down", 0.0)]


def _rule_mask(rule: Rule, zones: _Zones) -> np.ndarray:
    """Boolean mask of the points at which `rule` fires."""
    if rule.kind == "beyond":
        return zones.beyond(rule.z)
    if rule.kind == "k_of_m":
        fired = []
        for side in (zones.above(rule.z), zones.below(rule.z)):
            fired.append(side & (count_mask(side, rule.length) >= rule.count))
        return fired[0] | fired[1]
    if rule.kind == "same_side":
        return run_mask(zones.above(0.0), rule.length) | run_mask(zones.below(0.0), rule.length)
    if rule.kind == "within":
        return run_mask(zones.within(rule.z), rule.length)
    if rule.kind == "outside":
        return run_mask(zones.beyond(rule.z), rule.length)
    up, down = zones.steps()
    if rule.kind == "trend":
        return run_mask(up, rule.length - 1) | run_mask(down, rule.length - 1)
    # alternating: step i changes direction relative to step i - 1
    turn = np.zeros_like(up)
    turn[1:] = (up[1:] & down[:-1]) | (down[1:] & up[:-1])
    return run_mask(turn, rule.length - 2)


def rule_masks(prep: Prepared, rules: Sequence[Rule]) -> dict[str, np.ndarray]:
    """Boolean fire masks (shape of x) for each rule, sharing the zone arrays."""
    zones = _Zones(prep)
    return {rule.id: _rule_mask(rule, zones) for rule in rules}


# ----------------------------------------------------------------------------------------------
# Public API


# Long series are evaluated in blocks that fit in the CPU cache (each block re-reads the last
# window - 1 points of the previous one, so results are identical): about 3x faster on 10M points
# than one pass of whole-array temporaries.
BLOCK_SIZE = 1 << 16


def indices_by_rule(
    xa: np.ndarray, ca: np.ndarray, sa: np.ndarray, rules: Sequence[Rule]
) -> dict[str, np.ndarray]:
    """Rule id -> sorted indices where it fires, for checked 1-D inputs (see `check_inputs`)."""
    n = xa.shape[-1]
    if n <= BLOCK_SIZE:
        masks = rule_masks(build(xa, ca, sa), rules)
        return {rid: np.flatnonzero(mask) for rid, mask in masks.items()}
    overlap = max(rule.window for rule in rules) - 1
    parts: dict[str, list[np.ndarray]] = {rule.id: [] for rule in rules}
    for start in range(0, n, BLOCK_SIZE):
        lo, hi = max(0, start - overlap), min(n, start + BLOCK_SIZE)
        block = build(
            xa[lo:hi], ca if ca.ndim == 0 else ca[lo:hi], sa if sa.ndim == 0 else sa[lo:hi]
        )
        for rid, mask in rule_masks(block, rules).items():
            parts[rid].append(np.flatnonzero(mask[start - lo :]) + start)
    return {rid: np.concatenate(chunks) for rid, chunks in parts.items()}


def evaluate_rules(
    x: object, center: object, sigma: object, rules: RuleSpec = "we"
) -> dict[str, np.ndarray]:
    """Rule id -> sorted int64 indices of the points that complete a pattern.

    ``x`` is the 1-D plotted statistic; ``center`` and ``sigma`` (sigma of the plotted statistic)
    are scalars or arrays shaped like ``x``; ``rules`` is a set name ("we", "nelson", "aiag"), a
    rule id, "id:K", a comma-separated list, a `Rule` or a list of them. Every requested rule id is
    a key, with an empty array when it does not fire.
    """
    resolved = resolve_rules(rules)
    return indices_by_rule(*check_inputs(x, center, sigma), resolved)


class Violation(NamedTuple):
    """One rule firing: reported at `index`, the point completing the pattern `pattern`."""

    rule: str
    index: int
    pattern: tuple[int, ...]


def pattern_of(rule: Rule, prep: Prepared, index: int) -> tuple[int, ...]:
    """Indices of the whole pattern that `rule` completes at `index` (which must fire)."""
    start = max(0, index - rule.window + 1)
    if rule.kind == "beyond":
        return (index,)
    if rule.kind == "k_of_m":
        d = prep.d[start : index + 1]
        s = prep.sigma if np.ndim(prep.sigma) == 0 else prep.sigma[start : index + 1]
        side = np.sign(prep.d[index])
        with np.errstate(invalid="ignore"):
            hits = np.flatnonzero(side * d > rule.z * s)
        return tuple(int(start + h) for h in hits)
    return tuple(range(start, index + 1))


def find_violations(
    x: object, center: object, sigma: object, rules: RuleSpec = "we"
) -> list[Violation]:
    """Every violation with the indices of its whole pattern, sorted by point, then by the order
    of the rules (the first violation at a point is its primary rule)."""
    resolved = resolve_rules(rules)
    checked = check_inputs(x, center, sigma)
    prep = build(*checked)
    fired = indices_by_rule(*checked, resolved)
    order = {rule.id: k for k, rule in enumerate(resolved)}
    out = [
        Violation(rule.id, int(i), pattern_of(rule, prep, int(i)))
        for rule in resolved
        for i in fired[rule.id]
    ]
    out.sort(key=lambda v: (v.index, order[v.rule]))
    return out


def primary_rule(violations: Sequence[Violation]) -> Mapping[int, str]:
    """Point index -> the rule it is labelled with (the first rule in set order that fired)."""
    labels: dict[int, str] = {}
    for v in violations:
        labels.setdefault(v.index, v.rule)
    return labels


def _single(rule_id: str, x: object, center: object, sigma: object) -> np.ndarray:
    return evaluate_rules(x, center, sigma, rule_id)[rule_id]


def we1(x: object, center: object, sigma: object) -> np.ndarray:
    """WE 1: one point beyond 3 sigma."""
    return _single("we1", x, center, sigma)


def we2(x: object, center: object, sigma: object) -> np.ndarray:
    """WE 2: 2 of 3 consecutive points beyond 2 sigma, same side."""
    return _single("we2", x, center, sigma)


def we3(x: object, center: object, sigma: object) -> np.ndarray:
    """WE 3: 4 of 5 consecutive points beyond 1 sigma, same side."""
    return _single("we3", x, center, sigma)


def we4(x: object, center: object, sigma: object) -> np.ndarray:
    """WE 4: 8 consecutive points on one side of the center line."""
    return _single("we4", x, center, sigma)


def nelson1(x: object, center: object, sigma: object) -> np.ndarray:
    """Nelson 1: one point beyond 3 sigma."""
    return _single("nelson1", x, center, sigma)


def nelson2(x: object, center: object, sigma: object) -> np.ndarray:
    """Nelson 2: 9 points in a row on one side of the center line."""
    return _single("nelson2", x, center, sigma)


def nelson3(x: object, center: object, sigma: object) -> np.ndarray:
    """Nelson 3: 6 points in a row steadily increasing or decreasing."""
    return _single("nelson3", x, center, sigma)


def nelson4(x: object, center: object, sigma: object) -> np.ndarray:
    """Nelson 4: 14 points in a row alternating up and down."""
    return _single("nelson4", x, center, sigma)


def nelson5(x: object, center: object, sigma: object) -> np.ndarray:
    """Nelson 5: 2 of 3 points in a row beyond 2 sigma, same side."""
    return _single("nelson5", x, center, sigma)


def nelson6(x: object, center: object, sigma: object) -> np.ndarray:
    """Nelson 6: 4 of 5 points in a row beyond 1 sigma, same side."""
    return _single("nelson6", x, center, sigma)


def nelson7(x: object, center: object, sigma: object) -> np.ndarray:
    """Nelson 7: 15 points in a row within 1 sigma, either side."""
    return _single("nelson7", x, center, sigma)


def nelson8(x: object, center: object, sigma: object) -> np.ndarray:
    """Nelson 8: 8 points in a row beyond 1 sigma, either side."""
    return _single("nelson8", x, center, sigma)
