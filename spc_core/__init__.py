"""spc_core: Statistical Process Control in numpy and scipy, with no I/O and no framework imports.

Modules: `constants` (d2, d3, c4, A2 ... E2 for n = 2..100), `charts` (limits and plotted
statistics), `rules` (Western Electric, Nelson, AIAG run rules), `sigma` (sigma estimators by name),
`phases` (phase I fitting, phase II scoring, multi-phase series), `capability` and `streaming`.
"""
