"""The style-mimicry experiment: conditions and settings, cloaking the artists' works, runs,
figures and report.
"""
