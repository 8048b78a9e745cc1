"""Which step failed and its error, from kfp.local's failure message and the streamed step output."""

from __future__ import annotations

import io

import pytest

from berg_pipelines.failures import OutputTail, error_lines, failed_step

pytestmark = pytest.mark.unit

# What `berg pipeline run` printed for a run on an empty state (kfp 2.x's SubprocessRunner), shortened.
STREAMED = """\
18:27:47.962 - INFO - Streamed logs:

    [KFP Executor 2026-12-02 18:27:48,084 INFO]: Looking for component `build_dataset`
    Traceback (most recent call last):
      File "<frozen runpy>", line 198, in _run_module_as_main
      File "/work/pipelines/src/berg_pipelines/runtime/dataset.py", line 49, in label_complete_window
        raise DatasetError("the label store holds no scored events yet; run the features service on some traffic")
    berg_pipelines.runtime.dataset.DatasetError: the label store holds no scored events yet; run the features \
service on some traffic
    \n\n18:28:08.352 - ERROR - Task \x1b[96m'build-dataset'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m
"""


def test_the_failed_step_is_read_from_kfps_message() -> None:
    message = (
        "Pipeline \x1b[95m'berg-training'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m. "
        "Inner task failed: \x1b[96m'build-dataset'\x1b[0m."
    )
    assert failed_step(message) == "build-dataset"
    assert failed_step("Inner task failed: 'fail' inside 'inner-pipeline'.") == "fail"
    assert failed_step("something else went wrong") is None


def test_the_error_is_the_exception_of_the_last_traceback() -> None:
    assert error_lines(STREAMED.splitlines()) == [
        "berg_pipelines.runtime.dataset.DatasetError: the label store holds no scored events yet; run the features "
        "service on some traffic"
    ]


def test_a_chained_or_multi_line_exception_keeps_the_last_and_all_its_lines() -> None:
    output = [
        "Traceback (most recent call last):",
        '  File "a.py", line 1, in <module>',
        "KeyError: 'first'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "b.py", line 2, in <module>',
        "    raise ValidationFailed(report)",
        "ValidationFailed: 2 expectations failed",
        "  merchant_tx_count_24h: 41% non-null, expected at least 95%",
        "  amount: 3 values above the bound",
        "",
        "after the traceback",
    ]
    assert error_lines(output) == [
        "ValidationFailed: 2 expectations failed",
        "  merchant_tx_count_24h: 41% non-null, expected at least 95%",
        "  amount: 3 values above the bound",
    ]


def test_without_a_traceback_the_last_lines_are_the_error() -> None:
    output = ["starting", "", *[f"line {n}" for n in range(30)], "Killed"]
    assert error_lines(output) == [*[f"line {n}" for n in range(11, 30)], "Killed"]


def test_the_tail_passes_everything_on_and_keeps_the_last_lines() -> None:
    target = io.StringIO()
    tail = OutputTail(target, keep=3)
    for n in range(5):
        tail.write(f"line {n}\n")
    tail.write("partial")
    assert tail.lines() == ["line 2", "line 3", "line 4", "partial"]
    assert target.getvalue().startswith("line 0\nline 1\n")
