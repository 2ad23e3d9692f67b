"""Incremental rule evaluation for live series, one evaluator for one or many series.

The evaluator keeps, per series, only the last ``window - 1`` points (statistic, center, sigma)
and the number of points seen, where ``window`` is the longest window of the chosen rules (15
for the Nelson set): state is O(longest window) per series. `update` takes new points, evaluates
the rules on the kept tail plus the new points, and returns only the violations completed by the
new points, with their indices in the whole series. Because a violation at point i depends only
on points i - window + 1 .. i (see `spc_core.rules`), feeding a series in any split of batches
gives exactly the batch result of `evaluate_rules` on the whole series; before the first point the
tail holds NaN, which behaves like the start of a series.

`update_all` evaluates many series at once: a (k, n_series) array of k new points for each
series (or (n_series,) for one point each) is one vectorised call on a (window - 1 + k, n_series)
array; time runs along axis 0 so that every shifted slice is one contiguous block.

`reset` forgets the tail of some series (e.g. when their limits change, so that no run spans
two phases, as `spc_core.phases.score_phases` does). `to_bytes`/`from_bytes` (numpy .npz, no
pickle) and `to_json`/`from_json` persist the state.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from typing import Any, NamedTuple

import numpy as np

from spc_core.rules import Rule, RuleSpec, build, check_inputs, resolve_rules, rule_masks

_FORMAT = "spc_core.streaming/1"


class StreamHits(NamedTuple):
    """Violations of one rule across series: parallel arrays of series number and point index."""

    series: np.ndarray
    index: np.ndarray


class StreamingEvaluator:
    """Rule evaluation for `n_series` live series fed point by point or in batches."""

    def __init__(self, rules: RuleSpec = "we", n_series: int = 1) -> None:
        if isinstance(n_series, bool) or not isinstance(n_series, int | np.integer):
            raise TypeError(f"n_series must be an integer, got {n_series!r}")
        if n_series < 1:
            raise ValueError(f"n_series must be at least 1, got {n_series}")
        self.rules: tuple[Rule, ...] = resolve_rules(rules)
        self.n_series = int(n_series)
        self.window = max(rule.window for rule in self.rules)
        tail = (self.window - 1, self.n_series)
        self._x = np.full(tail, np.nan)
        self._center = np.full(tail, np.nan)
        self._sigma = np.full(tail, np.nan)
        self.count = np.zeros(self.n_series, dtype=np.int64)

    # ------------------------------------------------------------------ evaluation

    def update_all(self, x: object, center: object, sigma: object) -> dict[str, StreamHits]:
        """New points for every series: `x` of shape (n_series,) (one point each) or
        (k, n_series) (k points each, oldest first); `center`/`sigma` scalars or the same shape.
        Returns, per rule id, the series and point indices of violations completed by these
        points, ordered by point then series."""
        xa, ca, sa = check_inputs(x, center, sigma, ndim=None)
        if xa.ndim == 1:
            xa = xa[None, :]
            ca = ca if ca.ndim == 0 else ca[None, :]
            sa = sa if sa.ndim == 0 else sa[None, :]
        if xa.ndim != 2 or xa.shape[1] != self.n_series:
            raise ValueError(
                f"x must have shape ({self.n_series},) or (k, {self.n_series}), got {xa.shape}"
            )
        k = xa.shape[0]
        keep = self.window - 1
        full_x = np.concatenate([self._x, xa])
        full_c = np.concatenate([self._center, np.broadcast_to(ca, xa.shape)])
        full_s = np.concatenate([self._sigma, np.broadcast_to(sa, xa.shape)])
        masks = rule_masks(build(full_x, full_c, full_s), self.rules)
        out: dict[str, StreamHits] = {}
        for rule_id, mask in masks.items():
            pos, series = np.nonzero(mask[keep:])
            out[rule_id] = StreamHits(series, self.count[series] + pos)
        if keep:
            self._x = full_x[-keep:].copy()
            self._center = full_c[-keep:].copy()
            self._sigma = full_s[-keep:].copy()
        self.count += k
        return out

    def update(self, x: object, center: object, sigma: object) -> dict[str, np.ndarray]:
        """New points of a single series (n_series must be 1): a scalar or a 1-D batch.
        Returns rule id -> indices (in the whole series) of violations these points complete."""
        if self.n_series != 1:
            raise ValueError(
                f"update is for a single series; this evaluator has {self.n_series}: use update_all"
            )
        xa = np.atleast_1d(np.asarray(x))
        if xa.ndim != 1:
            raise ValueError(f"x must be a scalar or 1-D batch, got shape {xa.shape}")
        ca, sa = np.asarray(center), np.asarray(sigma)
        hits = self.update_all(
            xa[:, None],
            ca if ca.ndim == 0 else np.atleast_1d(ca)[:, None],
            sa if sa.ndim == 0 else np.atleast_1d(sa)[:, None],
        )
        return {rule_id: h.index for rule_id, h in hits.items()}

    def reset(self, series: object = None) -> None:
        """Forget the tail of the given series (all if None): later points start fresh runs.
        Point indices keep counting."""
        cols = slice(None) if series is None else np.asarray(series, dtype=int)
        self._x[:, cols] = np.nan
        self._center[:, cols] = np.nan
        self._sigma[:, cols] = np.nan

    # ------------------------------------------------------------------ persistence

    def _meta(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "n_series": self.n_series,
            "rules": [asdict(rule) for rule in self.rules],
        }

    @classmethod
    def _from_meta(cls, meta: dict[str, Any]) -> StreamingEvaluator:
        if meta.get("format") != _FORMAT:
            raise ValueError(f"state: unknown format {meta.get('format')!r}, expected {_FORMAT!r}")
        rules = [Rule(**r) for r in meta["rules"]]
        return cls(rules, int(meta["n_series"]))

    def to_bytes(self) -> bytes:
        """The state as a numpy .npz archive (no pickle)."""
        buf = io.BytesIO()
        np.savez(
            buf,
            meta=np.frombuffer(json.dumps(self._meta()).encode(), dtype=np.uint8),
            x=self._x,
            center=self._center,
            sigma=self._sigma,
            count=self.count,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamingEvaluator:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                meta = json.loads(archive["meta"].tobytes().decode())
                arrays = {name: archive[name] for name in ("x", "center", "sigma", "count")}
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"state: not a streaming evaluator state ({exc})") from None
        evaluator = cls._from_meta(meta)
        evaluator._restore(arrays)
        return evaluator

    def to_json(self) -> str:
        """The state as JSON (NaN written as null)."""

        def rows(arr: np.ndarray) -> list[list[float | None]]:
            return [[None if np.isnan(v) else float(v) for v in row] for row in arr.T]

        state = {
            **self._meta(),
            "x": rows(self._x),
            "center": rows(self._center),
            "sigma": rows(self._sigma),
            "count": self.count.tolist(),
        }
        return json.dumps(state, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StreamingEvaluator:
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"state: invalid JSON ({exc})") from None
        evaluator = cls._from_meta(state)
        arrays = {
            name: np.array(
                [[np.nan if v is None else v for v in row] for row in state[name]], dtype=float
            )
            .reshape(evaluator.n_series, evaluator.window - 1)
            .T
            for name in ("x", "center", "sigma")
        }
        arrays["count"] = np.asarray(state["count"], dtype=np.int64)
        evaluator._restore(arrays)
        return evaluator

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        tail = (self.window - 1, self.n_series)
        for name in ("x", "center", "sigma"):
            if arrays[name].shape != tail:
                raise ValueError(f"state: {name} has shape {arrays[name].shape}, expected {tail}")
        if arrays["count"].shape != (self.n_series,):
            raise ValueError("state: count must have one entry per series")
        self._x = arrays["x"].astype(float)
        self._center = arrays["center"].astype(float)
        self._sigma = arrays["sigma"].astype(float)
        self.count = arrays["count"].astype(np.int64)
