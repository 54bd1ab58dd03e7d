"""The pure part of bench/profile_idle.py: reading ``perf script`` output into samples.

Why: round 10's findings (docs/benchmarks-syncer.md) are shares of these samples; a sample cut in two,
one charged to the wrong process, or a kernel frame taken for a Go address (then symbolized as some
function of the binary) would move the shares without any error.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import profile_idle

SCRIPT = """etcd 29954
\tffffffff813a4413 finish_task_switch.isra.0 ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
\t            d00e [unknown] (/cache/etcd-v3.6.16/etcd)
\t           4fbb4 [unknown] (/cache/etcd-v3.6.16/etcd)

kube-apiserver 31000
\t           5c519 [unknown] (/cache/kube-apiserver)
\t    7ffd1234 __vdso_clock_gettime ([vdso])

etcd 29954
\t           93a15 [unknown] (/cache/etcd-v3.6.16/etcd)
"""


def test_samples_keep_their_process_and_frames_in_order() -> None:
    samples = profile_idle.parse_perf(SCRIPT)
    assert [pid for pid, _ in samples] == [29954, 31000, 29954]
    assert samples[0][1] == [(None, "[k] finish_task_switch.isra.0"), (None, "[k] entry_SYSCALL_64_after_hwframe"),
                             (0xD00E, ""), (0x4FBB4, "")]
    # the vDSO is the kernel's code mapped into the process: not an address of the Go binary
    assert samples[1][1] == [(0x5C519, ""), (None, "[k] __vdso_clock_gettime")]
    assert samples[2][1] == [(0x93A15, "")]  # the last sample, without a blank line after it


def test_an_empty_script_has_no_samples() -> None:
    assert profile_idle.parse_perf("") == []
