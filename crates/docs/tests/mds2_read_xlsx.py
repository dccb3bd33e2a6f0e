#!/usr/bin/env python3
"""Reads an MDS2 XLSX workbook from standard input with openpyxl and prints, as JSON, what a
hospital reviewer's spreadsheet shows: every sheet's cell values, frozen panes, autofilter,
heading fonts, column widths, text wrapping, and the document properties.

Used by crates/docs/tests/mds2_xlsx.rs; not part of the library."""

import io
import json
import sys

import openpyxl
from openpyxl.utils import get_column_letter


def widths(ws):
    """Width of every column, expanding the ranges (<col min max>) openpyxl keeps grouped."""
    out = {}
    for dim in ws.column_dimensions.values():
        for index in range(dim.min, dim.max + 1):
            out[get_column_letter(index)] = dim.width
    return out


def sheet(ws):
    rows = [[cell.value for cell in row] for row in ws.iter_rows()]
    return {
        "rows": rows,
        "freeze_panes": ws.freeze_panes,
        "auto_filter": ws.auto_filter.ref,
        "heading_bold": [bool(cell.font.bold) for cell in ws[1]],
        "widths": widths(ws),
        "data_wrapped": all(
            bool(cell.alignment.wrap_text) for row in ws.iter_rows(min_row=2) for cell in row
        ),
    }


def main():
    workbook = openpyxl.load_workbook(io.BytesIO(sys.stdin.buffer.read()))
    props = workbook.properties
    out = {
        "sheetnames": workbook.sheetnames,
        "sheets": {ws.title: sheet(ws) for ws in workbook.worksheets},
        "properties": {
            "title": props.title,
            "subject": props.subject,
            "creator": props.creator,
            "created": props.created.isoformat() if props.created else None,
        },
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
