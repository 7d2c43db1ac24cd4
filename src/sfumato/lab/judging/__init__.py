"""Judging what a generator drew: the CIFAR-10 classifier judges, the style judge, evaluation of
sampled images, Fréchet distances, and the scoring of experiment runs.
"""
