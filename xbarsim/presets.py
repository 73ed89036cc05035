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
    The write-verify settings recorded with three of the five measured
    maps (``programmed_8x8_maps.csv``: arrays P464EC_HD, P464ED_BG and
    P464ED_HD): read 0.2 V, tolerance 1 % (`TransferConfig.tolerance`,
    whose default it is: `WriteVerify` holds no band), set pulses from 1.1 V up to
    2.1 V and reset pulses from -1.1 V down to -2.4 V in steps of 0.02 V,
    1.04 us wide (the other two ran 0.05 V steps of 0.8 us up to +-2.0 V,
    and 0.02 V steps of 2 us up to +-3.0 V). Assumed, as the data give
    none: the budget of 40 pulses per device and the 1 ms pulse-and-verify
    cycle (the ramp limits are in the maps' columns).
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
