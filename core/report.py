"""The result file: a pair's result with its ceilings and the findings table, as the command line writes it and
the app downloads and opens it.

The findings in a file are for people and other programs to read; a file opened again has them recomputed from
its numbers, never taken on trust.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict

from core.ceilings import Ceilings, ceilings_csv_rows, ceilings_from_json, ceilings_to_json
from core.errors import ResultFileError
from core.findings import findings_table
from core.result import MAX_LAYERS, AnalysisResult, from_json_dict, to_csv, to_json_dict

MAX_REPORT_BYTES = 16 << 20  # a result of two 256-layer models with its ceilings is about 6 MB


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
    return result, ceilings_from_json(data.get("ceilings") if isinstance(data, dict) else None)


def open_report(name: str, data: bytes) -> tuple[AnalysisResult, Ceilings]:
    """A result file's bytes, checked whole before anything is shown: its size, JSON without NaN or infinities and
    nested no deeper than JSON's own limit, then every field (core.result.from_json_dict). A ResultFileError names the
    file (cut short) and its first problem."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    if len(data) > MAX_REPORT_BYTES:
        raise ResultFileError(
            f"'{shown}' is {len(data):,} bytes; a result file is far smaller (limit {MAX_REPORT_BYTES:,} bytes, "
            f"{MAX_LAYERS} layers per model)"
        )
    try:
        parsed = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise ResultFileError(f"'{shown}' nests its JSON too deeply to be a result") from None
    except ResultFileError as err:  # NaN or an infinity, which JSON has no words for
        raise ResultFileError(f"'{shown}' cannot be opened: {err}") from None
    except (ValueError, UnicodeDecodeError):  # the parser's own message names Python's internals: say it plainly
        raise ResultFileError(f"'{shown}' is not JSON; open a .json file that CKA Lens wrote") from None
    try:
        return read_report(parsed)
    except ResultFileError as err:
        raise ResultFileError(f"'{shown}' cannot be opened: {err}") from None


def _no_constant(word: str) -> None:
    raise ResultFileError(f"{word} is not a JSON number")
