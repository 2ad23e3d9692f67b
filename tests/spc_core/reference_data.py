"""Published data sets used as references, each with its source.

PISTON_RING_PHASE1 / PISTON_RING_PHASE2: inside diameters (mm) of forged automobile piston rings,
25 (phase I) and 15 (phase II) samples of 5. Montgomery, *Introduction to Statistical Quality
Control*, 6th ed., Tables 6.3 and 6.4 (also R qcc's `pistonrings`). Checked self-consistent with
the book's summaries: x-double-bar = 74.00118 (74.001), R-bar = 0.02284 (0.023).
"""

from __future__ import annotations

import numpy as np

PISTON_RING_PHASE1 = np.array([
    74.030, 74.002, 74.019, 73.992, 74.008, 73.995, 73.992, 74.001, 74.011, 74.004,
    73.998, 74.024, 74.021, 74.005, 74.002, 74.002, 73.996, 73.993, 74.015, 74.009,
    73.992, 74.007, 74.015, 73.989, 74.014, 74.009, 73.994, 73.997, 73.985, 73.993,
    73.995, 74.006, 73.994, 74.000, 74.005, 73.985, 74.003, 73.993, 74.015, 73.988,
    74.008, 73.995, 74.009, 74.005, 74.004, 73.998, 74.000, 73.990, 74.007, 73.995,
    73.994, 73.998, 73.994, 73.995, 73.990, 74.004, 74.000, 74.007, 74.000, 73.996,
    73.983, 74.002, 73.998, 73.997, 74.012, 74.006, 73.967, 73.994, 74.000, 73.984,
    74.012, 74.014, 73.998, 73.999, 74.007, 74.000, 73.984, 74.005, 73.998, 73.996,
    73.994, 74.012, 73.986, 74.005, 74.007, 74.006, 74.010, 74.018, 74.003, 74.000,
    73.984, 74.002, 74.003, 74.005, 73.997, 74.000, 74.010, 74.013, 74.020, 74.003,
    73.982, 74.001, 74.015, 74.005, 73.996, 74.004, 73.999, 73.990, 74.006, 74.009,
    74.010, 73.989, 73.990, 74.009, 74.014, 74.015, 74.008, 73.993, 74.000, 74.010,
    73.982, 73.984, 73.995, 74.017, 74.013,
]).reshape(25, 5)  # fmt: skip

PISTON_RING_PHASE2 = np.array([
    74.012, 74.015, 74.030, 73.986, 74.000, 73.995, 74.010, 73.990, 74.015, 74.001,
    73.987, 73.999, 73.985, 74.000, 73.990, 74.008, 74.010, 74.003, 73.991, 74.006,
    74.003, 74.000, 74.001, 73.986, 73.997, 73.994, 74.003, 74.015, 74.020, 74.004,
    74.008, 74.002, 74.018, 73.995, 74.005, 74.001, 74.004, 73.990, 73.996, 73.998,
    74.015, 74.000, 74.016, 74.025, 74.000, 74.030, 74.005, 74.000, 74.016, 74.012,
    74.001, 73.990, 73.995, 74.010, 74.024, 74.015, 74.020, 74.024, 74.005, 74.019,
    74.035, 74.010, 74.012, 74.015, 74.026, 74.017, 74.013, 74.036, 74.025, 74.026,
    74.010, 74.005, 74.029, 74.000, 74.020,
]).reshape(15, 5)  # fmt: skip

# Montgomery 6th ed., Example 7.1 (frozen orange juice cans, 30 samples of n = 50) and the same
# data in NIST/SEMATECH e-Handbook 6.3.3.2: p-bar = 0.2313, UCL = 0.4102, LCL = 0.0524;
# samples 15 and 23 are beyond the UCL. Sum = 347 (checked).
OJ_CANS_DEFECTIVES = np.array([
    12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22,
    8, 10, 5, 13, 11, 20, 18, 24, 15, 9, 12, 7, 13, 9, 6,
])  # fmt: skip

# Montgomery 6th ed., Example 7.3 (nonconformities in 26 samples of 100 printed circuit boards):
# c-bar = 19.85, UCL = 33.22, LCL = 6.48; samples 6 and 20 are beyond the limits. Sum = 516.
PCB_NONCONFORMITIES = np.array([
    21, 24, 16, 12, 15, 5, 28, 20, 31, 25, 20, 24, 16, 19, 10, 17, 13, 22, 18, 39,
    30, 24, 16, 19, 17, 15,
])  # fmt: skip

# Montgomery 6th ed., Example 7.4 (personal computers, 20 samples of n = 5 units): total 193
# nonconformities, u-bar = 1.93, UCL = 3.79, LCL = 0.07 (0.0659 -> 0.07 in the book).
PC_NONCONFORMITIES = np.array(
    [10, 12, 8, 14, 10, 16, 11, 7, 10, 15, 9, 5, 7, 11, 12, 6, 8, 10, 7, 5]
)

# Montgomery 6th ed., Example 9.1 (tabular CUSUM, mu0 = 10, sigma = 1, k = 0.5, h = 5): the
# upper CUSUM first exceeds H at observation 29 with C+ = 5.28, and C+_30 = 5.30.
CUSUM_EXAMPLE = np.array([
    9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34, 9.03, 11.47, 10.51, 9.40,
    10.08, 9.37, 10.62, 10.31, 8.52, 10.84, 10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38,
    11.62, 11.31, 10.52,
])  # fmt: skip

# NIST/SEMATECH e-Handbook 6.3.2.4 (EWMA example): target 50, s = 2.0539, lambda = 0.3, k = 3:
# asymptotic limits UCL = 52.5884, LCL = 47.4115; the EWMA sequence starts 50.60, 49.52, 50.56.
NIST_EWMA = np.array([
    52.0, 47.0, 53.0, 49.3, 50.1, 47.0, 51.0, 50.1, 51.2, 50.5,
    49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1,
])  # fmt: skip
