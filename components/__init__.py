"""The study's five steps (ingest, split, train, evaluate, report) and the shared ML core.

Each step module holds a plain Python function (paths and values in, files out) that the
`cxr` command line and the tests call directly; later the KFP component wraps it thinly.
"""
