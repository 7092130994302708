"""Evidently 0.7's data drift on the same columns as tests/benches/drift.rs, for its side-by-side
figures: reads the reference and current CSVs, runs the legacy DataDriftTable (Evidently's default
stat test per column), and prints JSON: the best of `repeats` wall times of the report and each
column's test, value and verdict.

    python evidently_drift.py REFERENCE.csv CURRENT.csv COLUMNS REPEATS
"""

import json
import sys
import time

import pandas as pd
from evidently.legacy.metrics import DataDriftTable
from evidently.legacy.pipeline.column_mapping import ColumnMapping
from evidently.legacy.report import Report


def main() -> None:
    reference_path, current_path, columns, repeats = sys.argv[1:5]
    columns = columns.split(",")
    reference = pd.read_csv(reference_path)[columns]
    current = pd.read_csv(current_path)[columns]
    mapping = ColumnMapping(numerical_features=columns, categorical_features=[])
    times = []
    result = None
    for _ in range(int(repeats)):
        start = time.perf_counter()
        report = Report(metrics=[DataDriftTable(columns=columns)])
        report.run(reference_data=reference, current_data=current, column_mapping=mapping)
        result = report.as_dict()
        times.append(time.perf_counter() - start)
    table = result["metrics"][0]["result"]["drift_by_columns"]
    print(
        json.dumps(
            {
                "seconds": min(times),
                "columns": {
                    c: {
                        "test": table[c]["stattest_name"],
                        "value": table[c]["drift_score"],
                        "drifted": table[c]["drift_detected"],
                    }
                    for c in columns
                },
            }
        )
    )


if __name__ == "__main__":
    main()
