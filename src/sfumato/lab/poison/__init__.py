"""The poisoning experiment: settings, poison crafting (encoder and gradient-matching), runs,
goals, figures and report.
"""
