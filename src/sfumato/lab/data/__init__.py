"""The lab's data: CIFAR-10 and image folders with their captions, and the artists of the mimicry
experiment.
"""
