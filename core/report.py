"""The result file: a pair's result with its ceilings and the findings table, as the command line writes it and
the app downloads and opens it.

The findings in a file are for people and other programs to read; a file opened again has them recomputed from
its numbers, never taken on trust.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from core.ceilings import Ceilings, ceilings_csv_rows, ceilings_from_json, ceilings_to_json
from core.findings import findings_table
from core.result import AnalysisResult, from_json_dict, to_csv, to_json_dict


def report_json(result: AnalysisResult, ceilings: Ceilings) -> dict:
    """The result's JSON (what `from_json_dict` reads) plus its ceilings and the findings table."""
    findings = [_finite(asdict(finding)) for finding in findings_table(result, ceilings)]
    return to_json_dict(result) | {"ceilings": ceilings_to_json(ceilings), "findings": findings}


def _finite(value):
    """`value` with every non-finite float (an unknown estimate or interval) as None, which JSON can hold."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_csv(result: AnalysisResult, ceilings: Ceilings) -> str:
    """The result's long-format CSV, then each ceiling's matched curve (sections ceiling_a_*, ceiling_b_*)."""
    return to_csv(result) + "".join(line + "\n" for line in ceilings_csv_rows(ceilings))


def read_report(data: dict) -> tuple[AnalysisResult, Ceilings]:
    """A result file's result and ceilings (none in a file written before ceilings existed); a ResultFileError
    says what is wrong."""
    result = from_json_dict(data)
    return result, ceilings_from_json(data.get("ceilings"))
