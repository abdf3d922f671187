"""Experiment configs, one file per experiment (``--config=configs/<name>.py``).

A package only so that a non-editable install ships the files beside
``transferjax``; entry points load them by path (``transferjax.config.load``).
"""
