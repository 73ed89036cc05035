"""How large can a passive crossbar be before IR drop ruins the MVM?

Sweep the array size at three wire resistances, with conductances in the
100-500 uS window of a low-resistance ReRAM and inputs up to 0.2 V, and
check what the physics says: the relative error of the analog product
against the ideal ``G.T @ x`` grows with N at a fixed wire resistance, and
with the wire resistance at a fixed N.

Run it with ``python examples/scaling_study.py [OUT_DIR]`` (a temporary
folder by default; about 6 s on 2 cores with compiled kernels, plus up to a
minute of compiling on an install's first run). It prints the table, then
the error at each wire resistance for the largest array, and for each wire
resistance the largest array whose error stays below 5 %. The same study from
the shell, larger::

    xbarsim scale --out scale-out --sizes 64,128,256,512,1024 --r-wire 0.1,1,10 --g-range 100e-6:500e-6
"""

import argparse
import tempfile

from xbarsim.exceptions import ParameterError
from xbarsim.scale import SweepParams, format_table, run_sweep


def main(out_dir=None):
    out_dir = out_dir or tempfile.mkdtemp(prefix="xbarsim-scale-")
    params = SweepParams(
        sizes=((16, 16), (32, 32), (64, 64)),
        r_wire=(0.1, 1.0, 10.0),  # ohm per segment
        g_ranges=((100e-6, 500e-6),),  # siemens
        v_read=0.2,  # volts
        r_terminal=1.0,  # ohms
    )
    rows = run_sweep(params, out_dir, progress=False)
    print(format_table(rows))
    print(f"\nresults and figures in {out_dir}")

    error = {(r["rows"], r["r_wire_ohm"]): r["rel_error"] for r in rows}
    for r_wire in params.r_wire:
        by_size = [error[(n, r_wire)] for n, _ in params.sizes]
        assert by_size == sorted(by_size) and by_size[0] < by_size[-1], by_size
    for n, _ in params.sizes:
        by_wire = [error[(n, r)] for r in params.r_wire]
        assert by_wire == sorted(by_wire), by_wire
    # 64 x 64 at 1 ohm per segment: the product is off by tens of percent.
    assert 0.2 < error[(64, 1.0)] < 0.8, error[(64, 1.0)]
    n = params.sizes[-1][0]
    print(f"the MVM error grows with the array and the wires, as the physics says; at {n}x{n}: "
          + ", ".join(f"{100 * error[(n, r)]:.1f} % with {r:g} ohm" for r in params.r_wire))
    # the title's question, for an error budget of 5 %
    budget = 0.05
    for r_wire in params.r_wire:
        fits = [m for m, _ in params.sizes if error[(m, r_wire)] < budget]
        print(f"largest array with an MVM error below {100 * budget:g} % on {r_wire:g} ohm segments: "
              + (f"{max(fits)}x{max(fits)}" if fits else f"none of these (the smallest, {params.sizes[0][0]}x"
                 f"{params.sizes[0][0]}, is off by {100 * error[(params.sizes[0][0], r_wire)]:.1f} %)"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=None, help="output folder (default: a temporary one)")
    try:
        main(parser.parse_args().out_dir)
    except ParameterError as exc:  # an OUT_DIR that is a file: argparse's error, no traceback
        parser.error(str(exc))
