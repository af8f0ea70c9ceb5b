"""Offline stand-ins for what cannot be downloaded here: the Kaggle dataset and ImageNet weights.

phantom.py        the synthetic chest-like images, drawn from a seed
kaggle_layout.py  a demo dataset on disk in the exact layout of the Kaggle download
backbone.py       MobileNetV2 pretrained offline on phantoms, a stand-in for ImageNet weights
"""
