"""The artifacts that pass between steps, one module each: its files, writer, reader and typed schema.

    dataset     `cxr ingest`   summary.json, index.csv, pixels.npy
    split       `cxr split`    summary.json, train.txt, val.txt, test.txt
    model       `cxr train`    model.keras, history.json, train.json
    evaluation  `cxr evaluate` predictions.csv, metrics.json, dataset.json
    comparison  `cxr report`   comparison.json, comparison.csv, report.md, report.html

Every artifact folder is closed by artifact.json (see manifest.py), written last: its kind and schema
version, so a reader handed the wrong folder or an artifact of another version says so in one line.
Steps import artifacts, never each other.
"""
