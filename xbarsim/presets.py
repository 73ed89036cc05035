"""Named presets: the measured TiO2 arrays, in one place.

``TIO2``
    The TiO2 passive crossbars of Drolet et al., "Hardware-aware Training
    Techniques for Improving Robustness of Ex-Situ Neural Network Transfer
    onto Passive TiO2 ReRAM Crossbars", arXiv:2305.18495 (2023), data in
    3it-inpaqt/Hardware-Aware-Article (MIT; copy and attribution in
    ``xbarsim/data/tio2``). Window 2-10 kOhm and failure statistics from
    that paper; set / reset thresholds +-1.1 V taken as the amplitude the
    measured write-verify ramps start from (data README: set pulses from
    1.1 V, reset from -1.1 V; no threshold is stated); switching rates and
    disturb (``k_set``, ``k_reset``, ``v_slope``, ``v_sub``, ``c2c``) chosen
    by hand, read noise and relaxation fitted with an earlier ``xbarsim
    calibrate --fit`` (`xbarsim.calibrate.FIT_PARAMETERS`; that fit ran on
    ideal wires with other settings, and today's code does not reproduce
    its values exactly: today's fit, on the 1 ohm wires the figures are
    judged on, returns values within 0.91-1.44x of these), against the measured neighbour
    drift, tuning imprecision and programming offset of V/2 column-major
    write-verify of 8x8 arrays: 62 of 67 compared figures within +-30 %;
    the programming offset mean, the tuning law's slope and three drift
    means are missed (xbarsim.devices explains the attribution, the misses
    and the assumptions).
``TIO2_IDEAL``
    The same device without noise, relaxation, failures or sub-threshold
    disturb (`DeviceParams.ideal`).
``TIO2_WRITE_VERIFY``
    The write-verify settings of the measured runs where the data give
    them (read 0.2 V, tolerance 1 %, set pulses from 1.1 V, reset pulses
    from -1.1 V), values inside their measured ranges where the data give
    a range (0.02 V per pulse of 0.02-0.05 V, 1.04 us of 0.8-2 us), and
    assumptions where they give none (ramp limits 2.1 V and -2.4 V, a
    budget of 40 pulses per device; a review found these called measured).
"""

from __future__ import annotations

from .devices import DeviceParams
from .programming import WriteVerify

__all__ = ["TIO2", "TIO2_IDEAL", "TIO2_WRITE_VERIFY"]

TIO2 = DeviceParams()
"""Calibrated TiO2 device: Drolet et al., arXiv:2305.18495 (window, failure
statistics), its measured 8x8 arrays (``xbarsim/data/tio2``: write-verify
settings, neighbour drift, tuning imprecision, programming offset, against
which read noise and relaxation were fitted); switching rates by hand. The
module docstring says which value comes from where."""

TIO2_IDEAL = TIO2.ideal()
"""TIO2 without noise, relaxation, failures or sub-threshold disturb (a hard switching threshold)."""

TIO2_WRITE_VERIFY = WriteVerify()
"""Write-verify settings of the measured runs (data README)."""
